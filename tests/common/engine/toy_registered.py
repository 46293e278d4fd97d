"""Registered toy model, data set and rank-dump hook for the torchrun test (imported by config)."""
import os

import torch
import torch.nn.functional as F
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.evaluator import BaseMetric
from mmengine.registry import DATASETS, HOOKS, METRICS, MODELS
from torch import nn
from torch.utils.data import Dataset


@MODELS.register_module()
class ToyMLP(BaseModel):
    """No running statistics, so every rank's forward is the single-process forward."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))

    def forward(self, inputs, labels=None, sample_idx=None, mode='tensor'):
        logits = self.net(inputs)
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, labels, reduction='none'))
        if mode == 'predict':
            return [dict(pred=int(p), label=int(t)) for p, t in zip(logits.argmax(1), labels)]
        return logits


@DATASETS.register_module()
class ToyData(Dataset):
    def __init__(self, n=32):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = (self.x[:, 0] > 0).long() + (self.x[:, 1] > 0.5).long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], labels=self.y[i], sample_idx=i)


@HOOKS.register_module()
class DumpRankState(Hook):
    def after_run(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        state = dict(model=model.state_dict(), sam=runner.optim_wrapper.state_dict()['sam'])
        torch.save(state, os.path.join(runner.work_dir, f'rank{get_rank()}.pth'))


@METRICS.register_module()
class ToyAccuracy(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.extend(float(s['pred'] == s['label']) for s in data_samples)

    def compute_metrics(self, results):
        return dict(accuracy=100 * sum(results) / len(results))
