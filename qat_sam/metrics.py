"""Top-k accuracy for MMEngine's evaluator."""
from typing import Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

from common.options import checked_options


@METRICS.register_module()
@checked_options
class TopKAccuracy(BaseMetric):
    """Top-1 / top-5 accuracy in percent (``accuracy/top1``, ``accuracy/top5``)."""

    default_prefix = 'accuracy'

    def __init__(self, topk: Sequence[int] = (1, 5), **kwargs):
        super().__init__(**kwargs)
        self.topk = tuple(topk)

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:  # the evaluator hands data samples over as dicts
            ranked = sample['pred_score'].topk(max(self.topk)).indices.cpu()
            label = sample['gt_label'].cpu()
            self.results.append([bool((ranked[:k] == label).any()) for k in self.topk])

    def compute_metrics(self, results) -> dict:
        correct = torch.tensor(results, dtype=torch.float64)
        return {f'top{k}': float(100 * correct[:, i].mean()) for i, k in enumerate(self.topk)}
