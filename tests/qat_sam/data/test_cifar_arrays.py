"""CIFAR in every form a user has (npz, torchvision pickles, image folders, archives) and the
preparation command with its checksum check."""
import hashlib
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qat_sam.data.cifar_arrays import load_cifar, npz_path

ROOT = Path(__file__).resolve().parents[3]
REAL_CIFAR = ROOT.parent / 'shared' / 'data' / 'cifar10_jpeg.tar.gz'
NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']


def pixels(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def write_pickles(root: Path):
    """torchvision's CIFAR-10 python format, 2 images per batch file."""
    folder = root / 'cifar-10-batches-py'
    folder.mkdir(parents=True)
    expected = {}
    for name, split, seed in [(f'data_batch_{i}', 'train', i) for i in range(1, 6)] + [('test_batch', 'test', 9)]:
        images, labels = pixels(2, seed), [seed % 10, (seed + 3) % 10]
        with open(folder / name, 'wb') as f:
            pickle.dump({'data': images.transpose(0, 3, 1, 2).reshape(2, -1), 'labels': labels}, f)
        expected.setdefault(split, []).append((images, labels))
    with open(folder / 'batches.meta', 'wb') as f:
        pickle.dump({'label_names': NAMES}, f)
    return {k: (np.concatenate([i for i, _ in v]), sum((l for _, l in v), [])) for k, v in expected.items()}


def write_folder(root: Path, per_class=2):
    expected = {}
    for split, seed in (('train', 0), ('test', 1)):
        images = pixels(10 * per_class, seed)
        for c, name in enumerate(NAMES):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(images[c * per_class + i]).save(root / split / name / f'{i:04d}.png')
        expected[split] = (images, [c for c in range(10) for _ in range(per_class)])
    return expected


def check(data_root, expected):
    for split, (images, labels) in expected.items():
        arrays = load_cifar(data_root, 10, split)
        np.testing.assert_array_equal(arrays.images, images)
        assert arrays.labels.tolist() == list(labels) and arrays.classes == NAMES


def test_pickles_folders_and_archives_read_the_same_pixels(tmp_path):
    check(tmp_path / 'tv', write_pickles(tmp_path / 'tv'))
    expected = write_folder(tmp_path / 'folder')
    check(tmp_path / 'folder', expected)
    with tarfile.open(tmp_path / 'cifar.tar.gz', 'w:gz') as tar:
        tar.add(tmp_path / 'folder', arcname='cifar10')
    check(tmp_path / 'cifar.tar.gz', expected)


def test_errors_name_what_was_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'looked for cifar10_train.npz, cifar-10-batches-py/ and '
                                                r'train/<class>/.*tools/prepare_cifar.py'):
        load_cifar(tmp_path, 10, 'train')
    write_folder(tmp_path / 'folder')
    with pytest.raises(ValueError, match='holds 10 classes, expected num_classes=100'):
        load_cifar(tmp_path / 'folder', 100, 'train')
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_cifar(tmp_path / 'folder', 10, 'val')


