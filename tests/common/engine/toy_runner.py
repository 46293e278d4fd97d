"""A toy classification model and Runner factory for the MMEngine-glue tests."""
import copy
import uuid

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import common.engine  # noqa: F401  (registers the SAM wrapper, constructor, loops, checkpoint loader)

NUM_SAMPLES = 32


class ToyClassifier(BaseModel):
    """Returns per-sample losses in mode='loss' (the protocol AUSAM needs)."""

    def __init__(self, per_sample=True):
        super().__init__()
        self.per_sample = per_sample
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))

    def forward(self, inputs, labels=None, sample_idx=None, mode='tensor'):
        logits = self.net(inputs)
        if mode == 'loss':
            losses = F.cross_entropy(logits, labels, reduction='none')
            return dict(loss=losses if self.per_sample else losses.mean())
        return logits


def toy_dataset():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(NUM_SAMPLES, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return [dict(inputs=x[i], labels=y[i], sample_idx=i) for i in range(NUM_SAMPLES)]


def sam_train_cfg(train_cfg: dict, sam: dict) -> dict:
    """The SAM loop matching ``train_cfg`` (epoch- or iteration-based), with vSAM's warm-up
    (written into the ``sam`` dicts of these tests for brevity) moved where it belongs."""
    if 'type' in train_cfg:
        return train_cfg
    loop = 'SAMEpochBasedTrainLoop' if train_cfg.get('by_epoch', True) else 'SAMIterBasedTrainLoop'
    out = {k: v for k, v in train_cfg.items() if k != 'by_epoch'}
    out.update(type=loop, stats_interval=1)
    if 'warmup_epochs' in sam:
        out['warmup_epochs'] = sam['warmup_epochs']
    return out


def make_runner(work_dir, sam, max_epochs=1, resume=False, per_sample=True, shuffle=True,
                name='toy', **overrides):
    torch.manual_seed(0)
    sam = copy.deepcopy(sam)
    cfg = dict(
        model=ToyClassifier(per_sample), work_dir=str(work_dir),
        # Unique: MMEngine reuses a MessageHub by name, and the optim wrapper logs to the newest.
        experiment_name=f'{name}_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(dataset=toy_dataset(), batch_size=8, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=shuffle),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                           optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-3),
                           sam={k: v for k, v in sam.items() if k != 'warmup_epochs'}),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0), resume=resume, default_scope='mmengine')
    cfg.update(overrides)
    if cfg['optim_wrapper'].get('type') == 'SAMOptimWrapper':
        cfg['train_cfg'] = sam_train_cfg(cfg['train_cfg'], sam)
    return Runner(**cfg)
