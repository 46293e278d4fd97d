"""Real data sets read from disk: CIFAR-10/100 (torchvision's format) and ImageFolder trees."""
import os.path as osp

import torch
from mmengine.registry import DATASETS
from torch.utils.data import Dataset
from torchvision import datasets as tv_datasets
from torchvision.transforms import v2 as T

from common.options import checked_options

from .sample import pack_sample, symmetric_noise


def _train_transform(size: int, crop_padding: int):
    return T.Compose([T.ToImage(), T.RandomCrop(size, padding=crop_padding), T.RandomHorizontalFlip(),
                      T.ToDtype(torch.float32, scale=True)])


def _test_transform():
    return T.Compose([T.ToImage(), T.ToDtype(torch.float32, scale=True)])


class _Labelled(Dataset):
    """(image, label) data set + transform + optional symmetric label noise -> packed samples."""

    def __init__(self, base, transform, num_classes: int, noise_rate: float, seed: int):
        self.base, self.transform = base, transform
        targets = torch.as_tensor(getattr(base, 'targets'))
        self.labels = symmetric_noise(targets, noise_rate, num_classes, seed) if noise_rate else targets
        classes = getattr(base, 'classes', [str(i) for i in range(num_classes)])
        self.metainfo = dict(classes=tuple(classes))

    def __len__(self):
        return len(self.base)

    def __getitem__(self, index):
        image, _ = self.base[index]
        return pack_sample(self.transform(image), int(self.labels[index]), index)


@DATASETS.register_module()
@checked_options
class CIFARDataset(_Labelled):
    """CIFAR-10/100 from ``data_root`` in torchvision's format (``cifar-10-batches-py``).

    Args:
        data_root: Folder holding ``cifar-10-batches-py`` or ``cifar-100-python``.
        num_classes: 10 or 100.
        split: ``'train'`` (random crop with 4-pixel padding + flip) or ``'test'``.
        noise_rate: Symmetric label noise on the training labels.
    """

    def __init__(self, data_root: str = 'data/cifar', num_classes: int = 10, split: str = 'train',
                 noise_rate: float = 0.0, seed: int = 0):
        cls = {10: tv_datasets.CIFAR10, 100: tv_datasets.CIFAR100}.get(num_classes)
        if cls is None:
            raise ValueError(f'num_classes must be 10 or 100, got {num_classes}.')
        folder = 'cifar-10-batches-py' if num_classes == 10 else 'cifar-100-python'
        if not osp.isdir(osp.join(data_root, folder)):
            raise FileNotFoundError(
                f'{osp.join(data_root, folder)} not found. Download CIFAR-{num_classes} (python version) '
                'and unpack it there, or set data_root; nothing is downloaded automatically.')
        train = split == 'train'
        super().__init__(cls(data_root, train=train, download=False),
                         _train_transform(32, 4) if train else _test_transform(), num_classes,
                         noise_rate if train else 0.0, seed)


@DATASETS.register_module()
@checked_options
class ImageFolderDataset(_Labelled):
    """ImageNet / Tiny-ImageNet style trees: ``data_root/split/<class>/<image>``.

    Args:
        image_size: Training crop (RandomResizedCrop) and test centre crop size.
    """

    def __init__(self, data_root: str, split: str = 'train', image_size: int = 224,
                 noise_rate: float = 0.0, seed: int = 0):
        root = osp.join(data_root, split)
        if not osp.isdir(root):
            raise FileNotFoundError(f'{root} not found: expected data_root/{split}/<class>/<images>.')
        if split == 'train':
            transform = T.Compose([T.ToImage(), T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(),
                                   T.ToDtype(torch.float32, scale=True)])
        else:
            transform = T.Compose([T.ToImage(), T.Resize(int(image_size * 8 / 7)), T.CenterCrop(image_size),
                                   T.ToDtype(torch.float32, scale=True)])
        base = tv_datasets.ImageFolder(root)
        super().__init__(base, transform, len(base.classes), noise_rate if split == 'train' else 0.0, seed)
