"""The speed benchmark's memory count against closed forms: optimizer state in parameter-sized
buffers (SGD momentum 1, SAM + backup 2, vSAM + PSF 3, LookSAM + g_v 3)."""
import pytest
import torch
from torch import nn

from common.benchmark.speed import state_mib
from common.optim import SAM, VSAM, LookSAM


@pytest.mark.parametrize('build, buffers', [
    (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), 1),
    (lambda p: SAM(p, 'SGD', lr=0.1, momentum=0.9), 2),
    (lambda p: VSAM(p, 'SGD', lr=0.1, momentum=0.9, fixed_rate=1.0), 3),
    (lambda p: LookSAM(p, 'SGD', lr=0.1, momentum=0.9, k=1), 3),
])
def test_state_mib_counts_every_buffer_the_optimizer_holds(build, buffers):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10))
    params = list(model.parameters())
    opt = build(params)
    x, y = torch.randn(16, 256), torch.randint(0, 10, (16,))

    def closure():
        return nn.functional.cross_entropy(model(x), y)

    for _ in range(3):
        if isinstance(opt, torch.optim.SGD):
            opt.zero_grad()
            closure().backward()
            opt.step()
        else:
            opt.step(closure, model=model)
    param_mib = sum(p.numel() * p.element_size() for p in params) / 2**20
    # vSAM's statistics rings add a few hundred bytes of scalars
    assert state_mib(opt, params) == pytest.approx(buffers * param_mib, abs=4 / 1024)
