"""vSAM: effective gradient sample size via variation estimation (arXiv 2403.08821).

The SAM gradient decomposes as g_s = g + PSF, PSF ~ rho H g / ||g|| (the projection of
the second-order gradient onto the first-order one), which changes slowly. vSAM runs
SAM on floor(base_sr) iterations of every window of K iterations and, on the others,
reuses the last PSF with weight beta^k for the k-th iteration after a SAM step
(k = 1..6), then plain g. base_sr follows the relative variation of r = ||PSF|| / ||g||
and of v, the mean within-block variance of the sorted ||PSF|| buffer:

    base_sr <- clip(base_sr (1 + a1 rho_r + a2 rho_v), 1, floor(K max_p)),
    rho_x = clip(mean_i (x_{i+1} - x_i) / (x_i + eps), -1, 1).

Norms are taken over the last ``stat_tensors`` parameter tensors. Statistics live in
device ring buffers and reach the host once per window (the only host sync).
Memory: PSF plus the parameter backup (the authors' code keeps four copies).
PSF is stored per parameter, for the parameters with a gradient in both passes of the
last SAM step, and added only to those parameters' gradients; others step with plain g.
"""
from __future__ import annotations

import math
from typing import List, Optional

import torch
from torch import Tensor

from ._distributed import all_reduce_mean_, broadcast_from_rank0
from .base import GradGroup, Iteration, SAMBase, flat_grads, flat_params, global_norm
from .param_pairing import ParamBuffers
from .schedule_rng import SharedRandom


def relative_trend(values: List[float], eps: float) -> float:
    """clip(mean_i (x_{i+1} - x_i) / (x_i + eps), -1, 1); 0 with fewer than two values."""
    if len(values) < 2:
        return 0.0
    rel = [(b - a) / (a + eps) for a, b in zip(values[:-1], values[1:])]
    return max(-1.0, min(1.0, sum(rel) / len(rel)))


def block_variance(values: Tensor, blocks: int) -> Tensor:
    """Mean over ``blocks`` contiguous blocks of the sorted values of each block's unbiased variance."""
    parts = torch.tensor_split(torch.sort(values).values, blocks)
    return torch.stack([part.var(unbiased=True) for part in parts]).mean()


class _Ring:
    """A fixed-size ring of scalars on the device, read in time order on the host."""

    def __init__(self, size: int, device):
        self.data = torch.zeros(size, device=device)
        self.pos = 0
        self.filled = 0

    def push(self, value: Tensor) -> None:
        self.data[self.pos] = value
        self.pos = (self.pos + 1) % self.data.numel()
        self.filled = min(self.filled + 1, self.data.numel())

    def ordered(self) -> Tensor:
        size = self.data.numel()
        order = [(self.pos - self.filled + i) % size for i in range(self.filled)]
        return self.data[order]

    def state_dict(self) -> dict:
        return dict(data=self.data, pos=self.pos, filled=self.filled)

    def load_state_dict(self, state: dict) -> None:
        self.data.copy_(state['data'])
        self.pos, self.filled = state['pos'], state['filled']


