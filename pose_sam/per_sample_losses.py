"""Per-sample versions of MMPose's keypoint losses, for AUSAM (imports mmpose).

AUSAM needs one loss per sample (shape ``[B]``); MMPose's losses reduce over the batch.
Each wrapper here holds MMPose's own loss module as ``base`` and computes the same
quantity with every reduction except the one over the batch, reusing MMPose's internals
(``_get_mask``, ``criterion``, or the module itself on one sample). Contract, checked by
``tests/pose_sam/test_pose_losses.py``: on the whole batch, the mean of the per-sample
losses equals MMPose's scalar loss (up to float rounding), so the gradient scale is
MMPose's and a config's learning rate stays right.

Supported (keyed by the loss module's exact class; register more with
:func:`register_per_sample_loss`), with MMPose 1.3.2's reduction:

- ``KeypointMSELoss`` (``HeatmapHead``, ``ViPNASHead``, ``CPMHead``): the mean over
  B*K*H*W of ``mse * mask``, mask = target weights (used whenever the head passes them:
  in 1.3.2 ``use_target_weight`` is stored but not read) x non-empty channels
  (``skip_empty_channel``) x the optional pixel mask, times ``loss_weight``. Per sample:
  the mean over K*H*W; equal sizes make the batch mean exact.
- ``KLDiscretLoss`` (``SimCCHead``, ``RTMCCHead``, ``RTMWHead``): with
  ``t_nk = mean_W KL(softmax(label_beta * gt) if label_softmax else gt ||
  softmax(beta * pred))`` for x and y, the loss is
  ``sum_{n,k} (t^x_nk + t^y_nk) * w_nk * m_k / K``, w the target weights
  (``use_target_weight``), m_k = ``mask_weight`` for the ``mask`` keypoints, else 1. It
  SUMS over the batch (it grows with B) and divides by K only, so per sample it is
  ``B_ref * sum_k (t^x_nk + t^y_nk) w_nk m_k / K`` with B_ref the size of the
  iteration's whole mini-batch (set per iteration in ``batch_size`` by the pose
  adapter; ``None``: the rows given). On the whole batch the mean is MMPose's loss; on
  AUSAM's subset the mean estimates that same whole-batch loss (not alpha times it),
  and DLPs stay on one scale across full-batch epoch 0 and subset epochs.
- ``KeypointOHKMMSELoss`` (``MSPNHead``), ``AdaptiveWingLoss``, ``CombinedTargetMSELoss``:
  means over the batch of per-sample terms of equal size, so MMPose's own module is run
  on each sample alone (exact, one call per sample).

Not supported (AUSAM raises; SAM and vSAM work): everything else, e.g. regression losses
(``SmoothL1Loss``, ``RLELoss``), ``FocalHeatmapLoss`` (normalised by the positives of
the whole batch), ``CombinedLoss`` and bottom-up heads.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Type

import torch
import torch.nn.functional as F
from mmpose.models.losses.classification_loss import KLDiscretLoss
from mmpose.models.losses.heatmap_loss import (AdaptiveWingLoss, CombinedTargetMSELoss, KeypointMSELoss,
                                               KeypointOHKMMSELoss)
from torch import Tensor, nn

#: Exact loss class -> ``factory(loss_module) -> per-sample module``.
PER_SAMPLE_LOSSES: Dict[Type[nn.Module], Callable[[nn.Module], nn.Module]] = {}


def register_per_sample_loss(loss_cls: Type[nn.Module]):
    """Decorator: ``factory(loss_module)`` builds the per-sample version of ``loss_cls``.

    Matching is on the exact class (``FocalHeatmapLoss`` subclasses ``KeypointMSELoss``
    but reduces differently).
    """
    def register(factory):
        PER_SAMPLE_LOSSES[loss_cls] = factory
        return factory
    return register


class PerSampleLoss(nn.Module):
    """Base of the wrappers: MMPose's loss module is kept as ``base``.

    The supported losses have no parameters or buffers, so wrapping changes no
    checkpoint key.

    Args:
        base: MMPose's loss module.
    """

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base


@register_per_sample_loss(KeypointMSELoss)
class PerSampleKeypointMSELoss(PerSampleLoss):
    """``KeypointMSELoss`` averaged over all dims but the batch: shape ``[B]``."""

    def forward(self, output: Tensor, target: Tensor, target_weights: Optional[Tensor] = None,
                mask: Optional[Tensor] = None) -> Tensor:
        _mask = self.base._get_mask(target, target_weights, mask)
        loss = F.mse_loss(output, target, reduction='none')
        if _mask is not None:
            loss = loss * _mask
        return loss.flatten(1).mean(1) * self.base.loss_weight


@register_per_sample_loss(KLDiscretLoss)
class PerSampleKLDiscretLoss(PerSampleLoss):
    """``KLDiscretLoss`` per sample, scaled so the batch mean is MMPose's batch sum.

    Attributes:
        batch_size: B_ref, the size of the iteration's whole mini-batch (see module
            docstring); ``None`` uses the number of rows given.
    """

    def __init__(self, base: KLDiscretLoss):
        super().__init__(base)
        self.batch_size: Optional[int] = None

    def forward(self, pred_simcc, gt_simcc, target_weight: Tensor) -> Tensor:
        base = self.base
        n, k, _ = pred_simcc[0].shape
        per_keypoint = 0
        for pred, target in zip(pred_simcc, gt_simcc):
            t = base.criterion(pred.reshape(-1, pred.size(-1)), target.reshape(-1, target.size(-1)))
            per_keypoint = per_keypoint + t.reshape(n, k)
        if base.use_target_weight:
            per_keypoint = per_keypoint * target_weight.reshape(n, k)
        if base.mask is not None:
            keypoint_scale = per_keypoint.new_ones(k)
            keypoint_scale[base.mask] = base.mask_weight
            per_keypoint = per_keypoint * keypoint_scale
        scale = n if self.batch_size is None else self.batch_size
        return per_keypoint.sum(1) * (scale / k)


class RowwisePerSampleLoss(PerSampleLoss):
    """MMPose's loss run on each sample alone: exact for means of per-sample terms."""

    def forward(self, output: Tensor, target: Tensor, target_weights: Optional[Tensor] = None) -> Tensor:
        rows = []
        for i in range(output.shape[0]):
            weights = None if target_weights is None else target_weights[i:i + 1]
            rows.append(self.base(output[i:i + 1], target[i:i + 1], weights).reshape(()))
        return torch.stack(rows)


