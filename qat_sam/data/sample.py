"""How a classification sample looks to the model: an image tensor and a data sample.

The data sample carries the label and ``sample_idx``, the sample's stable index in its
data set, which AUSAM's table is keyed by (see common/engine/train_step.py).
"""
import torch
from mmengine.structures import BaseDataElement


def pack_sample(image: torch.Tensor, label: int, index: int) -> dict:
    """``dict(inputs=CHW float tensor, data_samples=BaseDataElement(gt_label, sample_idx))``."""
    sample = BaseDataElement(metainfo=dict(sample_idx=int(index)))
    sample.gt_label = torch.tensor(int(label))
    return dict(inputs=image, data_samples=sample)


def symmetric_noise(labels: torch.Tensor, rate: float, num_classes: int, seed: int) -> torch.Tensor:
    """Replace a ``rate`` share of labels by a uniformly drawn *different* class."""
    if not 0 <= rate < 1:
        raise ValueError(f'noise_rate must be in [0, 1), got {rate}.')
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(len(labels), generator=g) < rate
    offset = torch.randint(1, num_classes, (len(labels),), generator=g)
    return torch.where(flip, (labels + offset) % num_classes, labels)
