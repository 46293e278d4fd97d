"""Mixed precision: GradScaler (each pass unscaled, inf in either pass skips) and bf16 autocast."""
import pytest
import torch
import torch.nn.functional as F

from common.optim import OPTIMIZERS, SAM
from optim_reference import batch, tiny_mlp
from registry_helpers import build, step


@pytest.mark.parametrize('name', sorted(OPTIMIZERS))
def test_grad_scaler_gives_the_unscaled_result(name):
    """Scaling by a power of two is exact, so fp32 + GradScaler equals fp32 without it."""
    a, b = tiny_mlp(), tiny_mlp()
    opt_a = build(name, a.parameters(), rho=0.1, lr=0.05, momentum=0.9)
    opt_b = build(name, b.parameters(), rho=0.1, lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 10)
    for i in range(6):
        x, y = batch(seed=i)
        ids = torch.arange(12)
        if opt_a.uses_sample_ids:
            opt_a.set_epoch(i // 2)
            opt_b.set_epoch(i // 2)
        step(opt_a, a, x, y, ids, scaler=scaler)
        step(opt_b, b, x, y, ids)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('bad_pass', [0, 1])
def test_inf_in_either_pass_skips_the_step_and_backs_off(bad_pass):
    model = tiny_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model.parameters(), 'SGD', rho=0.1, lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 10)
    x, y = batch()
    calls = []

    def closure():
        calls.append(None)
        loss = F.cross_entropy(model(x), y)
        return loss * float('inf') if len(calls) - 1 == bad_pass else loss
    opt.step(closure, model=model, scaler=scaler)
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q)
    assert not opt.state_dict()['state'], 'momentum must not be updated by a skipped step'
    assert scaler.get_scale() == 2.0 ** 9
    opt.step(lambda: F.cross_entropy(model(x), y), model=model, scaler=scaler)
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before))


@pytest.mark.parametrize('name', sorted(OPTIMIZERS))
def test_bf16_autocast_trains_close_to_fp32(name):
    a, b = tiny_mlp(), tiny_mlp()
    opt_a = build(name, a.parameters(), rho=0.1, lr=0.05)
    opt_b = build(name, b.parameters(), rho=0.1, lr=0.05)
    x, y = batch()
    ids = torch.arange(12)
    for _ in range(3):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            step(opt_a, a, x, y, ids)
        step(opt_b, b, x, y, ids)
    for p, q in zip(a.parameters(), b.parameters()):
        assert p.dtype == torch.float32
        torch.testing.assert_close(p, q, rtol=0.05, atol=0.02)


@pytest.mark.parametrize('name', ['VSAM', 'LookSAM'])
def test_skipped_sam_step_does_not_poison_the_reused_component(name):
    """An overflow in a SAM step leaves garbage in PSF / g_v: the next plain steps must be plain SGD."""
    from common.optim.base import Iteration
    model, plain = tiny_mlp(), tiny_mlp()
    opt = build(name, model.parameters(), rho=0.1, lr=0.05)
    schedule = iter([True, False, False])
    opt._plan = lambda sample_ids: Iteration(sam=next(schedule))
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 10)
    x, y = batch()
    opt.step(lambda: F.cross_entropy(model(x), y) * float('inf'), model=model, scaler=scaler)
    ref = torch.optim.SGD(plain.parameters(), lr=0.05)
    for _ in range(2):
        opt.step(lambda: F.cross_entropy(model(x), y), model=model, scaler=scaler)
        ref.zero_grad()
        F.cross_entropy(plain(x), y).backward()
        ref.step()
    for p, q in zip(model.parameters(), plain.parameters()):
        assert torch.isfinite(p).all()
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
