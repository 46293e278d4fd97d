"""Float64 reference for models whose parameter participation changes per pass and per step.

Written from the specification (docs/algorithms.md) with dense dictionaries keyed by
parameter name: a parameter without a gradient in the first pass is not perturbed; the
final gradient is the last pass's; the base optimizer steps exactly the parameters with a
final gradient; PSF (vSAM) and g_v (LookSAM) are kept for the parameters with a gradient in
both passes of the SAM step. Nothing here imports the code under test except to drive it.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

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


def run_with_reference(name, scaler=None, adaptive=False, device='cpu', rtol=1e-5, atol=1e-6,
                       dtype=torch.float32):
    """Train ``name`` over SCHEDULE on ``device`` and compare every step with the float64 CPU reference."""
    model = three_heads().to(device, dtype)
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
        x, t = (v.to(device, dtype) for v in data(i))
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
        ref.step(plan.sam, used1, used2, x.cpu(), t.cpu(), None if plan.index is None else plan.index.cpu())
        for n, p in model.named_parameters():
            torch.testing.assert_close(p.detach().cpu().double(), ref.w[n], rtol=rtol, atol=atol,
                                       msg=lambda m: f'step {i} ({used1}/{used2}), {n}: {m}')
    return kinds
