"""MMPose's own configs train with SAM, AUSAM and vSAM through MMEngine's Runner on the
generated COCO-format data: one epoch of the stock SimpleBaseline ResNet-50 config per
optimizer, the AUSAM table keyed by annotation id, a bitwise resume, ``tools/test.py``."""
import json
import os.path as osp
import re
import subprocess
import sys
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from pose_sam.data import generate_coco_keypoints

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
STOCK = osp.join(ROOT, 'configs', 'pose', 'coco', 'td-hm_res50_{}-8xb64-210e_coco-256x192.py')
SIMCC = osp.join(ROOT, 'configs', 'pose', 'mpii', 'simcc_res50_wo-deconv_{}-8xb64-210e_mpii-256x256.py')
DEMO = osp.join(ROOT, 'configs', 'pose', 'demo', 'td-hm_res18_1xb32-12e_posedemo-96x64.py')
DEMO_AUSAM = osp.join(ROOT, 'configs', 'pose', 'demo', 'td-hm_res18_ausam-1xb32-12e_posedemo-96x64.py')


@pytest.fixture(scope='module')
def pose_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('pose_data')
    generate_coco_keypoints(str(root), num_train_images=4, num_val_images=3, image_size=(128, 96),
                            max_people=2, seed=3)
    return str(root)


def annotation_ids(data_root, split='train'):
    with open(osp.join(data_root, 'annotations', f'person_keypoints_{split}.json')) as f:
        return [a['id'] for a in json.load(f)['annotations']]


def small_run(config, data_root, work_dir, epochs=1, batch_size=8, deterministic_pipeline=False, **options):
    """The config on the generated data: CPU-sized loaders, no download, no validation.
    Nothing of the project is imported here: the config's custom_imports register it."""
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.model.backbone.init_cfg = None  # nothing can be downloaded here
    loader = cfg.train_dataloader
    loader.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    loader.dataset.update(data_root=data_root, ann_file='annotations/person_keypoints_train.json',
                          data_prefix=dict(img='train/'))
    if deterministic_pipeline:  # no random augmentation: resume can then be compared bitwise
        loader.dataset.pipeline = [t for t in loader.dataset.pipeline
                                   if not t['type'].startswith('Random')]
    cfg.train_cfg.update(max_epochs=epochs, val_interval=100)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    cfg.merge_from_dict(options)
    cfg.experiment_name = f'{osp.basename(cfg.filename)}_{uuid.uuid4().hex[:8]}'  # unique hub
    return Runner.from_cfg(cfg)


def weights(runner):
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


@pytest.mark.parametrize('variant', ['sam', 'ausam', 'vsam'])
def test_stock_simplebaseline_config_trains_an_epoch(variant, pose_data, tmp_path):
    runner = small_run(STOCK.format(variant), pose_data, tmp_path)
    before = weights(runner)
    runner.train()
    after = weights(runner)
    moved = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])]
    assert any(k.startswith('head.') for k in moved) and any(k.startswith('backbone.') for k in moved)
    optimizer = runner.optim_wrapper.optimizer
    assert type(optimizer).__name__ == variant.upper()
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())
    if variant == 'ausam':
        # every training annotation has a table entry, keyed through its annotation id
        ids = annotation_ids(pose_data)
        state = optimizer.state_dict()['sam']
        assert state['dlp_count'].numel() == len(ids)
        assert bool((state['dlp_count'] > 0).all())


def test_stock_simcc_config_trains_with_ausam(pose_data, tmp_path):
    """SimCC's KLDiscretLoss sums over the batch; the per-sample version keeps MMPose's scale.
    (MPII's annotation format is not generated: the COCO data set stands in, 17 keypoints.)"""
    runner = small_run(SIMCC.format('ausam'), pose_data, tmp_path, **{
        'train_dataloader.dataset.type': 'CocoDataset',
        'train_dataloader.dataset.data_mode': 'topdown',
        'model.head.out_channels': 17})
    runner.train()
    state = runner.optim_wrapper.optimizer.state_dict()['sam']
    assert bool((state['dlp_count'] > 0).all())
    assert all(torch.isfinite(p).all() for p in runner.model.parameters())


