"""LookSAM (Liu et al., CVPR 2022, arXiv 2203.02714): a control for vSAM.

SAM every ``k`` iterations. On SAM iterations it keeps the component of g_s orthogonal
to g, g_v = g_s - (<g, g_s> / ||g||^2) g; on the others it updates with
g + alpha (||g|| / ||g_v||) g_v. Global norms and inner products. Memory: g_v plus
the parameter backup.
"""
from __future__ import annotations

from typing import List

import torch
from torch import Tensor

from .base import GradGroup, Iteration, SAMBase
from .vsam import _all_reduce_mean


def _sq_norm(tensors: List[Tensor]) -> Tensor:
    return torch.stack(torch._foreach_norm(tensors, 2, dtype=torch.float32)).square().sum()


class LookSAM(SAMBase):
    """SAM every ``k`` steps, reusing the orthogonal part of the SAM gradient in between.

    Args:
        k: SAM period (5 in the paper).
        alpha: Weight of the reused component (0.7 in the paper).
        Other arguments as in :class:`~common.optim.base.SAMBase`.
    """

    def __init__(self, params, base_optimizer='SGD', rho: float = 0.05, *, k: int = 5,
                 alpha: float = 0.7, **kwargs):
        if k < 1:
            raise ValueError(f'k must be >= 1 (SAM every k steps), got {k}.')
        if alpha < 0:
            raise ValueError(f'alpha must be >= 0, got {alpha}.')
        super().__init__(params, base_optimizer, rho=rho, **kwargs)
        self.k, self.alpha = k, alpha
        self.iteration = 0
        self._gv: List[Tensor] = []
        self._gv_norm: Tensor = None

    def _plan(self, sample_ids) -> Iteration:
        return Iteration(sam=self.iteration % self.k == 0)

    def _before_perturb(self, groups: List[GradGroup]) -> None:
        grads = [t for g in groups for t in g.grads]
        if len(self._gv) != len(grads):
            self._gv = [torch.empty_like(t) for t in grads]
        torch._foreach_copy_(self._gv, grads)   # holds g until g_s arrives

    def _after_sam_step(self, groups: List[GradGroup], plan: Iteration, loss, loss_after) -> None:
        g, g_s = self._gv, [t for grp in groups for t in grp.grads]
        g_sq, gs_sq = _sq_norm(g), _sq_norm(g_s)
        # <g, g_s> = (||g + g_s||^2 - ||g||^2 - ||g_s||^2) / 2, with foreach norms only.
        dot = (_sq_norm(torch._foreach_add(g, g_s)) - g_sq - gs_sq) / 2
        torch._foreach_mul_(g, -dot / (g_sq + self.eps))
        torch._foreach_add_(g, g_s)             # g_v = g_s - <g, g_s>/||g||^2 g
        _all_reduce_mean(g)
        self._gv_norm = _sq_norm(g).sqrt()

    def _skipped_sam_step(self) -> None:
        self._gv_norm = None  # g_v holds a non-finite g: reuse nothing until the next SAM step

    def _non_sam_step(self, groups: List[GradGroup]) -> None:
        if self._gv_norm is None:
            return
        grads = [t for g in groups for t in g.grads]
        scale = self.alpha * _sq_norm(grads).sqrt() / (self._gv_norm + self.eps)
        torch._foreach_add_(grads, torch._foreach_mul(self._gv, scale))

    def _end_iteration(self, plan: Iteration) -> None:
        self.iteration += 1

    def _extra_state(self) -> dict:
        return dict(iteration=self.iteration, gv=list(self._gv), gv_norm=self._gv_norm)

    def _load_extra_state(self, state: dict) -> None:
        self.iteration = state['iteration']
        self._gv = [t.clone() for t in state['gv']]
        self._gv_norm = state['gv_norm']
