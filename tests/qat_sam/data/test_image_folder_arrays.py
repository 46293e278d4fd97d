"""Decoding CIFAR-style image folders (a folder or a tar archive of it) into uint8 arrays."""
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qat_sam.data.image_folder_arrays import read_image_folder

CLASSES = ['cat', 'airplane', 'dog']  # written unsorted: labels follow the sorted names
REAL_CIFAR = Path(__file__).resolve().parents[3].parent / 'shared' / 'data' / 'cifar10_jpeg.tar.gz'


def write_tree(root: Path, per_class=(3, 2), size=(32, 32), seed=0):
    """PNG (lossless) images with known pixels: {split: [(class, name, pixels)]}."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, count in zip(('train', 'test'), per_class):
        written[split] = []
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True)
            for i in reversed(range(count)):  # written out of order: files are sorted by name
                pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f'{i:04d}.png')
                written[split].append((cls, f'{i:04d}.png', pixels))
    return written


def expected(written, split):
    rows = sorted(written[split], key=lambda r: (r[0], r[1]))
    return np.stack([r[2] for r in rows]), np.array([sorted(CLASSES).index(r[0]) for r in rows])


def check(arrays, written):
    for split in ('train', 'test'):
        images, labels = expected(written, split)
        assert arrays[split].classes == sorted(CLASSES)
        assert arrays[split].images.dtype == np.uint8 and arrays[split].images.shape == images.shape
        np.testing.assert_array_equal(arrays[split].images, images)
        np.testing.assert_array_equal(arrays[split].labels, labels)


def test_folder_and_archives_decode_to_the_written_pixels(tmp_path):
    written = write_tree(tmp_path / 'cifar')
    check(read_image_folder(tmp_path / 'cifar'), written)
    with tarfile.open(tmp_path / 'flat.tar.gz', 'w:gz') as tar:  # train/... at the top
        for split in ('train', 'test'):
            tar.add(tmp_path / 'cifar' / split, arcname=split)
    check(read_image_folder(tmp_path / 'flat.tar.gz'), written)
    with tarfile.open(tmp_path / 'nested.tar', 'w') as tar:    # cifar/train/... one level down
        tar.add(tmp_path / 'cifar', arcname='cifar')
    check(read_image_folder(tmp_path / 'nested.tar'), written)


def test_clear_errors(tmp_path):
    write_tree(tmp_path / 'cifar')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        read_image_folder(tmp_path / 'missing')
    with pytest.raises(FileNotFoundError, match='no folder .*val'):
        read_image_folder(tmp_path / 'cifar', splits=('val',))
    with tarfile.open(tmp_path / 'full.tar.gz', 'w:gz') as tar:
        tar.add(tmp_path / 'cifar', arcname='.')
    data = (tmp_path / 'full.tar.gz').read_bytes()
    (tmp_path / 'partial.tar.gz').write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match='truncated or corrupt'):
        read_image_folder(tmp_path / 'partial.tar.gz')
    (tmp_path / 'junk.tar.gz').write_bytes(b'not an archive')
    with pytest.raises(ValueError, match='not a readable tar archive'):
        read_image_folder(tmp_path / 'junk.tar.gz')
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(tmp_path / 'cifar' / 'test' / 'dog' / '9999.png')
    with pytest.raises(ValueError, match='9999.png is 28x28 pixels, expected 32x32'):
        read_image_folder(tmp_path / 'cifar')
    (tmp_path / 'cifar' / 'test' / 'dog' / '9999.png').write_bytes(b'broken')
    with pytest.raises(ValueError, match='cannot decode image .*9999.png'):
        read_image_folder(tmp_path / 'cifar')


@pytest.mark.skipif(not REAL_CIFAR.exists(), reason=f'{REAL_CIFAR} is not on this machine')
def test_the_real_cifar10_tarball():
    data = read_image_folder(REAL_CIFAR)
    assert data['train'].images.shape == (50000, 32, 32, 3)
    assert data['test'].images.shape == (10000, 32, 32, 3)
    assert data['train'].classes == ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog',
                                     'horse', 'ship', 'truck']
    assert np.bincount(data['train'].labels).tolist() == [5000] * 10
    assert np.bincount(data['test'].labels).tolist() == [1000] * 10
    # Natural images, not noise: CIFAR-10's mean intensity is about 121 of 255.
    assert 110 < data['train'].images.mean() < 130


def test_labels_are_shared_across_splits(tmp_path):
    """A class missing from one split (or an empty class folder) must not shift the labels."""
    root = tmp_path / 'cifar'
    rng = np.random.default_rng(1)
    for split, classes in (('train', ['cat', 'dog', 'eel']), ('test', ['cat', 'eel'])):
        for cls in classes:
            (root / split / cls).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / split / cls / '0.png')
    (root / 'test' / 'fox').mkdir()  # empty
    (root / 'test' / 'eel' / '._0.png').write_bytes(b'macOS resource fork')
    data = read_image_folder(root)
    assert data['train'].classes == data['test'].classes == ['cat', 'dog', 'eel', 'fox']
    assert data['train'].labels.tolist() == [0, 1, 2] and data['test'].labels.tolist() == [0, 2]


def test_archives_with_several_top_level_folders_are_refused(tmp_path):
    write_tree(tmp_path / 'cifar')
    with tarfile.open(tmp_path / 'two.tar', 'w') as tar:
        tar.add(tmp_path / 'cifar', arcname='v1')
        tar.add(tmp_path / 'cifar', arcname='v2')
    with pytest.raises(ValueError, match=r"several top-level folders \['v1', 'v2'\]"):
        read_image_folder(tmp_path / 'two.tar')
