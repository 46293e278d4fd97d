"""The set of parameters with a gradient may change between the two passes of a step and
between steps (stochastic depth, LayerDrop, mixture-of-experts routing, heads used on some
batches). Every optimizer must pair stored state with gradients by parameter, unscale and
inf-check the union of both passes, and reuse stored state only where a parameter has it.

The right values come from a float64 re-derivation written from the specification
(shared/ALGORITHMS.md) with dense dictionaries keyed by parameter name: a parameter without
a gradient in the first pass is not perturbed; the final gradient is the last pass's; the
base optimizer steps exactly the parameters with a final gradient; PSF (vSAM) and g_v
(LookSAM) are kept for the parameters with a gradient in both passes of the SAM step.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.optim import OPTIMIZERS, SAM, VSAM, LookSAM
from registry_helpers import build

LR, RHO, MOMENTUM, WD = 0.1, 0.1, 0.9, 1e-3
ACTIVATIONS = {'a': lambda z: z, 'b': torch.tanh, 'c': torch.sigmoid}

# (modules used in pass 1, modules used in pass 2) for each step; pass 2 only runs on SAM steps.
SCHEDULE = [('a', 'ab'), ('ab', 'a'), ('b', 'b'), ('abc', 'ac'), ('c', 'abc'), ('a', 'a'),
            ('bc', 'bc'), ('ab', 'ab'), ('ac', 'c'), ('abc', 'abc'), ('b', 'ab'), ('a', 'bc')]


def three_heads(seed=0) -> nn.ModuleDict:
    torch.manual_seed(seed)
    return nn.ModuleDict({name: nn.Linear(4, 3) for name in ACTIVATIONS})


def per_sample_loss(model, used: str, x, t):
    out = sum(ACTIVATIONS[m](model[m](x)) for m in used)
    return ((out - t) ** 2).mean(dim=1)


def data(step):
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(8, 4, generator=g), torch.randn(8, 3, generator=g)


# ----------------------------------------------------------------- float64 reference
class Reference:
    """Dense float64 re-derivation; weights and state are dictionaries keyed by name."""

    def __init__(self, model, kind, adaptive=False, beta=0.7, reuse_steps=6, alpha=0.7, eps=1e-12):
        self.w = {n: p.detach().double().clone() for n, p in model.named_parameters()}
        self.kind, self.adaptive = kind, adaptive
        self.beta, self.reuse_steps, self.alpha, self.eps = beta, reuse_steps, alpha, eps
        self.momentum = {}
        self.psf, self.reuse = {}, reuse_steps
        self.gv, self.gv_norm = {}, None

    def grads(self, w, used, x, t, index):
        params = {n: w[n].clone().requires_grad_(n[0] in used) for n in w}
        model = {m: (lambda z, m=m: F.linear(z, params[f'{m}.weight'], params[f'{m}.bias']))
                 for m in ACTIVATIONS}
        if index is not None:
            x, t = x[index], t[index]
        out = sum(ACTIVATIONS[m](model[m](x.double())) for m in used)
        loss = ((out - t.double()) ** 2).mean(dim=1).mean()
        names = [n for n in w if n[0] in used]
        return dict(zip(names, torch.autograd.grad(loss, [params[n] for n in names])))

    @staticmethod
    def norm(tensors):
        return math.sqrt(sum(float((t ** 2).sum()) for t in tensors))

    def step(self, sam, used1, used2, x, t, index):
        g = self.grads(self.w, used1, x, t, index)
        if sam:
            if self.adaptive:
                n = self.norm(self.w[k].abs() * v for k, v in g.items())
                e = {k: RHO * self.w[k].abs() ** 2 * v / (n + self.eps) for k, v in g.items()}
            else:
                n = self.norm(g.values())
                e = {k: RHO * v / (n + self.eps) for k, v in g.items()}
            perturbed = {k: v + e.get(k, 0) for k, v in self.w.items()}
            final = self.grads(perturbed, used2, x, t, index)
            both = [k for k in g if k in final]
            if self.kind == 'VSAM':
                self.psf, self.reuse = {k: final[k] - g[k] for k in both}, 0
            if self.kind == 'LookSAM':
                dot = sum(float((g[k] * final[k]).sum()) for k in both)
                g_sq = sum(float((g[k] ** 2).sum()) for k in both)
                self.gv = {k: final[k] - dot / (g_sq + self.eps) * g[k] for k in both}
                self.gv_norm = self.norm(self.gv.values())
        else:
            final = dict(g)
            if self.kind == 'VSAM' and self.psf and self.reuse < self.reuse_steps:
                self.reuse += 1
                for k in final:
                    if k in self.psf:
                        final[k] = final[k] + self.beta ** self.reuse * self.psf[k]
            if self.kind == 'LookSAM' and self.gv_norm is not None:
                scale = self.alpha * self.norm(g.values()) / (self.gv_norm + self.eps)
                for k in final:
                    if k in self.gv:
                        final[k] = final[k] + scale * self.gv[k]
        for k, grad in final.items():  # torch.optim.SGD, momentum and weight decay, written out
            d = grad + WD * self.w[k]
            self.momentum[k] = d if k not in self.momentum else MOMENTUM * self.momentum[k] + d
            self.w[k] = self.w[k] - LR * self.momentum[k]


def run_with_reference(name, scaler=None, adaptive=False):
    model = three_heads()
    kwargs = dict(rho=RHO, lr=LR, momentum=MOMENTUM, weight_decay=WD)
    if name == 'VSAM':
        kwargs.update(warmup_steps=1, fixed_rate=0.5)
    if name == 'LookSAM':
        kwargs.update(k=2)
    if name == 'RandomScheduleSAM':
        kwargs.update(sam_prob=0.5)
    if adaptive:
        kwargs.update(adaptive=True)
    opt = build(name, model.parameters(), **kwargs)
    ref = Reference(model, name, adaptive=adaptive)
    kinds = set()
    for i, (used1, used2) in enumerate(SCHEDULE):
        x, t = data(i)
        calls = []

        def closure(*index):
            calls.append(None)
            rows = index[0] if index else slice(None)
            losses = per_sample_loss(model, used1 if len(calls) == 1 else used2, x[rows], t[rows])
            return losses if index else losses.mean()

        if opt.uses_sample_ids:
            opt.set_epoch(i // 4)
            opt.step(closure, model=model, scaler=scaler, sample_ids=torch.arange(8) + 8 * (i % 3))
        else:
            opt.step(closure, model=model, scaler=scaler)
        plan = opt.last_iteration
        kinds.add(plan.sam)
        ref.step(plan.sam, used1, used2, x, t, plan.index)
        for n, p in model.named_parameters():
            torch.testing.assert_close(p.detach().double(), ref.w[n], rtol=1e-5, atol=1e-6,
                                       msg=lambda m: f'step {i} ({used1}/{used2}), {n}: {m}')
    return kinds


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
    b_before = [p.detach().clone() for p in b.parameters()]
    g_b = torch.autograd.grad(F.mse_loss(torch.tanh(b.double()(x.double())), t.double()),
                              list(b.parameters()))
    b.float()
    opt.step(lambda: F.mse_loss(torch.tanh(b(x)), t))
    assert not opt.last_iteration.sam
    for p, p0, g in zip(b.parameters(), b_before, g_b):
        torch.testing.assert_close((p.detach() - p0).double(), -LR * g, rtol=1e-5, atol=1e-7)
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
    b_before = [p.detach().clone() for p in b.parameters()]
    g_b = torch.autograd.grad(F.mse_loss(torch.tanh(b.double()(x.double())), t.double()),
                              list(b.parameters()))
    b.float()
    opt.step(lambda: F.mse_loss(torch.tanh(b(x)), t))
    assert not opt.last_iteration.sam
    for p, p0, g in zip(b.parameters(), b_before, g_b):
        torch.testing.assert_close((p.detach() - p0).double(), -LR * g, rtol=1e-5, atol=1e-7)


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
