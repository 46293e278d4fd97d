"""Independent float64 re-derivations of the SAM-family updates, for the tests.

Written from docs/algorithms.md with plain autograd on a float64 copy of the model;
nothing here imports the code under test.
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn


def tiny_mlp(seed: int = 0, batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(5, 7)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(7))
    layers += [nn.Tanh(), nn.Linear(7, 3)]
    return nn.Sequential(*layers)


def batch(n: int = 12, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


class Reference:
    """A float64 copy of ``model`` evaluated at explicit weight lists."""

    def __init__(self, model: nn.Module):
        self.model = copy.deepcopy(model).double()
        self.params = list(self.model.parameters())

    def weights(self):
        return [p.detach().clone() for p in self.params]

    def grad(self, w, x, y, index=None, per_sample=False):
        """Mean loss over rows ``index`` (all rows if None) and its gradient at ``w``."""
        with torch.no_grad():
            for p, t in zip(self.params, w):
                p.copy_(t)
        if index is not None:
            x, y = x[index], y[index]
        losses = F.cross_entropy(self.model(x.double()), y, reduction='none')
        grads = torch.autograd.grad(losses.mean(), self.params)
        return (losses.detach() if per_sample else losses.mean().detach()), list(grads)


def global_norm(ts):
    return torch.sqrt(sum((t ** 2).sum() for t in ts))


def perturbation(w, g, rho, adaptive=False, eps=1e-12):
    if adaptive:
        tg = [wi.abs() * gi for wi, gi in zip(w, g)]
        n = global_norm(tg)
        return [rho * wi.abs() ** 2 * gi / (n + eps) for wi, gi in zip(w, g)]
    n = global_norm(g)
    return [rho * gi / (n + eps) for gi in g]


def sam_gradient(ref: Reference, w, x, y, rho, adaptive=False, index=None):
    """(g, g_s, loss_before, loss_after) of one SAM iteration at w."""
    l0, g = ref.grad(w, x, y, index, per_sample=True)
    e = perturbation(w, g, rho, adaptive)
    l1, gs = ref.grad([wi + ei for wi, ei in zip(w, e)], x, y, index, per_sample=True)
    return g, gs, l0, l1


class SGD:
    """torch.optim.SGD (momentum, weight decay, no dampening/nesterov) written out."""

    def __init__(self, lr, momentum=0.0, weight_decay=0.0):
        self.lr, self.momentum, self.wd = lr, momentum, weight_decay
        self.buf = None

    def step(self, w, g):
        d = [gi + self.wd * wi for gi, wi in zip(g, w)]
        if self.momentum:
            self.buf = d if self.buf is None else [self.momentum * b + di for b, di in zip(self.buf, d)]
            d = self.buf
        return [wi - self.lr * di for wi, di in zip(w, d)]


def assert_close_to_reference(model, w, atol=1e-5):
    for p, r in zip(model.parameters(), w):
        torch.testing.assert_close(p.detach().double(), r, atol=atol, rtol=1e-4)
