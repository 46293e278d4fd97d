"""Device-resident CIFAR batches: every sample once per epoch, ids on the CPU, exact crops/flips."""
import torch
import torch.nn.functional as F

from qat_sam.data.device_batches import CIFAR10_MEAN, CIFAR10_STD, DeviceBatches, random_crop_flip


def crops_and_flips(image, pad):
    """Every pad-and-crop of ``image`` ([C, H, W]) and its mirror image, written out."""
    _, h, w = image.shape
    padded = F.pad(image, (pad, pad, pad, pad))
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            yield (dy, dx, False), crop
            yield (dy, dx, True), torch.flip(crop, dims=[2])


def test_each_output_is_one_crop_and_flip_of_its_input_and_all_are_drawn():
    images = torch.randint(0, 256, (400, 3, 6, 6), dtype=torch.uint8)
    out = random_crop_flip(images, 2, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    seen = set()
    for image, result in zip(images, out):
        matches = [key for key, candidate in crops_and_flips(image, 2) if torch.equal(candidate, result)]
        assert matches, 'output is not a padded crop (or its mirror) of the input'
        seen.update(matches)
    assert len({k[:2] for k in seen}) == 25 and {k[2] for k in seen} == {True, False}


def test_training_epoch_visits_every_sample_once_with_stable_ids():
    images = torch.randint(0, 256, (50, 32, 32, 3), dtype=torch.uint8)
    labels = torch.arange(50) % 10
    batches = DeviceBatches(images.numpy(), labels.numpy(), 8, 'cpu', train=True, seed=1)
    assert len(batches) == 6  # the last partial batch is dropped
    ids = torch.cat([i for _, _, i in batches])
    assert ids.device.type == 'cpu' and len(set(ids.tolist())) == 48
    for x, y, i in batches:
        assert x.dtype == torch.float32 and x.shape == (8, 3, 32, 32)
        assert torch.equal(y, labels[i])
    second = torch.cat([i for _, _, i in batches])
    assert not torch.equal(ids, second), 'a new order every epoch'


def test_test_batches_are_in_order_and_only_normalised():
    images = torch.randint(0, 256, (25, 32, 32, 3), dtype=torch.uint8)
    batches = DeviceBatches(images, torch.zeros(25, dtype=torch.long), 10, 'cpu', train=False)
    x = torch.cat([x for x, _, _ in batches])
    ids = torch.cat([i for _, _, i in batches])
    assert len(batches) == 3 and torch.equal(ids, torch.arange(25))
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (images.permute(0, 3, 1, 2).double() - mean) / std, check_dtype=False)


def test_bad_inputs_get_clear_errors():
    import pytest
    images = torch.zeros(4, 32, 32, 1, dtype=torch.uint8)
    with pytest.raises(ValueError, match='1-channel images need as many mean/std values, got 3 and 3'):
        DeviceBatches(images, torch.zeros(4, dtype=torch.long), 2, 'cpu', train=True)
    rgb = torch.zeros(4, 32, 32, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match='pad must be >= 0'):
        DeviceBatches(rgb, torch.zeros(4, dtype=torch.long), 2, 'cpu', train=True, pad=-1)
    with pytest.raises(ValueError, match='labels must be integers'):
        DeviceBatches(rgb, torch.full((4,), 0.7), 2, 'cpu', train=True)