def test_resume_continues_identically(pose_data, tmp_path):
    options = {'deterministic_pipeline': True, 'batch_size': 4, 'optim_wrapper.sam.ramp_epochs': 1}
    straight = small_run(DEMO_AUSAM, pose_data, tmp_path / 'straight', epochs=3, **options)
    straight.train()
    first = small_run(DEMO_AUSAM, pose_data, tmp_path / 'resumed', epochs=2, **options)
    first.train()
    resumed = small_run(DEMO_AUSAM, pose_data, tmp_path / 'resumed', epochs=3, resume=True, **options)
    resumed.train()
    a, b = weights(straight), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa = straight.optim_wrapper.optimizer.state_dict()['sam']
    sb = resumed.optim_wrapper.optimizer.state_dict()['sam']
    assert torch.equal(sa['dlp_sum'], sb['dlp_sum']) and torch.equal(sa['dlp_count'], sb['dlp_count'])


def test_tools_test_prints_coco_ap(pose_data, tmp_path):
    runner = small_run(DEMO, pose_data, tmp_path)
    runner.train()
    checkpoint = tmp_path / 'epoch_1.pth'
    val = dict(data_root=pose_data, ann_file='annotations/person_keypoints_val.json')
    out = subprocess.run(
        [sys.executable, 'tools/test.py', DEMO, str(checkpoint), '--work-dir', str(tmp_path / 'test'),
         '--cfg-options', f'test_dataloader.dataset.data_root={val["data_root"]}',
         'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
         f'test_evaluator.ann_file={osp.join(pose_data, val["ann_file"])}'],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    found = re.search(r'coco/AP: ([\d.]+)', out.stdout + out.stderr)
    assert found and 0.0 <= float(found.group(1)) <= 1.0


def test_mmposes_own_tools_train_and_test_the_ausam_demo_config(pose_data, tmp_path):
    """MMPose's tools/train.py and tools/test.py (the ones `mim train mmpose` runs), from the
    installed package, on our config: custom_imports bring the SAM loop, wrapper and adapter."""
    import mmpose
    tools = osp.join(osp.dirname(mmpose.__file__), '.mim', 'tools')
    data = [f'train_dataloader.dataset.data_root={pose_data}', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'train_dataloader.batch_size=4',
            f'val_dataloader.dataset.data_root={pose_data}', 'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False',
            f'val_evaluator.ann_file={osp.join(pose_data, "annotations", "person_keypoints_val.json")}',
            f'test_dataloader.dataset.data_root={pose_data}', 'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False',
            f'test_evaluator.ann_file={osp.join(pose_data, "annotations", "person_keypoints_val.json")}']
    work_dir = tmp_path / 'mmpose_tools'
    train = subprocess.run([sys.executable, osp.join(tools, 'train.py'), DEMO_AUSAM, '--work-dir', str(work_dir),
                            '--cfg-options', 'train_cfg.max_epochs=1', *data],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-3000:]
    log = train.stdout + train.stderr
    assert 'SAMEpochBasedTrainLoop' in (work_dir / 'td-hm_res18_ausam-1xb32-12e_posedemo-96x64.py').read_text()
    assert re.search(r'subset_size: \d', log), 'the SAM loop reports AUSAM\'s subset size'
    checkpoint = work_dir / 'epoch_1.pth'
    state = torch.load(checkpoint, weights_only=False)['optimizer']['sam']
    assert state['dlp_count'].numel() == len(annotation_ids(pose_data))
    test = subprocess.run([sys.executable, osp.join(tools, 'test.py'), DEMO_AUSAM, str(checkpoint),
                           '--work-dir', str(tmp_path / 'mmpose_test'), '--cfg-options', *data],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert test.returncode == 0, test.stdout[-2000:] + test.stderr[-3000:]
    found = re.search(r'coco/AP: ([\d.]+)', test.stdout + test.stderr)
    assert found and 0.0 <= float(found.group(1)) <= 1.0
