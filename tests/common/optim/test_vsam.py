import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.optim import VSAM
from common.optim.base import Iteration
from common.optim.vsam import block_variance
from optim_reference import Reference, assert_close_to_reference, batch, sam_gradient, tiny_mlp


def test_psf_reuse_decays_as_beta_power_k_then_stops():
    """After a SAM step, the k-th plain step uses g + beta^k PSF (k = 1..6), then g."""
    model = tiny_mlp()
    ref = Reference(model)
    w = ref.weights()
    beta, rho, lr = 0.7, 0.2, 0.05
    opt = VSAM(model.parameters(), 'SGD', rho=rho, beta=beta, lr=lr, seed=0)
    schedule = iter([True] + [False] * 8)
    opt._plan = lambda sample_ids: Iteration(sam=next(schedule))
    psf = None
    for i in range(9):
        x, y = batch(seed=i)
        opt.step(lambda: F.cross_entropy(model(x), y), model=model)
        if i == 0:
            g, gs, _, _ = sam_gradient(ref, w, x, y, rho)
            psf = [a - b for a, b in zip(gs, g)]
            d = gs
        else:
            _, g = ref.grad(w, x, y)
            k = i
            d = [gi + beta ** k * pi for gi, pi in zip(g, psf)] if k <= 6 else g
        w = [wi - lr * di for wi, di in zip(w, d)]
        assert_close_to_reference(model, w)


def test_every_window_has_exactly_floor_base_sr_sam_steps():
    model = tiny_mlp()
    opt = VSAM(model.parameters(), 'SGD', rho=0.05, lr=0.05, window=10, warmup_steps=3, seed=0,
               a1=5.0, a2=5.0)  # large gains make base_sr move between windows
    x, y = batch()
    decisions, quotas = [], []
    original_plan = opt._plan

    def spy(sample_ids):
        plan = original_plan(sample_ids)
        decisions.append(plan.sam)
        if opt.iteration >= opt.warmup_steps and (opt.iteration - opt.warmup_steps) % opt.window == 0:
            quotas.append(math.floor(opt.base_sr))
        return plan
    opt._plan = spy
    for i in range(3 + 10 * 8):
        x, y = batch(seed=i)
        opt.step(lambda: F.cross_entropy(model(x), y), model=model)
    assert all(decisions[:3])
    windows = np.array(decisions[3:]).reshape(8, 10)
    assert windows.sum(axis=1).tolist() == quotas
    assert len(set(quotas)) > 1, 'base_sr never changed: the test would not see a wrong count'


def _trend(x, eps):
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        return 0.0
    return float(np.clip(np.mean(np.diff(x) / (x[:-1] + eps)), -1, 1))


@pytest.mark.parametrize('ratios,variances', [
    ([0.1, 0.12, 0.15, 0.11, 0.2], [1e-3, 2e-3, 1.5e-3]),
    ([0.0, 0.1, 0.2], [0.0, 0.0]),        # zeros: eps-safe denominators
    ([0.3], []),                           # buffers not yet full
    ([1.0, 5.0, 9.0], [1.0, 9.0]),         # clipped at +1
])
def test_window_update_follows_the_formula(ratios, variances):
    opt = VSAM(tiny_mlp().parameters(), 'SGD', lr=0.1, window=20, max_p=0.8, a1=0.13, a2=0.2, seed=0)
    opt.base_sr = 3.0
    for r in ratios:
        opt.ratios.push(torch.tensor(r))
    for v in variances:
        opt.variances.push(torch.tensor(v))
    opt._start_window()
    eps = opt.eps_stat
    expected = np.clip(3.0 * (1 + 0.13 * _trend(ratios, eps) + 0.2 * _trend(variances, eps)), 1, 16)
    assert opt.base_sr == pytest.approx(expected, rel=1e-6)
    assert math.isfinite(opt.base_sr)
    assert opt.rate_history[-1] == pytest.approx(expected / 20)


def test_block_variance_matches_numpy():
    values = torch.rand(23, generator=torch.Generator().manual_seed(0))
    blocks = np.array_split(np.sort(values.double().numpy()), 5)
    expected = np.mean([np.var(b, ddof=1) for b in blocks])
    assert float(block_variance(values, 5)) == pytest.approx(expected, rel=1e-5)


def test_statistics_are_pushed_on_sam_steps():
    model = tiny_mlp()
    ref = Reference(model)
    w = ref.weights()
    opt = VSAM(model.parameters(), 'SGD', rho=0.1, lr=0.0, warmup_steps=5, stat_tensors=2, seed=0)
    x, y = batch()
    opt.step(lambda: F.cross_entropy(model(x), y), model=model)
    g, gs, _, _ = sam_gradient(ref, w, x, y, 0.1)
    psf = [a - b for a, b in zip(gs, g)]
    n_psf = torch.sqrt(sum((t ** 2).sum() for t in psf[-2:]))
    n_g = torch.sqrt(sum((t ** 2).sum() for t in g[-2:]))
    assert float(opt.psf_norms.ordered()[0]) == pytest.approx(float(n_psf), rel=1e-4)
    assert float(opt.ratios.ordered()[0]) == pytest.approx(float(n_psf / n_g), rel=1e-4)


def test_bad_hyper_parameters():
    params = list(tiny_mlp().parameters())
    for beta in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=r'beta must be in \(0, 1\)'):
            VSAM(params, 'SGD', lr=0.1, beta=beta)
    with pytest.raises(ValueError, match='max_p'):
        VSAM(params, 'SGD', lr=0.1, max_p=0.0)
    with pytest.raises(ValueError, match='fixed_rate'):
        VSAM(params, 'SGD', lr=0.1, fixed_rate=2.0)