class VSAM(SAMBase):
    """SAM on the iterations that need it, chosen from the variation of PSF.

    Args:
        beta: Decay of the reused PSF, in (0, 1).
        reuse_steps: Iterations after a SAM step that reuse PSF (beta^1 .. beta^6).
        window: K, iterations per window.
        max_p: Largest SAM share of a window, in (0, 1].
        a1, a2: Gains of the r and v trends (authors' script: 0.13).
        blocks: Blocks of the sorted ||PSF|| buffer for the variance estimate.
        stat_tensors: Number of last parameter tensors the norms are taken over
            (``None``: all).
        warmup_steps: Iterations that are all SAM at the start (spec: 3 epochs).
        fixed_rate: If set, a constant SAM share per window (no adaptation), for
            comparisons at a fixed cost.
        seed: Seed of the schedule's random stream (rank 0's is used on all ranks).
        Other arguments as in :class:`~common.optim.base.SAMBase`.
    """

    def __init__(self, params, base_optimizer='SGD', rho: float = 0.05, *, beta: float = 0.7,
                 reuse_steps: int = 6, window: int = 50, max_p: float = 0.8, a1: float = 0.13,
                 a2: float = 0.13, blocks: int = 5, stat_tensors: Optional[int] = 10,
                 warmup_steps: int = 0, fixed_rate: Optional[float] = None,
                 seed: Optional[int] = None, **kwargs):
        if not 0 < beta < 1:
            raise ValueError(f'beta must be in (0, 1) (decay of the reused PSF), got {beta}.')
        if window < 1 or reuse_steps < 0 or blocks < 1 or warmup_steps < 0:
            raise ValueError('need window >= 1, reuse_steps >= 0, blocks >= 1 and warmup_steps >= 0; '
                             f'got {window}, {reuse_steps}, {blocks}, {warmup_steps}.')
        if not 0 < max_p <= 1:
            raise ValueError(f'max_p must be in (0, 1], got {max_p}.')
        if fixed_rate is not None and not 0 < fixed_rate <= 1:
            raise ValueError(f'fixed_rate must be None or in (0, 1], got {fixed_rate}.')
        if stat_tensors is not None and stat_tensors < 1:
            raise ValueError(f'stat_tensors must be None or >= 1, got {stat_tensors}.')
        super().__init__(params, base_optimizer, rho=rho, **kwargs)
        self.beta, self.reuse_steps, self.window, self.max_p = beta, reuse_steps, window, max_p
        self.a1, self.a2, self.blocks, self.stat_tensors = a1, a2, blocks, stat_tensors
        self.warmup_steps, self.fixed_rate = warmup_steps, fixed_rate
        self.max_sr = max(1, math.floor(window * max_p))
        self.base_sr = 1.0 if fixed_rate is None else min(max(fixed_rate * window, 1.0), window)
        self.rng = SharedRandom(seed)
        device = self.param_groups[0]['params'][0].device
        self.psf_norms = _Ring(window, device)
        self.ratios = _Ring(window, device)
        self.variances = _Ring(window, device)
        self.iteration = 0
        self.window_sam = 0          # SAM iterations so far in the current window
        self.reuse_count = 0         # non-SAM iterations since the last SAM step
        self.sam_iterations = 0
        self.rate_history: List[float] = []   # base_sr / K at each window start
        self._psf = ParamBuffers()

    # -------------------------------------------------------------- schedule
    def _in_warmup(self) -> bool:
        return self.iteration < self.warmup_steps

    def _plan(self, sample_ids) -> Iteration:
        if self._in_warmup():
            return Iteration(sam=True)
        pos = (self.iteration - self.warmup_steps) % self.window
        if pos == 0:
            self._start_window()
        quota = math.floor(self.base_sr)
        u = self.rng.uniform()
        catch_up = self.window - pos <= quota - self.window_sam
        sam = (self.window_sam < quota and u < self.base_sr / self.window) or catch_up
        self.window_sam += int(sam)
        return Iteration(sam=sam)

    def _start_window(self) -> None:
        """Adapt base_sr from the trends of r and v (one host sync per window)."""
        if self.fixed_rate is None:
            rho_r = relative_trend(self.ratios.ordered().tolist(), self.eps_stat)
            rho_v = relative_trend(self.variances.ordered().tolist(), self.eps_stat)
            base_sr = self.base_sr * (1 + self.a1 * rho_r + self.a2 * rho_v)
            self.base_sr = float(broadcast_from_rank0(min(max(base_sr, 1.0), float(self.max_sr))))
        self.window_sam = 0
        self.rate_history.append(self.base_sr / self.window)

    eps_stat = 1e-12

    # ---------------------------------------------------------- SAM iteration
    def _stat_norm(self, tensors: List[Tensor]) -> Tensor:
        last = tensors if self.stat_tensors is None else tensors[-self.stat_tensors:]
        return global_norm(last)

    def _before_perturb(self, groups: List[GradGroup]) -> None:
        self._psf.hold(flat_params(groups), flat_grads(groups))  # PSF buffer holds g until g_s arrives

    def _after_sam_step(self, groups: List[GradGroup], plan: Iteration, loss, loss_after) -> None:
        # PSF = g_s - g exists for the parameters with a gradient in both passes.
        grads = self._psf.keep_common(flat_params(groups), flat_grads(groups))
        psf = self._psf.tensors
        self.reuse_count = 0
        self.sam_iterations += 1
        if not psf:  # no parameter had a gradient in both passes: nothing to reuse or measure
            return
        grad_norm = self._stat_norm(psf)         # ||g||, before g is turned into PSF
        torch._foreach_sub_(psf, grads)          # g - g_s
        torch._foreach_neg_(psf)                 # PSF = g_s - g
        all_reduce_mean_(psf)                    # g is rank-local: average PSF over ranks
        psf_norm = self._stat_norm(psf)
        self.psf_norms.push(psf_norm)
        self.ratios.push(psf_norm / (grad_norm + self.eps_stat))
        if self.psf_norms.filled >= 2 * self.blocks:
            self.variances.push(block_variance(self.psf_norms.ordered(), self.blocks))

    def _skipped_sam_step(self) -> None:
        self.reuse_count = self.reuse_steps  # PSF holds a non-finite g: reuse nothing until the next SAM step

    def _non_sam_step(self, groups: List[GradGroup]) -> None:
        if not self._psf or self.reuse_count >= self.reuse_steps:
            return
        self.reuse_count += 1
        # g + beta^k PSF where a parameter has a stored PSF; plain g elsewhere.
        grads, psf = self._psf.matching(flat_params(groups), flat_grads(groups))
        if grads:
            torch._foreach_add_(grads, psf, alpha=self.beta ** self.reuse_count)

    def _end_iteration(self, plan: Iteration) -> None:
        self.iteration += 1

    # ------------------------------------------------------------ statistics
    def statistics(self) -> dict:
        """Current SAM rate (base_sr / K), the realised SAM share and the window count."""
        return dict(sam_rate=self.base_sr / self.window,
                    sam_share=self.sam_iterations / max(self.iteration, 1),
                    base_sr=self.base_sr, windows=float(len(self.rate_history)))

    # ------------------------------------------------------------ checkpoint
    def _extra_state(self) -> dict:
        index = self._param_index()
        return dict(psf=self._psf.state_dict(index),
                    iteration=self.iteration, window_sam=self.window_sam,
                    reuse_count=self.reuse_count, sam_iterations=self.sam_iterations,
                    base_sr=self.base_sr, rate_history=list(self.rate_history),
                    rng=self.rng.state_dict(), psf_norms=self.psf_norms.state_dict(),
                    ratios=self.ratios.state_dict(), variances=self.variances.state_dict())

    def _load_extra_state(self, state: dict) -> None:
        self._psf.load_state_dict(state['psf'], [p for g in self.param_groups for p in g['params']])
        for key in ('iteration', 'window_sam', 'reuse_count', 'sam_iterations', 'base_sr'):
            setattr(self, key, state[key])
        self.rate_history = list(state['rate_history'])
        self.rng.load_state_dict(state['rng'])
        for key in ('psf_norms', 'ratios', 'variances'):
            getattr(self, key).load_state_dict(state[key])
