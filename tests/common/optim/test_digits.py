"""Each optimizer trains a small CNN on scikit-learn's handwritten digits to a sensible accuracy."""
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from common.optim import OPTIMIZERS
from registry_helpers import build, step


@pytest.fixture(scope='module')
def digits():
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    return x[perm[:1300]], y[perm[:1300]], x[perm[1300:]], y[perm[1300:]]


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Flatten(), nn.Linear(32 * 4 * 4, 10))


@pytest.mark.parametrize('name', ['SGD'] + sorted(OPTIMIZERS))
def test_trains_digits_to_90_percent(name, digits):
    xtr, ytr, xte, yte = digits
    model = small_cnn()
    kwargs = dict(lr=0.1, momentum=0.9, weight_decay=5e-4)
    if name == 'SGD':
        opt = torch.optim.SGD(model.parameters(), **kwargs)
    else:
        if OPTIMIZERS[name].uses_sample_ids:
            kwargs.update(num_samples=len(ytr), ramp_epochs=2)
        opt = build(name, model.parameters(), rho=0.05, **kwargs)
    gen = torch.Generator().manual_seed(1)
    for epoch in range(6):
        if hasattr(opt, 'set_epoch'):
            opt.set_epoch(epoch)
        for ids in torch.randperm(len(ytr), generator=gen).split(64):
            x, y = xtr[ids], ytr[ids]
            if name == 'SGD':
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
            else:
                step(opt, model, x, y, ids)
    model.eval()
    with torch.no_grad():
        accuracy = (model(xte).argmax(1) == yte).float().mean().item()
    assert accuracy > 0.9, f'{name}: test accuracy {accuracy:.3f}'
