"""AUSAM: asymptotic unbiased sample sampling for SAM (arXiv 2406.08001, AAAI 2025).

Per mini-batch, SAM runs on a subset S of k = max(1, floor(alpha B)) samples drawn
without replacement with probabilities that grow with each sample's ADLP, the running
mean of its Difference in Loss before and after the Perturbation,
DLP_i = |L_i(w + e) - L_i(w)| ~ rho ||grad L_i|| cos(angle to g): a free proxy for the
per-sample gradient norm. Both passes run on S only, so with alpha = 0.5 a step costs
about one SGD step on the whole batch.

Sampling probabilities for batch ids I with s = ADLP[I]:
q = (s - min s) / (max s - min s) (f_max(t) - f_min) + f_min, p = q / sum q, uniform
when all s are equal; f_max(t) ramps linearly from f_min (epoch 0) to f_max at
``ramp_epochs``. Epoch 0 trains on the whole batch and fills the table.
"""
from __future__ import annotations

import math
from typing import List, Optional

import torch
import torch.distributed as dist
from torch import Tensor

from ._distributed import draw_seed, is_distributed, rank, world_size
from .base import GradGroup, Iteration, SAMBase


class AUSAM(SAMBase):
    """SAM on an ADLP-weighted subset of each mini-batch.

    The closure takes the batch positions to evaluate and returns per-sample losses::

        optimizer = AUSAM(model.parameters(), num_samples=len(train_set), lr=0.1,
                          momentum=0.9, rho=0.1, alpha=0.5)
        for epoch in range(epochs):
            optimizer.set_epoch(epoch)
            for x, y, ids in loader:  # ids: stable index of each sample in train_set
                optimizer.step(
                    lambda idx: F.cross_entropy(model(x[idx]), y[idx], reduction='none'),
                    model=model, sample_ids=ids)

    Args:
        num_samples: Size of the training set; ids must lie in ``[0, num_samples)``.
            Required, but may be ``None`` if :meth:`set_num_samples` is called later.
        alpha: Share of the batch trained on, in (0, 1].
        f_min, f_max: Range the ADLPs of a batch are mapped onto before normalising.
        ramp_epochs: Epochs over which the upper end ramps from ``f_min`` to ``f_max``
            (spec: 30 for 200 epochs; about 15% of a short schedule).
        importance_weighted: Weight the subset's losses by 1 / (B p_i) (unbiased
            estimate of the batch mean) instead of the plain mean (authors' default).
        dlp_momentum: ``None`` keeps the running mean of DLP (default); a float beta
            in (0, 1) keeps an EMA ``beta * ADLP + (1 - beta) * DLP`` instead.
        uniform: Draw the subset uniformly (the uniform-subset control).
        seed: Seed of the subset sampler.
        Other arguments as in :class:`~common.optim.base.SAMBase`.

    Under DistributedDataParallel each rank draws from its own batch; the (id, DLP)
    pairs of all ranks are all-gathered every step so that every rank holds the same
    table. Ranks must have equal batch sizes (MMEngine's ``DefaultSampler`` and
    ``DistributedSampler`` pad to this).
    """

    uses_sample_ids = True

    def __init__(self, params, base_optimizer='SGD', rho: float = 0.1, *, num_samples: Optional[int],
                 alpha: float = 0.5, f_min: float = 0.1, f_max: float = 0.5,
                 ramp_epochs: float = 30, importance_weighted: bool = False,
                 dlp_momentum: Optional[float] = None, uniform: bool = False,
                 seed: Optional[int] = None, **kwargs):
        if not 0 < alpha <= 1:
            raise ValueError(f'alpha must be in (0, 1] (the share of the batch trained on), got {alpha}.')
        if not 0 < f_min <= f_max:
            raise ValueError(f'need 0 < f_min <= f_max, got f_min={f_min}, f_max={f_max}.')
        if ramp_epochs < 0:
            raise ValueError(f'ramp_epochs must be >= 0, got {ramp_epochs}.')
        if dlp_momentum is not None and not 0 < dlp_momentum < 1:
            raise ValueError(f'dlp_momentum must be None or in (0, 1), got {dlp_momentum}.')
        super().__init__(params, base_optimizer, rho=rho, **kwargs)
        self.alpha = alpha
        self.f_min, self.f_max, self.ramp_epochs = f_min, f_max, ramp_epochs
        self.importance_weighted, self.dlp_momentum, self.uniform = importance_weighted, dlp_momentum, uniform
        device = self.param_groups[0]['params'][0].device
        self.num_samples = None
        if num_samples is not None:
            self.set_num_samples(num_samples)
        if seed is None:
            seed = draw_seed()
        self.seed = seed
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self._rank_seeded = False
        self.epoch = 0
        self.last_subset_size = 0

    def set_num_samples(self, num_samples: int) -> None:
        """Allocate the table for a training set of ``num_samples`` (ids in [0, num_samples)).

        ``num_samples=None`` at construction defers this to a caller that learns the data
        set size later (the MMEngine SAM train loop does).
        """
        if not (isinstance(num_samples, int) and num_samples > 0):
            raise ValueError(f'num_samples must be a positive int (the training-set size), got {num_samples!r}.')
        if num_samples == self.num_samples:
            return
        device = self.param_groups[0]['params'][0].device
        self.num_samples = num_samples
        # The table: sum of DLP, number of observations, ADLP (1 until first observed).
        self.dlp_sum = torch.zeros(num_samples, device=device)
        self.dlp_count = torch.zeros(num_samples, device=device)
        self.adlp = torch.ones(num_samples, device=device)

    # ------------------------------------------------------------------ epochs
    def set_epoch(self, epoch: int) -> None:
        """Set the current epoch (0-based): epoch 0 trains on whole batches."""
        self.epoch = int(epoch)

    def upper_frequency(self) -> float:
        """f_max(t): linear ramp from f_min at epoch 0 to f_max at ``ramp_epochs``."""
        if self.ramp_epochs == 0:
            return self.f_max
        t = min(self.epoch / self.ramp_epochs, 1.0)
        return self.f_min + t * (self.f_max - self.f_min)

    def probabilities(self, sample_ids: Tensor) -> Tensor:
        """Sampling probabilities p of the batch's samples (sum to 1)."""
        batch = sample_ids.numel()
        if self.uniform:
            return torch.full((batch,), 1.0 / batch, device=self.adlp.device)
        s = self.adlp[sample_ids]
        lo, hi = s.min(), s.max()
        spread = hi - lo
        # All-equal ADLP maps to f_min for everyone (uniform), without dividing by zero.
        scaled = torch.where(spread > 0, (s - lo) / spread.clamp_min(torch.finfo(s.dtype).tiny),
                             torch.zeros_like(s))
        q = scaled * (self.upper_frequency() - self.f_min) + self.f_min
        return q / q.sum()

    # -------------------------------------------------------------- iteration
    def _plan(self, sample_ids: Optional[Tensor]) -> Iteration:
        if self.num_samples is None:
            raise RuntimeError(f'{type(self).__name__}: the sample table has no size; pass num_samples '
                               '(the training-set size) or call set_num_samples() before training.')
        if sample_ids is None:
            raise ValueError(f'{type(self).__name__}.step needs sample_ids: the stable index of each '
                             'sample of the batch in the training set (shape [batch]).')
        if not isinstance(sample_ids, Tensor) or sample_ids.dim() != 1 or sample_ids.dtype.is_floating_point:
            raise ValueError('sample_ids must be a 1-D integer tensor with one id per sample, got '
                             f'{sample_ids!r}.')
        batch = sample_ids.numel()
        if batch == 0:
            raise ValueError(f'{type(self).__name__} got an empty batch.')
        lo, hi = int(sample_ids.min()), int(sample_ids.max())  # free for ids on the CPU
        if lo < 0 or hi >= self.num_samples:
            raise IndexError(f'sample_ids must lie in [0, num_samples={self.num_samples}); got '
                             f'[{lo}, {hi}]. Is num_samples the size of the training set, and are '
                             'the ids dataset indices?')
        if not self._rank_seeded:
            self._seed_per_rank()
        # non_blocking: from pageable host memory this is still safe, and it does not wait
        # for the stream (no host sync per step on CUDA).
        self._ids = ids = sample_ids.to(self.adlp.device, torch.long, non_blocking=True)
        if self.epoch == 0:
            self.last_subset_size = batch
            return Iteration(sam=True, index=torch.arange(batch, device=ids.device))
        k = max(1, math.floor(self.alpha * batch))
        p = self.probabilities(ids)
        index = torch.multinomial(p, k, replacement=False, generator=self.generator)
        self.last_subset_size = k
        weights = 1.0 / (batch * p[index]) if self.importance_weighted else None
        return Iteration(sam=True, index=index, weights=weights)

    def _seed_per_rank(self) -> None:
        # Ranks draw from different batches; decorrelate their subset draws.
        if world_size() > 1:
            self.generator.manual_seed(self.seed + rank())
        self._rank_seeded = True

    def _after_sam_step(self, groups: List[GradGroup], plan: Iteration, loss: Tensor,
                        loss_after: Tensor) -> None:
        ids = self._ids[plan.index]
        dlp = (loss_after.float() - loss.float()).abs().to(self.adlp.device)
        if is_distributed():
            ids, dlp = _all_gather_pairs(ids, dlp)
        self.update_table(ids, dlp)

    def update_table(self, ids: Tensor, dlp: Tensor) -> None:
        """ADLP update: running mean of DLP (or EMA); first observation sets ADLP = DLP."""
        self.dlp_sum.index_add_(0, ids, dlp)
        self.dlp_count.index_add_(0, ids, torch.ones_like(dlp))
        if self.dlp_momentum is None:
            self.adlp[ids] = self.dlp_sum[ids] / self.dlp_count[ids]
        else:
            first = self.dlp_count[ids] == 1
            ema = self.dlp_momentum * self.adlp[ids] + (1 - self.dlp_momentum) * dlp
            self.adlp[ids] = torch.where(first, dlp, ema)

    # ------------------------------------------------------------ statistics
    def statistics(self) -> dict:
        """ADLP statistics over observed samples (host sync: call per log interval)."""
        seen = self.dlp_count > 0
        adlp = self.adlp[seen]
        stats = dict(subset_size=float(self.last_subset_size), seen=float(seen.float().mean()))
        if adlp.numel():
            stats.update(adlp_mean=float(adlp.mean()), adlp_std=float(adlp.std()) if adlp.numel() > 1 else 0.0,
                         adlp_min=float(adlp.min()), adlp_max=float(adlp.max()))
        return stats

    # ------------------------------------------------------------ checkpoint
    def _extra_state(self) -> dict:
        return dict(dlp_sum=self.dlp_sum, dlp_count=self.dlp_count, adlp=self.adlp,
                    generator=self.generator.get_state(), epoch=self.epoch)

    def _load_extra_state(self, state: dict) -> None:
        if self.num_samples is None:
            self.set_num_samples(state['adlp'].numel())
        if state['adlp'].numel() != self.num_samples:
            raise ValueError(f'checkpoint AUSAM table has {state["adlp"].numel()} samples, this '
                             f'optimizer {self.num_samples}: the training set changed.')
        self.dlp_sum.copy_(state['dlp_sum'])
        self.dlp_count.copy_(state['dlp_count'])
        self.adlp.copy_(state['adlp'])
        self.generator.set_state(state['generator'])
        self._rank_seeded = True
        self.epoch = state['epoch']


class UniformSubsetSAM(AUSAM):
    """Control for AUSAM: the same subset machinery with uniform probabilities.

    If AUSAM does not beat this at the same ``alpha``, the ADLP sampling buys nothing.
    """

    def __init__(self, params, base_optimizer='SGD', rho: float = 0.1, **kwargs):
        if not kwargs.setdefault('uniform', True):
            raise ValueError('UniformSubsetSAM draws uniformly by definition; uniform=False is AUSAM.')
        super().__init__(params, base_optimizer, rho=rho, **kwargs)


def _all_gather_pairs(ids: Tensor, dlp: Tensor):
    """Concatenate every rank's (id, DLP) pairs (equal subset sizes on all ranks)."""
    world = world_size()
    packed = torch.stack([ids.double(), dlp.double()])  # ids are exact in float64
    gathered = [torch.empty_like(packed) for _ in range(world)]
    dist.all_gather(gathered, packed)
    allp = torch.cat(gathered, dim=1)
    return allp[0].long(), allp[1].float()
