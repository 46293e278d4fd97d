"""Decode a small-image data set in image-folder form once, into uint8 arrays.

CIFAR-10/100 are commonly shipped as one image file per sample::

    <root>/train/<class>/<name>.jpg|png     <root>/test/<class>/<name>.jpg|png

either as a folder or as a ``.tar`` / ``.tar.gz`` archive of it (a single top-level
folder inside the archive is allowed). Decoding 60,000 such files in data-loader workers
every epoch would take the CPU away from training, so they are decoded here once and kept
as one ``uint8`` array (50,000 CIFAR training images are 147 MiB).

Sample order is stable: classes sorted by name (label = position, as torchvision's
``ImageFolder``), files sorted by name within a class; so the sample id of an image is its
row. Pure PyTorch/NumPy/Pillow: no MMEngine, usable from any training loop.
"""
from __future__ import annotations

import io
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.webp')


@dataclass
class ImageArrays:
    """A decoded split.

    Attributes:
        images: ``uint8`` array of shape ``[N, H, W, 3]`` (RGB).
        labels: ``int64`` array of shape ``[N]``, in ``[0, len(classes))``.
        classes: Class names, sorted; ``classes[label]`` is the folder name.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: List[str]


def _is_image(name: str) -> bool:
    """An image file name (macOS's ``._*`` resource forks are not)."""
    return name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith('._')


def _decode(data: bytes, where: str, size) -> np.ndarray:
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as img:
            array = np.asarray(img.convert('RGB'))
    except Exception as exc:  # PIL raises several types for broken files
        raise ValueError(f'cannot decode image {where}: {exc}. Is the file complete?') from exc
    if size is not None and array.shape[:2] != tuple(size):
        raise ValueError(f'image {where} is {array.shape[1]}x{array.shape[0]} pixels, expected '
                         f'{size[1]}x{size[0]}; resize the data set first or pass image_size=None.')
    return array


def _folder_members(root: Path, split: str) -> List[Tuple[str, str, bytes]]:
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f'no folder {split_dir}: expected {root}/{split}/<class>/<image> '
                                '(CIFAR in image-folder form).')
    members = []
    for cls in sorted(p.name for p in split_dir.iterdir() if p.is_dir()):
        for name in sorted(os.listdir(split_dir / cls)):
            if _is_image(name):
                path = split_dir / cls / name
                members.append((cls, str(path), path.read_bytes()))
    return members


def _archive_members(path: Path, splits: Sequence[str]) -> Dict[str, List[Tuple[str, str, bytes]]]:
    """One pass over the archive: ``split -> [(class, where, bytes)]`` sorted by class, name."""
    try:
        archive = tarfile.open(path)
    except (tarfile.TarError, OSError) as exc:
        raise ValueError(f'{path} is not a readable tar archive ({exc}); is the download complete?') from exc
    found: Dict[str, Dict[Tuple[str, str], bytes]] = {split: {} for split in splits}
    tops = set()
    with archive:
        try:
            for member in archive:
                parts = Path(member.name).parts
                if not member.isfile() or not _is_image(parts[-1]):
                    continue
                # <split>/<class>/<file>, optionally under one top-level folder
                if len(parts) in (3, 4) and parts[-3] in found:
                    tops.add(parts[0] if len(parts) == 4 else '')
                    found[parts[-3]][(parts[-2], parts[-1])] = archive.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise ValueError(f'{path} is truncated or corrupt ({exc}); download it again.') from exc
    if len(tops) > 1:
        raise ValueError(f'{path} holds the splits under several top-level folders {sorted(tops)}; '
                         'expected train/<class>/... at the top or under one folder.')
    members = {}
    for split, files in found.items():
        if not files:
            raise FileNotFoundError(f'{path} holds no images under {split}/<class>/: expected the '
                                    'image-folder layout train/<class>/*.jpg, test/<class>/*.jpg.')
        members[split] = [(cls, f'{path}:{split}/{cls}/{name}', files[(cls, name)])
                          for cls, name in sorted(files)]
    return members


def _to_arrays(members, where: str, image_size, classes: List[str]) -> ImageArrays:
    images = [_decode(data, name, image_size) for _, name, data in members]
    if not images:
        raise FileNotFoundError(f'no images found in {where}.')
    label_of = {c: i for i, c in enumerate(classes)}
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(f'images of {where} have different sizes {sorted(shapes)}.')
    return ImageArrays(np.stack(images), np.array([label_of[cls] for cls, _, _ in members], dtype=np.int64),
                       classes)


def read_image_folder(source, splits: Sequence[str] = ('train', 'test'),
                      image_size=(32, 32)) -> Dict[str, ImageArrays]:
    """Decode ``<source>/<split>/<class>/*`` for each split (a folder, or a tar archive read once).

    Args:
        source: A folder, or a ``.tar`` / ``.tar.gz`` archive.
        splits: Sub-folder names to read, e.g. ``('train', 'test')``.
        image_size: Required ``(height, width)`` of every image; ``None`` accepts any size
            (all images of a split must still share one size).

    Returns:
        ``{split: ImageArrays}``, ``images`` of shape ``[N, H, W, 3]``; the class list (and so
        the labels) is shared by all splits: the sorted union of their class folders.

    Raises:
        FileNotFoundError: the source or a split is missing.
        ValueError: an unreadable archive or image, or an image of another size.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f'{source} does not exist; pass the CIFAR folder or archive.')
    empty_classes = set()
    if source.is_dir():
        members = {split: _folder_members(source, split) for split in splits}
        empty_classes = {p.name for split in splits for p in (source / split).iterdir() if p.is_dir()}
    else:
        members = _archive_members(source, splits)
    # One class list for all splits (a class missing from one split keeps its label).
    classes = sorted({cls for split in splits for cls, _, _ in members[split]} | empty_classes)
    return {split: _to_arrays(members[split], f'{source}/{split}', image_size, classes) for split in splits}
