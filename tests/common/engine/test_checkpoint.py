"""An MMEngine Runner trains, saves, and a second Runner resumes from the checkpoint."""
import pickle
import uuid

import pytest
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import common.engine  # noqa: F401  (registers the trusted local checkpoint loader)


class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.net(inputs)
        if mode == 'loss':
            return dict(loss=F.mse_loss(out, labels))
        return out


def toy_dataset():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 2, generator=g)
    return [dict(inputs=xi, labels=xi.sum(0, keepdim=True)) for xi in x]


def make_runner(work_dir, max_epochs, resume=False):
    torch.manual_seed(0)  # the model is built before the Runner seeds
    return Runner(
        model=ToyModel(), work_dir=str(work_dir), experiment_name=f'toy_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(dataset=toy_dataset(), batch_size=8, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1], gamma=0.5, begin=0, end=2),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0), resume=resume, default_scope='mmengine')


def test_runner_resume_continues_the_same_trajectory(tmp_path):
    full = make_runner(tmp_path / 'full', max_epochs=2)
    full.train()

    first = make_runner(tmp_path / 'split', max_epochs=1)
    first.train()
    ckpt = tmp_path / 'split' / 'epoch_1.pth'
    # The checkpoint needs more than tensors: torch's weights_only default refuses it, so
    # this test fails if the project's loader is not in place.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt, weights_only=True)

    resumed = make_runner(tmp_path / 'split', max_epochs=2, resume=True)
    resumed.train()
    assert resumed.epoch == 2 and resumed.iter == full.iter == 8
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert resumed.optim_wrapper.get_lr()['lr'] == full.optim_wrapper.get_lr()['lr']
