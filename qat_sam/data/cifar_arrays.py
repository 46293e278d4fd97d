"""CIFAR-10/100 as uint8 arrays, from whichever form a user has, decoded once.

Forms found under ``data_root`` (first match wins):

1. ``cifar{10,100}_{train,test}.npz``: written by ``tools/prepare_cifar.py`` (fastest: one
   ``np.load``);
2. ``cifar-10-batches-py`` / ``cifar-100-python``: torchvision's python pickles;
3. ``train/<class>/*`` and ``test/<class>/*``: the image-folder form (PNG/JPEG files), or
   ``data_root`` itself a ``.tar``/``.tar.gz`` archive of it (see
   :mod:`qat_sam.data.image_folder_arrays`).

Pure NumPy/PyTorch (no MMEngine).
"""
from __future__ import annotations

import os.path as osp
import pickle
from pathlib import Path

import numpy as np

from .image_folder_arrays import ImageArrays, read_image_folder

PICKLE_FOLDERS = {10: 'cifar-10-batches-py', 100: 'cifar-100-python'}
SPLITS = ('train', 'test')


def npz_path(data_root, num_classes: int, split: str) -> Path:
    return Path(data_root) / f'cifar{num_classes}_{split}.npz'


def save_npz(arrays: ImageArrays, path) -> None:
    np.savez(path, images=arrays.images, labels=arrays.labels, classes=np.array(arrays.classes))


def load_npz(path) -> ImageArrays:
    with np.load(path) as f:
        return ImageArrays(f['images'], f['labels'].astype(np.int64), [str(c) for c in f['classes']])


def _unpickle(path):
    with open(path, 'rb') as f:
        return pickle.load(f, encoding='latin1')


def read_cifar_pickles(folder, num_classes: int, split: str) -> ImageArrays:
    """torchvision's python format (``data_batch_*`` / ``test_batch``, ``train`` / ``test``)."""
    folder = Path(folder)
    if num_classes == 10:
        files = [f'data_batch_{i}' for i in range(1, 6)] if split == 'train' else ['test_batch']
        meta, names, key = 'batches.meta', 'label_names', 'labels'
    else:
        files, meta, names, key = [split], 'meta', 'fine_label_names', 'fine_labels'
    parts = [_unpickle(folder / f) for f in files]
    images = np.concatenate([p['data'] for p in parts]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.concatenate([np.asarray(p[key]) for p in parts]).astype(np.int64)
    return ImageArrays(np.ascontiguousarray(images, dtype=np.uint8), labels, list(_unpickle(folder / meta)[names]))


def load_cifar(data_root, num_classes: int, split: str) -> ImageArrays:
    """CIFAR-``num_classes`` ``split`` from ``data_root`` in any of the forms above.

    Raises:
        ValueError: ``num_classes`` not 10/100, ``split`` not train/test, or a data set with
            another number of classes.
        FileNotFoundError: none of the forms is there (the message lists what was looked for
            and how to prepare the data).
    """
    if num_classes not in PICKLE_FOLDERS:
        raise ValueError(f'num_classes must be 10 or 100, got {num_classes}.')
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    return load_cifar_splits(data_root, num_classes, (split,))[split]


def load_cifar_splits(data_root, num_classes: int, splits=SPLITS) -> dict:
    """``{split: ImageArrays}`` for several splits (an archive is read once for all)."""
    root = Path(data_root)
    if root.is_file():  # an archive of the image-folder form
        out = read_image_folder(root, splits=splits)
        for arrays in out.values():
            _check_classes(arrays, root, num_classes)
        return out
    return {split: _load_split(root, num_classes, split) for split in splits}


def _check_classes(arrays: ImageArrays, root, num_classes: int) -> None:
    if len(arrays.classes) != num_classes:
        raise ValueError(f'{root} holds {len(arrays.classes)} classes, expected num_classes={num_classes}.')


def _load_split(root: Path, num_classes: int, split: str) -> ImageArrays:
    if npz_path(root, num_classes, split).exists():
        arrays = load_npz(npz_path(root, num_classes, split))
    elif (root / PICKLE_FOLDERS[num_classes]).is_dir():
        arrays = read_cifar_pickles(root / PICKLE_FOLDERS[num_classes], num_classes, split)
    elif (root / split).is_dir():
        arrays = read_image_folder(root, splits=(split,))[split]
    else:
        raise FileNotFoundError(
            f'no CIFAR-{num_classes} {split} data under {osp.abspath(root)}: looked for '
            f'{npz_path(root, num_classes, split).name}, {PICKLE_FOLDERS[num_classes]}/ and {split}/<class>/. '
            f'Prepare it with: python tools/prepare_cifar.py --source <tarball, folder or '
            f'torchvision folder> --out {root}')
    _check_classes(arrays, root, num_classes)
    return arrays
