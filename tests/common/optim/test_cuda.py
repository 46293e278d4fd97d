"""Correctness on CUDA (``pytest -m cuda``); skipped on machines without a GPU.

- every optimizer takes the float64 CPU reference's steps on the device, within float32
  tolerance, with parameter participation changing per pass and per step, with and without
  a GradScaler;
- fp16 autocast with a GradScaler and bf16 autocast train close to fp32;
- AUSAM's table and generator live on the device while sample ids stay on the CPU;
- a ``torch.compile``d model trains with every optimizer;
- steady-state steps make no host synchronisation (``torch.cuda.set_sync_debug_mode('error')``).
  The documented exceptions: vSAM's window start (once per window) and a GradScaler's
  skip decision (once per step, as ``GradScaler.step`` itself).

``LEANSAM_TEST_DEVICE=cpu`` runs the device-independent ones on the CPU instead of skipping
them (``tools/gpu_check.py --quick`` does, so that they cannot rot where there is no GPU).
"""
import functools
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.optim import OPTIMIZERS
from participation_reference import run_with_reference
from registry_helpers import build

DEVICE = os.environ.get('LEANSAM_TEST_DEVICE', 'cuda')
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(DEVICE == 'cuda' and not torch.cuda.is_available(),
                                 reason='needs a CUDA GPU (LEANSAM_TEST_DEVICE=cpu runs these on the CPU)')]
cuda_only = pytest.mark.skipif(DEVICE != 'cuda', reason='a CUDA-only check')
NAMES = sorted(OPTIMIZERS)
SCHEDULED = dict(VSAM=dict(fixed_rate=0.5), LookSAM=dict(k=2), RandomScheduleSAM=dict(sam_prob=0.5))


def grad_scaler():
    return torch.amp.GradScaler(DEVICE, init_scale=2.0 ** 10)


def small_cnn(seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).to(DEVICE)


@functools.lru_cache(maxsize=None)
def images(step, n=16):
    g = torch.Generator().manual_seed(step)
    return (torch.randn(n, 3, 16, 16, generator=g).to(DEVICE),
            torch.randint(0, 10, (n,), generator=g).to(DEVICE))


def train(name, model, steps, autocast=None, scaler=None, first_step=0, **kwargs):
    """``steps`` steps of ``name`` on ``small_cnn``-shaped data; ids stay on the CPU."""
    opt = kwargs.pop('opt', None) or build(name, model.parameters(), rho=0.05, lr=0.05, momentum=0.9,
                                           **{**SCHEDULED.get(name, {}), **kwargs})
    for i in range(first_step, first_step + steps):
        x, y = images(i)
        ids = torch.arange(16) + 16 * (i % 4)
        if opt.uses_sample_ids:
            opt.set_epoch(1 if i else 0)
        with torch.autocast(DEVICE, dtype=autocast) if autocast else torch.autocast(DEVICE, enabled=False):
            if opt.uses_sample_ids:
                opt.step(lambda idx: F.cross_entropy(model(x[idx]), y[idx], reduction='none'),
                         model=model, scaler=scaler, sample_ids=ids)
            else:
                opt.step(lambda: F.cross_entropy(model(x), y), model=model, scaler=scaler)
    return opt


@pytest.mark.parametrize('scaled', [False, True], ids=['fp32', 'grad_scaler'])
@pytest.mark.parametrize('name', NAMES)
def test_device_steps_match_the_float64_cpu_reference(name, scaled):
    run_with_reference(name, grad_scaler() if scaled else None, device=DEVICE, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
@pytest.mark.parametrize('name', NAMES)
def test_autocast_trains_close_to_fp32(name, dtype):
    if DEVICE == 'cpu' and dtype == 'float16':
        pytest.skip('fp16 with loss scaling is the CUDA recipe')
    dtype = getattr(torch, dtype)
    low, full = small_cnn(), small_cnn()
    scaler = grad_scaler() if dtype == torch.float16 else None
    train(name, low, 4, autocast=dtype, scaler=scaler)
    train(name, full, 4)
    for p, q in zip(low.parameters(), full.parameters()):
        assert p.dtype == torch.float32 and torch.isfinite(p).all()
        torch.testing.assert_close(p, q, rtol=0.05, atol=0.02)


def test_ausam_table_and_generator_live_on_the_device():
    model = small_cnn()
    opt = train('AUSAM', model, 3)
    assert opt.adlp.device.type == DEVICE and opt.dlp_count.device.type == DEVICE
    assert opt.generator.device.type == DEVICE
    assert float(opt.dlp_count[:48].sum()) > 0, 'the table was updated from CPU sample ids'


@cuda_only
def test_compiled_model_trains_with_every_optimizer():
    model = small_cnn()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    compiled = torch.compile(model)
    for name in NAMES:
        model.load_state_dict(initial)
        before = [p.detach().clone() for p in model.parameters()]
        opt = build(name, model.parameters(), rho=0.05, lr=0.05, momentum=0.9, **SCHEDULED.get(name, {}))
        train(name, compiled, 3, opt=opt)
        assert all(torch.isfinite(p).all() for p in model.parameters()), name
        assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before)), name


@cuda_only
@pytest.mark.parametrize('name', NAMES)
def test_steady_state_steps_make_no_host_sync(name):
    model = small_cnn()
    kwargs = dict(window=8, warmup_steps=0) if name == 'VSAM' else {}
    opt = train(name, model, 9, **kwargs)          # warm-up; vSAM: its second window starts at step 8
    for i in range(9, 15):
        images(i)                                   # the data is on the device before timing starts
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        train(name, model, 6, opt=opt, first_step=9)  # vSAM: steps 9-14, inside the window
    finally:
        torch.cuda.set_sync_debug_mode('default')
    if name in ('VSAM', 'LookSAM'):
        assert opt.iteration == 15
