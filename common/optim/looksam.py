"""LookSAM (Liu et al., CVPR 2022, arXiv 2203.02714): a control for vSAM.

SAM every ``k`` iterations. On SAM iterations it keeps the component of g_s orthogonal
to g, g_v = g_s - (<g, g_s> / ||g||^2) g; on the others it updates with
g + alpha (||g|| / ||g_v||) g_v. Global norms and inner products. Memory: g_v plus
the parameter backup. g_v is stored per parameter, for the parameters with a gradient in
both passes of the SAM step, and added only to those parameters' gradients.
"""
from __future__ import annotations

from typing import List

import torch
from torch import Tensor

from ._distributed import all_reduce_mean_
from .base import GradGroup, Iteration, SAMBase, flat_grads, flat_params, global_norm
from .param_pairing import ParamBuffers


def _sq_norm(tensors: List[Tensor]) -> Tensor:
    return global_norm(tensors).square()


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
        self._gv = ParamBuffers()
        self._gv_norm: Tensor = None

    def _plan(self, sample_ids) -> Iteration:
        return Iteration(sam=self.iteration % self.k == 0)

    def _before_perturb(self, groups: List[GradGroup]) -> None:
        self._gv.hold(flat_params(groups), flat_grads(groups))  # holds g until g_s arrives

    def _after_sam_step(self, groups: List[GradGroup], plan: Iteration, loss, loss_after) -> None:
        # g_v is kept for the parameters with a gradient in both passes.
        g_s = self._gv.keep_common(flat_params(groups), flat_grads(groups))
        g = self._gv.tensors
        if not g:  # no parameter had a gradient in both passes: nothing to reuse
            self._gv_norm = None
            return
        g_sq, gs_sq = _sq_norm(g), _sq_norm(g_s)
        # <g, g_s> = (||g + g_s||^2 - ||g||^2 - ||g_s||^2) / 2, with foreach norms only.
        dot = (_sq_norm(torch._foreach_add(g, g_s)) - g_sq - gs_sq) / 2
        torch._foreach_mul_(g, -dot / (g_sq + self.perturb_eps))
        torch._foreach_add_(g, g_s)             # g_v = g_s - <g, g_s>/||g||^2 g
        all_reduce_mean_(g)
        self._gv_norm = _sq_norm(g).sqrt()

    def _skipped_sam_step(self) -> None:
        self._gv_norm = None  # g_v holds a non-finite g: reuse nothing until the next SAM step

    def _non_sam_step(self, groups: List[GradGroup]) -> None:
        if self._gv_norm is None:
            return
        grads = flat_grads(groups)
        scale = self.alpha * _sq_norm(grads).sqrt() / (self._gv_norm + self.perturb_eps)
        # ||g|| over the whole current gradient, ||g_v|| over the stored g_v; added where
        # a parameter has both.
        grads, gv = self._gv.matching(flat_params(groups), grads)
        if grads:
            torch._foreach_add_(grads, torch._foreach_mul(gv, scale))

    def _end_iteration(self, plan: Iteration) -> None:
        self.iteration += 1

    def _extra_state(self) -> dict:
        index = self._param_index()
        return dict(iteration=self.iteration, gv_norm=self._gv_norm,
                    gv=self._gv.state_dict(index))

    def _load_extra_state(self, state: dict) -> None:
        params = [p for g in self.param_groups for p in g['params']]
        gv = state['gv']
        if isinstance(gv, list):  # checkpoints before g_v was keyed by parameter: every parameter, in order
            if gv and len(gv) != len(params):
                raise ValueError(f'LookSAM checkpoint holds g_v for {len(gv)} tensors, the optimizer '
                                 f'has {len(params)} parameters: the model changed.')
            gv = dict(enumerate(gv))
        self._gv.load_state_dict(gv, params)
        self.iteration = state['iteration']
        self._gv_norm = state['gv_norm']
