"""The pinned stack imports and its compiled pieces run (the set-up step built them right)."""
import json

import numpy as np
import pytest
import torch


def test_mmpose_models_import():
    import mmpose.models  # noqa: F401  (imports mmdet and mmcv.ops at import time)
    from mmpose.registry import MODELS
    assert 'TopdownPoseEstimator' in MODELS.module_dict


def test_mmcv_compiled_nms_runs_on_cpu():
    from mmcv.ops import nms
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    # box 1 overlaps box 0 with IoU 81/100 > 0.5 and is suppressed; box 2 is disjoint
    assert keep.tolist() == [0, 2]
    assert torch.allclose(dets[:, 4], torch.tensor([0.9, 0.7]))


def test_torchvision_ops_nms():
    from torchvision.ops import nms
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    assert nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]


def test_brevitas_quant_conv_forward():
    from brevitas.nn import QuantConv2d
    conv = QuantConv2d(1, 2, 3, weight_bit_width=4)
    assert conv(torch.randn(1, 1, 5, 5)).shape == (1, 2, 3, 3)


def test_xtcocotools_keypoint_evaluation_on_a_tiny_case(tmp_path):
    from xtcocotools.coco import COCO
    from xtcocotools.cocoeval import COCOeval
    kpts = [10, 10, 2, 20, 10, 2, 15, 20, 2]
    gt = dict(images=[dict(id=1, width=64, height=64, file_name='a.jpg')],
              annotations=[dict(id=1, image_id=1, category_id=1, keypoints=kpts, num_keypoints=3,
                                bbox=[5, 5, 20, 20], area=400, iscrowd=0)],
              categories=[dict(id=1, name='person', keypoints=['a', 'b', 'c'], skeleton=[])])
    (tmp_path / 'gt.json').write_text(json.dumps(gt))
    coco = COCO(str(tmp_path / 'gt.json'))
    perfect = coco.loadRes([dict(image_id=1, category_id=1, keypoints=kpts, score=1.0)])
    ev = COCOeval(coco, perfect, 'keypoints', sigmas=np.array([0.05, 0.05, 0.05]), use_area=True)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)
    shifted = [v + 8 if i % 3 != 2 else v for i, v in enumerate(kpts)]
    ev = COCOeval(coco, coco.loadRes([dict(image_id=1, category_id=1, keypoints=shifted, score=1.0)]),
                  'keypoints', sigmas=np.array([0.05, 0.05, 0.05]), use_area=True)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] < 0.5