def prepare(*args):
    return subprocess.run([sys.executable, str(ROOT / 'tools' / 'prepare_cifar.py'), *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True)


def test_prepare_writes_npz_that_reads_back_identically_and_checks_the_checksum(tmp_path):
    expected = write_folder(tmp_path / 'folder')
    with tarfile.open(tmp_path / 'cifar.tar.gz', 'w:gz') as tar:
        tar.add(tmp_path / 'folder', arcname='.')
    digest = hashlib.sha256((tmp_path / 'cifar.tar.gz').read_bytes()).hexdigest()
    out = prepare('--source', tmp_path / 'cifar.tar.gz', '--out', tmp_path / 'data', '--sha256', digest)
    assert out.returncode == 0, out.stderr
    assert 'SHA-256 verified' in out.stdout
    assert npz_path(tmp_path / 'data', 10, 'train').exists()
    check(tmp_path / 'data', expected)   # read from the npz files now
    # a partial download: the checksum fails and nothing is written
    data = (tmp_path / 'cifar.tar.gz').read_bytes()
    (tmp_path / 'partial.tar.gz').write_bytes(data[:len(data) // 2])
    out = prepare('--source', tmp_path / 'partial.tar.gz', '--out', tmp_path / 'data2', '--sha256', digest)
    assert out.returncode != 0 and 'does not match the expected' in out.stderr
    assert not (tmp_path / 'data2').exists()
    # without a checksum, the archive's own error
    out = prepare('--source', tmp_path / 'partial.tar.gz', '--out', tmp_path / 'data3')
    assert out.returncode != 0 and 'truncated or corrupt' in out.stderr


@pytest.mark.skipif(not REAL_CIFAR.exists(), reason=f'{REAL_CIFAR} is not on this machine')
def test_the_real_tarball_is_verified_by_its_known_checksum(tmp_path):
    (tmp_path / 'cifar10_jpeg.tar.gz').write_bytes(REAL_CIFAR.read_bytes()[:1000])  # same name, wrong bytes
    out = prepare('--source', tmp_path / 'cifar10_jpeg.tar.gz', '--out', tmp_path / 'data')
    assert out.returncode != 0 and 'd877bdec' in out.stderr


def test_cifar_dataset_keeps_uint8_in_memory_with_cifar_augmentation(tmp_path):
    import torch
    from qat_sam.data.folders import CIFARDataset
    expected = write_folder(tmp_path / 'folder', per_class=3)
    train = CIFARDataset(data_root=str(tmp_path / 'folder'), split='train', noise_rate=0.5, seed=1)
    test = CIFARDataset(data_root=str(tmp_path / 'folder'), split='test')
    assert train.images.dtype == torch.uint8 and train.images.shape == (30, 3, 32, 32)
    assert train.metainfo['classes'] == tuple(NAMES)
    assert (train.labels != train.clean_labels).any() and train.clean_labels.tolist() == expected['train'][1]
    sample = test[7]
    assert sample['data_samples'].metainfo['sample_idx'] == 7
    images, labels = expected['test']
    torch.testing.assert_close(sample['inputs'], torch.from_numpy(images[7]).permute(2, 0, 1).float() / 255)
    assert int(sample['data_samples'].gt_label) == labels[7]
    # training: a padded 32x32 crop (or its mirror) of the stored image
    torch.manual_seed(0)
    out = (train[4]['inputs'] * 255).round().to(torch.uint8)
    padded = torch.nn.functional.pad(train.images[4], (4, 4, 4, 4))
    crops = [padded[:, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
    assert any(torch.equal(out, c) or torch.equal(out, c.flip(2)) for c in crops)


def test_cifar_subset_is_class_balanced_the_same_for_every_seed_and_renumbered(tmp_path):
    import torch
    from qat_sam.data.folders import CIFARDataset
    expected = write_folder(tmp_path / 'folder', per_class=3)
    images, labels = expected['train']
    full = CIFARDataset(data_root=str(tmp_path / 'folder'), split='train')
    sub = CIFARDataset(data_root=str(tmp_path / 'folder'), split='train', subset_size=20, noise_rate=0.5, seed=3)
    again = CIFARDataset(data_root=str(tmp_path / 'folder'), split='train', subset_size=20, seed=9)
    # the first two images of every class (write_folder stores 3 per class, class-major)
    keep = [c * 3 + i for c in range(10) for i in range(2)]
    assert len(sub) == 20 and sub.clean_labels.tolist() == [labels[k] for k in keep]
    torch.testing.assert_close(sub.images, full.images[keep])
    torch.testing.assert_close(again.images, sub.images)  # the subset does not follow the seed
    assert sub[19]['data_samples'].metainfo['sample_idx'] == 19
    assert (sub.labels != sub.clean_labels).any()  # the noise applies to the subset's labels
    plain = CIFARDataset(data_root=str(tmp_path / 'folder'), split='train', subset_size=20, augment=False)
    for i in (0, 7, 19):  # no crop, no flip: the stored image itself
        torch.testing.assert_close(plain[i]['inputs'], torch.from_numpy(images[keep[i]]).permute(2, 0, 1).float() / 255)
    with pytest.raises(ValueError, match='subset_size must be a positive multiple of num_classes=10.*got 25'):
        CIFARDataset(data_root=str(tmp_path / 'folder'), split='train', subset_size=25)
    with pytest.raises(ValueError, match='subset_size=40 needs 4 images of class 0, the data has 3'):
        CIFARDataset(data_root=str(tmp_path / 'folder'), split='train', subset_size=40)
