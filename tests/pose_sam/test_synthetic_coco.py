"""The synthetic COCO person-keypoints generator: format, determinism, MMPose loading, CocoMetric."""
import os.path as osp

import numpy as np
import pytest
from xtcocotools.coco import COCO

from pose_sam.data import COCO_KEYPOINT_NAMES, generate_coco_keypoints

SIZE = (128, 96)
# CocoDataset looks for its metainfo file relative to the working directory first.
pytestmark = pytest.mark.filterwarnings('ignore:The metainfo config file')


def _generate(root, seed=0, n_train=24, n_val=8):
    generate_coco_keypoints(str(root), n_train, n_val, image_size=SIZE, max_people=3, seed=seed)
    return root


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp('pose_demo'))


def _ann_file(root, split):
    return osp.join(str(root), 'annotations', f'person_keypoints_{split}.json')


def test_annotations_are_coco_person_keypoints(data_root):
    ann_ids, img_ids, vis = [], [], []
    for split in ('train', 'val'):
        coco = COCO(_ann_file(data_root, split))
        cat = coco.loadCats(1)[0]
        assert cat['name'] == 'person' and tuple(cat['keypoints']) == COCO_KEYPOINT_NAMES
        assert len(cat['skeleton']) == 19 and max(max(s) for s in cat['skeleton']) == 17
        for img in coco.loadImgs(coco.getImgIds()):
            assert osp.isfile(osp.join(str(data_root), split, img['file_name']))
            assert (img['width'], img['height']) == SIZE
        assert coco.getAnnIds() and all(coco.getAnnIds(imgIds=[i]) for i in coco.getImgIds())
        for ann in coco.loadAnns(coco.getAnnIds()):
            ann_ids.append(ann['id'])
            assert ann['category_id'] == 1 and ann['iscrowd'] == 0 and ann['area'] > 0
            kp = np.array(ann['keypoints'], float).reshape(17, 3)
            assert set(kp[:, 2]) <= {0, 1, 2} and ann['num_keypoints'] == int((kp[:, 2] > 0).sum())
            assert not kp[kp[:, 2] == 0].any()                       # unlabelled: 0, 0, 0
            x, y, w, h = ann['bbox']
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= SIZE[0] and y + h <= SIZE[1]
            visible = kp[kp[:, 2] == 2, :2]
            assert ((visible >= [x, y]) & (visible <= [x + w, y + h])).all()
            assert ann['area'] <= w * h
            assert all(len(poly) >= 6 and len(poly) % 2 == 0 for poly in ann['segmentation'])
            vis.extend(kp[:, 2])
        img_ids.extend(coco.getImgIds())
    assert len(set(ann_ids)) == len(ann_ids) and len(set(img_ids)) == len(img_ids)
    counts = np.bincount(np.array(vis, int), minlength=3)
    assert counts.min() > 0 and counts[2] > counts[1] + counts[0]   # occluded and out-of-frame exist


def test_same_seed_same_bytes_other_seed_differs(tmp_path, data_root):
    again = _generate(tmp_path / 'again')
    other = _generate(tmp_path / 'other', seed=1)
    for split in ('train', 'val'):
        with open(_ann_file(data_root, split), 'rb') as a, open(_ann_file(again, split), 'rb') as b:
            assert a.read() == b.read()
        with open(_ann_file(data_root, split), 'rb') as a, open(_ann_file(other, split), 'rb') as b:
            assert a.read() != b.read()
    name = f'{1:012d}.jpg'
    with open(data_root / 'train' / name, 'rb') as a, open(again / 'train' / name, 'rb') as b:
        assert a.read() == b.read()


def _dataset(root, split, pipeline):
    from mmpose.datasets import CocoDataset
    return CocoDataset(data_root=str(root), ann_file=f'annotations/person_keypoints_{split}.json',
                       data_prefix=dict(img=f'{split}/'), data_mode='topdown', pipeline=pipeline,
                       test_mode=split == 'val')


def test_mmpose_coco_dataset_top_down_samples(data_root):
    from mmpose.datasets.transforms import (GenerateTarget, GetBBoxCenterScale, LoadImage, PackPoseInputs,
                                            RandomBBoxTransform, TopdownAffine)
    codec = dict(type='MSRAHeatmap', input_size=(48, 64), heatmap_size=(12, 16), sigma=1.5)
    pipeline = [LoadImage(), GetBBoxCenterScale(), RandomBBoxTransform(), TopdownAffine(input_size=(48, 64)),
                GenerateTarget(encoder=codec), PackPoseInputs()]
    dataset = _dataset(data_root, 'train', pipeline)
    coco = COCO(_ann_file(data_root, 'train'))
    assert len(dataset) == sum(a['num_keypoints'] > 0 for a in coco.dataset['annotations'])
    for i in (0, len(dataset) - 1):
        sample = dataset[i]
        assert tuple(sample['inputs'].shape) == (3, 64, 48)
        assert tuple(sample['data_samples'].gt_fields.heatmaps.shape) == (17, 16, 12)
        assert sample['data_samples'].gt_fields.heatmaps.max() > 0.5
        assert sample['data_samples'].metainfo['id'] in coco.anns


def _metric_on(root, shift):
    """CocoMetric with the ground truth (moved by ``shift`` pixels) as predictions."""
    from mmpose.evaluation import CocoMetric
    dataset = _dataset(root, 'val', [])
    metric = CocoMetric(ann_file=_ann_file(root, 'val'))
    metric.dataset_meta = dataset.metainfo
    samples = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        samples.append(dict(id=info['id'], img_id=info['img_id'], gt_instances=dict(),
                            pred_instances=dict(keypoints=info['keypoints'] + np.asarray(shift, float),
                                                keypoint_scores=np.ones((1, 17)))))
    metric.process([], samples)
    return metric.evaluate(len(samples))


def test_coco_metric_perfect_and_shifted_predictions(data_root):
    assert _metric_on(data_root, (0, 0))['coco/AP'] == pytest.approx(1.0)
    shifted = _metric_on(data_root, (3, -2))['coco/AP']
    assert shifted < 0.6
    assert _metric_on(data_root, (8, 8))['coco/AP'] < shifted