for _cls in (KeypointOHKMMSELoss, AdaptiveWingLoss, CombinedTargetMSELoss):
    register_per_sample_loss(_cls)(RowwisePerSampleLoss)


def per_sample_loss(loss_module: nn.Module, head: nn.Module) -> nn.Module:
    """The per-sample version of ``loss_module`` (already per-sample: returned as is).

    Raises:
        TypeError: For a loss class without a registered per-sample version; names the
            head and the loss and says what to do.
    """
    if isinstance(loss_module, PerSampleLoss):
        return loss_module
    factory = PER_SAMPLE_LOSSES.get(type(loss_module))
    if factory is None:
        supported = ', '.join(sorted(c.__name__ for c in PER_SAMPLE_LOSSES))
        raise TypeError(
            f'AUSAM needs per-sample losses, but {type(head).__name__}.loss_module is '
            f'{type(loss_module).__name__}, which has no per-sample version (supported: {supported}). '
            'Train this model with SAM or VSAM (they use MMPose\'s scalar loss), or register a '
            'per-sample version with pose_sam.per_sample_losses.register_per_sample_loss'
            f'({type(loss_module).__name__}), or a SAM model adapter '
            '(common.engine.model_adapters.register_sam_model_adapter).')
    return factory(loss_module)


def use_per_sample_losses(head: nn.Module) -> list:
    """Replace ``head.loss_module`` (or each entry of a ``ModuleList``) by its per-sample version.

    Returns:
        The per-sample loss modules now in the head.
    """
    loss_module = getattr(head, 'loss_module', None)
    if loss_module is None:
        raise TypeError(f'AUSAM: {type(head).__name__} has no loss_module to make per-sample; train '
                        'with SAM or VSAM, or register a SAM model adapter for this head.')
    if isinstance(loss_module, nn.ModuleList):
        wrapped = [per_sample_loss(entry, head) for entry in loss_module]  # all or none
        for i, entry in enumerate(wrapped):
            loss_module[i] = entry
        return wrapped
    head.loss_module = per_sample_loss(loss_module, head)
    return [head.loss_module]
