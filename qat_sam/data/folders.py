"""Real data sets read from disk: CIFAR-10/100 (any form, decoded once) and ImageFolder trees."""
import os.path as osp
from typing import Optional

import torch
from mmengine.registry import DATASETS
from torch.utils.data import Dataset
from torchvision import datasets as tv_datasets
from torchvision.transforms import v2 as T

from common.options import checked_options

from .cifar_arrays import load_cifar
from .sample import pack_sample, symmetric_noise


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
class CIFARDataset(Dataset):
    """CIFAR-10/100, decoded once and kept in memory as uint8, with CIFAR's augmentation.

    ``data_root`` may hold the data in any form of :func:`qat_sam.data.cifar_arrays.load_cifar`:
    ``cifar{10,100}_{train,test}.npz`` (``tools/prepare_cifar.py``), torchvision's python
    pickles, the image-folder form (``train/<class>/*.jpg``, ``test/<class>/*.jpg``), or be a
    tarball of that form. Images are decoded once when the data set is built (60,000 CIFAR
    images are 184 MB); workers only crop and flip uint8 tensors.

    Args:
        data_root: Where the data is (see above).
        num_classes: 10 or 100.
        split: ``'train'`` (4-pixel zero padding, random 32x32 crop, horizontal flip) or
            ``'test'`` (no resize, no crop).
        noise_rate: Symmetric label noise on the training labels (the sample ids and the
            clean labels stay as they are; ``clean_labels`` keeps them).
        seed: Seed of the label noise.
        subset_size: Keep only this many images, the same number of every class (the first
            ``subset_size / num_classes`` of each class in the data's order, so every run and
            seed sees the same images); sample ids are renumbered ``0 .. subset_size - 1``.
            ``None``: all images.
        augment: Training split only: ``False`` turns the crop and flip off (a small subset
            then overfits within a CPU budget, the regime where SAM's gain shows).

    Raises:
        ValueError: ``subset_size`` is not a positive multiple of ``num_classes`` or exceeds
            what a class has.
    """

    def __init__(self, data_root: str = 'data/cifar', num_classes: int = 10, split: str = 'train',
                 noise_rate: float = 0.0, seed: int = 0, subset_size: Optional[int] = None,
                 augment: bool = True):
        arrays = load_cifar(data_root, num_classes, split)
        images, labels = torch.from_numpy(arrays.images), torch.from_numpy(arrays.labels)
        if subset_size is not None:
            keep = balanced_subset(labels, num_classes, subset_size)
            images, labels = images[keep], labels[keep]
        self.images = images.permute(0, 3, 1, 2).contiguous()  # uint8 NCHW
        self.clean_labels = labels
        train = split == 'train'
        self.labels = (symmetric_noise(self.clean_labels, noise_rate, num_classes, seed)
                       if train and noise_rate else self.clean_labels)
        self.transform = (T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])
                          if train and augment else None)
        self.metainfo = dict(classes=tuple(arrays.classes))

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return pack_sample(image.float().div_(255), int(self.labels[index]), index)


def balanced_subset(labels: torch.Tensor, num_classes: int, size: int) -> torch.Tensor:
    """Indices of the first ``size / num_classes`` samples of every class, in ascending order."""
    if size < num_classes or size % num_classes:
        raise ValueError(f'subset_size must be a positive multiple of num_classes={num_classes} (the same '
                         f'number of images per class), got {size}.')
    per_class = size // num_classes
    keep = []
    for c in range(num_classes):
        members = (labels == c).nonzero().flatten()
        if len(members) < per_class:
            raise ValueError(f'subset_size={size} needs {per_class} images of class {c}, the data has '
                             f'{len(members)}; lower subset_size.')
        keep.append(members[:per_class])
    return torch.cat(keep).sort().values


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
