#!/usr/bin/env python3
"""Prepare CIFAR-10/100 for training: verify the download, decode it once, write arrays.

Reads the data in any form a user has (the image-folder tarball or folder,
``train/<class>/*.jpg`` and ``test/<class>/*.jpg``; or torchvision's python pickles),
checks the archive's SHA-256 (known for the project's CIFAR-10 JPEG tarball, or given with
``--sha256``), and writes ``cifar{N}_train.npz`` and ``cifar{N}_test.npz`` (uint8 images
``[N, 32, 32, 3]``, labels, class names) into ``--out``, where ``CIFARDataset`` (the
recipes' ``data_root``, default ``data/cifar``) reads them with one ``np.load``::

    python tools/prepare_cifar.py --source ../shared/data/cifar10_jpeg.tar.gz --out data/cifar
    python tools/prepare_cifar.py --source ~/datasets/cifar-100 --num-classes 100 --out data/cifar

Decoding the 60,000 JPEGs takes about 20 s on one core; a wrong or partial file fails
with its checksum or the archive's own error, and nothing is written.
"""
import argparse
import hashlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qat_sam.data.cifar_arrays import load_cifar_splits, npz_path, save_npz  # noqa: E402

#: SHA-256 of known downloads (../shared/data/README.md).
KNOWN_SHA256 = {'cifar10_jpeg.tar.gz': 'd877bdec11f54282b92da36e9f045bd305d663b1223e3822baff39ca9ff6690a'}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def verify(source: Path, expected) -> None:
    """Raise ``SystemExit`` with a clear message if ``source``'s checksum is not ``expected``."""
    if not source.is_file():
        return
    if expected is None:
        print(f'{source.name}: checksum not verified (not a known file name; pass --sha256 to verify)', flush=True)
        return
    actual = sha256_of(source)
    if actual != expected.lower():
        raise SystemExit(f'{source}: SHA-256 {actual} does not match the expected {expected}. The file '
                         f'is partial or not the data set you meant ({source.stat().st_size} bytes): '
                         'download it again (or pass --sha256 for another file).')
    print(f'{source.name}: SHA-256 verified', flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--source', type=Path, required=True,
                        help='the tarball, an image-folder tree, or a folder holding torchvision\'s pickles')
    parser.add_argument('--out', type=Path, default=ROOT / 'data' / 'cifar', help='where the .npz files go')
    parser.add_argument('--num-classes', type=int, choices=[10, 100], default=10)
    parser.add_argument('--sha256', help='expected SHA-256 of --source (without it: known file names only)')
    args = parser.parse_args(argv)
    if not args.source.exists():
        parser.error(f'--source {args.source} does not exist')
    verify(args.source, args.sha256 or KNOWN_SHA256.get(args.source.name))
    start = time.perf_counter()
    try:
        arrays = load_cifar_splits(args.source, args.num_classes)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f'cannot read {args.source}: {exc}')
    args.out.mkdir(parents=True, exist_ok=True)
    for split, a in arrays.items():
        path = npz_path(args.out, args.num_classes, split)
        save_npz(a, path)
        print(f'{split}: {len(a.labels)} images of {a.images.shape[1]}x{a.images.shape[2]}, '
              f'{len(a.classes)} classes -> {path}', flush=True)
    print(f'done in {time.perf_counter() - start:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
