"""Mini-batches of a decoded image set that lives on the device, augmented on the device.

For small images (CIFAR: 60,000 x 3 KiB) the whole data set fits in GPU memory as uint8,
so an epoch needs no data-loader workers and no host-to-device traffic beyond the batch
indices. Training batches get CIFAR's standard augmentation (4-pixel zero padding, a
random 32x32 crop, a horizontal flip with probability 1/2), drawn per sample on the device;
test batches are only normalised. Sample ids (rows of the data set) come with every batch,
on the CPU, as AUSAM wants them.
"""
from __future__ import annotations

from typing import Iterator, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: Per-channel mean and standard deviation of the CIFAR-10 training images (0-255 scale).
CIFAR10_MEAN = (125.307, 122.961, 113.8575)
CIFAR10_STD = (51.5865, 50.847, 51.255)


def random_crop_flip(images: Tensor, pad: int, generator: torch.Generator) -> Tensor:
    """Zero-pad by ``pad``, crop back to the input size at a random offset, flip half.

    Args:
        images: ``[B, C, H, W]`` (any dtype), on any device.
        pad: Padding in pixels on every side (CIFAR: 4).
        generator: A generator on ``images.device``.

    Returns:
        ``[B, C, H, W]``, each sample with its own offset and flip.
    """
    b, _, h, w = images.shape
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # [B, H+2p, W+2p, C]
    dy = torch.randint(0, 2 * pad + 1, (b, 1, 1), device=device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b, 1, 1), device=device, generator=generator)
    flip = torch.rand((b, 1, 1), device=device, generator=generator) < 0.5
    cols = torch.arange(w, device=device).view(1, 1, w)
    cols = torch.where(flip, w - 1 - cols, cols) + dx
    rows = torch.arange(h, device=device).view(1, h, 1) + dy
    out = padded[torch.arange(b, device=device).view(b, 1, 1), rows, cols]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2)


class DeviceBatches:
    """Iterate ``(images, labels, sample_ids)`` over a data set held on ``device``.

    Args:
        images: ``uint8`` array or tensor ``[N, H, W, C]`` (as decoded).
        labels: Integer array or tensor ``[N]``.
        batch_size: Samples per batch.
        device: Where the data and the batches live.
        train: Shuffle every epoch, augment, and drop the last partial batch; otherwise keep
            the order and every sample.
        mean, std: Per-channel normalisation on the 0-255 scale.
        pad: Padding of the random crop (training only).
        seed: Seeds the order (a CPU generator) and the augmentation (a device generator).
        channels_last: Yield images in ``torch.channels_last`` memory format.

    Yields:
        ``images`` float32 ``[B, C, H, W]`` on ``device``, ``labels`` int64 ``[B]`` on
        ``device``, ``sample_ids`` int64 ``[B]`` on the CPU (rows of the data set).
    """

    def __init__(self, images, labels, batch_size: int, device, train: bool,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                 pad: int = 4, seed: int = 0, channels_last: bool = False):
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
        if pad < 0:
            raise ValueError(f'pad must be >= 0 (pixels of padding before the random crop), got {pad}.')
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f'images must be uint8 [N, H, W, C], got {images.dtype} {tuple(images.shape)}.')
        if not len(mean) == len(std) == images.shape[-1]:
            raise ValueError(f'{images.shape[-1]}-channel images need as many mean/std values, got '
                             f'{len(mean)} and {len(std)}.')
        labels = torch.as_tensor(labels)
        if labels.is_floating_point():
            raise ValueError(f'labels must be integers (class indices), got {labels.dtype}.')
        self.device = torch.device(device)
        self.images = images.permute(0, 3, 1, 2).contiguous().to(self.device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f'{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}.')
        if train and batch_size > len(self.labels):
            raise ValueError(f'batch_size {batch_size} exceeds the {len(self.labels)} training samples.')
        self.batch_size, self.train, self.pad = batch_size, train, pad
        channels = self.images.shape[1]
        self.mean = torch.tensor(mean, device=self.device).view(1, channels, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, channels, 1, 1)
        self.order_generator = torch.Generator().manual_seed(seed)
        self.augment_generator = torch.Generator(device=self.device).manual_seed(seed)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Tuple[Tensor, Tensor, Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, generator=self.order_generator) if self.train else torch.arange(n)
        for i in range(len(self)):
            ids = order[i * self.batch_size:(i + 1) * self.batch_size]
            rows = ids.to(self.device, non_blocking=True)
            x = self.images[rows]
            if self.train:
                x = random_crop_flip(x, self.pad, self.augment_generator)
            x = ((x.float() - self.mean) / self.std).contiguous(memory_format=self.memory_format)
            yield x, self.labels[rows], ids
