"""The embedded default data set: scikit-learn's handwritten digits (no download).

1797 real 8x8 grey-scale digits ship inside scikit-learn. A fixed permutation (seed 0)
splits them into 1300 training and 497 test images; images are resized to
``image_size`` and optionally repeated to 3 channels, training labels can carry
symmetric label noise. Under label noise SAM's advantage over SGD grows (STACK.md).
"""
import torch
import torch.nn.functional as F
from mmengine.registry import DATASETS
from torch.utils.data import Dataset

from common.options import checked_options

from .sample import pack_sample, symmetric_noise

NUM_TRAIN = 1300


@DATASETS.register_module()
@checked_options
class DigitsDataset(Dataset):
    """scikit-learn digits as an MMEngine data set.

    Args:
        split: ``'train'`` (1300 images) or ``'test'`` (497 images).
        image_size: Side of the resized square image.
        channels: 1, or 3 to repeat the grey channel (for RGB networks).
        noise_rate: Share of training labels replaced by another class (test: clean).
        augment: Random 1-pixel shifts (training).
        seed: Seed of the label noise.
    """

    METAINFO = dict(classes=tuple(str(i) for i in range(10)))

    def __init__(self, split: str = 'train', image_size: int = 16, channels: int = 1,
                 noise_rate: float = 0.0, augment: bool = False, seed: int = 0):
        from sklearn.datasets import load_digits
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
        if channels not in (1, 3):
            raise ValueError(f'channels must be 1 or 3, got {channels}.')
        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.tensor(digits.target)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
        keep = order[:NUM_TRAIN] if split == 'train' else order[NUM_TRAIN:]
        images = F.interpolate(images[keep], size=image_size, mode='bilinear', align_corners=False)
        self.images = images.repeat(1, channels, 1, 1)
        self.labels = labels[keep]
        self.clean_labels = self.labels.clone()
        if split == 'train' and noise_rate > 0:
            self.labels = symmetric_noise(self.labels, noise_rate, 10, seed)
        self.augment = augment
        self.metainfo = dict(self.METAINFO)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        image = self.images[index]
        if self.augment:
            shift = torch.randint(-1, 2, (2,))
            image = torch.roll(image, shifts=(int(shift[0]), int(shift[1])), dims=(1, 2))
        return pack_sample(image, int(self.labels[index]), index)
