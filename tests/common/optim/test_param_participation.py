"""The set of parameters with a gradient may change between the two passes of a step and
between steps (stochastic depth, LayerDrop, mixture-of-experts routing, heads used on some
batches). Every optimizer must pair stored state with gradients by parameter, unscale and
inf-check the union of both passes, and reuse stored state only where a parameter has it.

The right values come from a float64 re-derivation written from the specification
(docs/algorithms.md) with dense dictionaries keyed by parameter name: a parameter without
a gradient in the first pass is not perturbed; the final gradient is the last pass's; the
base optimizer steps exactly the parameters with a final gradient; PSF (vSAM) and g_v
(LookSAM) are kept for the parameters with a gradient in both passes of the SAM step.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.optim import OPTIMIZERS, SAM, VSAM, LookSAM
from participation_reference import LR, RHO, run_with_reference


@pytest.mark.parametrize('scaled', [False, True], ids=['fp32', 'grad_scaler'])
@pytest.mark.parametrize('name', sorted(OPTIMIZERS))
def test_changing_participation_matches_the_float64_reference(name, scaled):
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 10) if scaled else None
    kinds = run_with_reference(name, scaler)
    if name in ('VSAM', 'LookSAM', 'RandomScheduleSAM'):
        assert kinds == {True, False}, 'the schedule must mix SAM and reuse iterations'


@pytest.mark.parametrize('scaled', [False, True], ids=['fp32', 'grad_scaler'])
def test_changing_participation_asam(scaled):
    run_with_reference('SAM', torch.amp.GradScaler('cpu', init_scale=2.0 ** 10) if scaled else None,
                       adaptive=True)


# --------------------------------------------------------- the inputs of the bug report
def two_linears():
    torch.manual_seed(0)
    a, b = nn.Linear(4, 3), nn.Linear(4, 3)
    x, t = torch.randn(8, 4), torch.randn(8, 3)
    return a, b, x, t


def test_grad_scaler_unscales_a_parameter_that_only_the_second_pass_reaches():
    """Before: b's update was exactly 1024 times too large (pass-2 gradient never unscaled)."""
    a, b, x, t = two_linears()
    b_before = [p.detach().clone() for p in b.parameters()]
    opt = SAM([*a.parameters(), *b.parameters()], 'SGD', rho=RHO, lr=LR)
    calls = []

    def closure():
        calls.append(None)
        return F.mse_loss(a(x), t) if len(calls) == 1 else F.mse_loss(a(x) + torch.tanh(b(x)), t)
    opt.step(closure, scaler=torch.amp.GradScaler('cpu', init_scale=1024))
    # Right: b is not perturbed (no gradient in pass 1); it steps with its pass-2 gradient at
    # (a + e, b), e = rho g_a / ||g_a||, computed here in float64.
    a64, b64, x64, t64 = (v.double() for v in two_linears())
    g_a = torch.autograd.grad(F.mse_loss(a64(x64), t64), list(a64.parameters()))
    norm = torch.sqrt(sum((g ** 2).sum() for g in g_a))
    with torch.no_grad():
        for p, g in zip(a64.parameters(), g_a):
            p.add_(RHO * g / norm)
    g_b = torch.autograd.grad(F.mse_loss(a64(x64) + torch.tanh(b64(x64)), t64), list(b64.parameters()))
    for p, p0, g in zip(b.parameters(), b_before, g_b):
        torch.testing.assert_close((p.detach() - p0).double(), -LR * g, rtol=1e-5, atol=1e-7)


def assert_next_step_of_b_is_plain_sgd(opt, b, x, t):
    """The next step uses only ``b``: no SAM, and ``b`` moves by -lr times its float64 gradient."""
    b_before = [p.detach().clone() for p in b.parameters()]
    g_b = torch.autograd.grad(F.mse_loss(torch.tanh(b.double()(x.double())), t.double()),
                              list(b.parameters()))
    b.float()
    opt.step(lambda: F.mse_loss(torch.tanh(b(x)), t))
    assert not opt.last_iteration.sam
    for p, p0, g in zip(b.parameters(), b_before, g_b):
        torch.testing.assert_close((p.detach() - p0).double(), -LR * g, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('name', ['LookSAM', 'VSAM'])
def test_reused_state_is_not_added_to_another_parameter(name):
    """LookSAM k=2 / vSAM after a warm-up SAM step: the SAM step uses only a, the next only b.

    Before: LookSAM added a's g_v to b's gradient; vSAM raised 'Tensor list must have at
    least one tensor'. Right: b steps with its plain gradient (plain SGD, lr 0.1).
    """
    a, b, x, t = two_linears()
    params = [*a.parameters(), *b.parameters()]
    if name == 'LookSAM':
        opt = LookSAM(params, 'SGD', rho=RHO, lr=LR, k=2)
    else:
        opt = VSAM(params, 'SGD', rho=RHO, lr=LR, warmup_steps=1, fixed_rate=0.02, seed=0)
    opt.step(lambda: F.mse_loss(a(x), t))
    assert opt.last_iteration.sam
    a_after_sam = [p.detach().clone() for p in a.parameters()]
    assert_next_step_of_b_is_plain_sgd(opt, b, x, t)
    for p, p0 in zip(a.parameters(), a_after_sam):
        assert torch.equal(p.detach(), p0), 'a had no gradient: it must not move'


@pytest.mark.parametrize('name', ['LookSAM', 'VSAM'])
def test_parameter_added_after_the_sam_step_steps_plainly(name):
    """A parameter group added later (layer unfrozen) has no stored state: plain gradient."""
    a, b, x, t = two_linears()
    opt = (LookSAM(a.parameters(), 'SGD', rho=RHO, lr=LR, k=3) if name == 'LookSAM' else
           VSAM(a.parameters(), 'SGD', rho=RHO, lr=LR, warmup_steps=1, fixed_rate=0.02, seed=0))
    opt.step(lambda: F.mse_loss(a(x), t))
    opt.add_param_group(dict(params=list(b.parameters())))
    assert_next_step_of_b_is_plain_sgd(opt, b, x, t)


def test_overflow_in_a_parameter_only_the_second_pass_reaches_skips_the_step():
    a, b, x, t = two_linears()
    before = [p.detach().clone() for p in [*a.parameters(), *b.parameters()]]
    opt = SAM([*a.parameters(), *b.parameters()], 'SGD', rho=RHO, lr=LR, momentum=0.9)
    scaler = torch.amp.GradScaler('cpu', init_scale=1024)
    calls = []

    def closure():
        calls.append(None)
        if len(calls) == 1:
            return F.mse_loss(a(x), t)
        return F.mse_loss(a(x).detach() + b(x) * float('inf'), t)  # only b sees the overflow
    opt.step(closure, scaler=scaler)
    for p, p0 in zip([*a.parameters(), *b.parameters()], before):
        assert torch.equal(p.detach(), p0)
    assert scaler.get_scale() == 512.0


@pytest.mark.parametrize('name', sorted(OPTIMIZERS))
def test_float64_models_match_the_reference_closely(name):
    """Norms are taken in float64 for float64 parameters (float32 refused them before)."""
    run_with_reference(name, dtype=torch.float64, rtol=1e-10, atol=1e-12)
