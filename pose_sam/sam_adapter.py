"""The SAM model adapter for MMPose pose estimators (AUSAM/UniformSubsetSAM only).

With an optimizer that uses sample ids, the SAM train loop calls :func:`mmpose_adapter` when it starts,
which, for an MMPose ``BasePoseEstimator``:

1. replaces the head's loss module by its per-sample version
   (:mod:`pose_sam.per_sample_losses`; a clear error names unsupported heads/losses);
2. builds the annotation-id table of the training set (:mod:`pose_sam.sample_ids`);
3. returns :class:`PoseSampleIds`, which gives each batch's dense ids and tells the
   per-sample losses that sum over the batch (``KLDiscretLoss``) the batch size.

With SAM, vSAM and the other controls it changes nothing: MMPose's scalar losses are all
they need. Importing this module does not import mmpose (the adapter looks the estimator
class up only once mmpose is loaded), so ``pose_sam.registration`` stays cheap for
non-pose configs.
"""
from __future__ import annotations

import sys
from typing import Any, List

from mmengine.model import is_model_wrapper
from torch import Tensor, nn

from common.engine.model_adapters import register_sam_model_adapter

from .sample_ids import AnnotationIdTable

_ESTIMATOR_MODULE = 'mmpose.models.pose_estimators.base'


class PoseSampleIds:
    """Sample-id function of a pose model: ``data`` (preprocessed batch) -> dense ids.

    Args:
        table: The training set's annotation-id table.
        losses: The head's per-sample loss modules; those with a ``batch_size`` attribute
            get the size of each iteration's whole batch.
    """

    def __init__(self, table: AnnotationIdTable, losses: List[nn.Module]):
        self.table = table
        self.batch_sized = [m for m in losses if hasattr(m, 'batch_size')]

    def __call__(self, data: Any) -> Tensor:
        samples = data.get('data_samples') if isinstance(data, dict) else None
        if samples is None:
            raise KeyError('AUSAM with MMPose: the preprocessed batch has no data_samples to read '
                           'annotation ids from.')
        for loss in self.batch_sized:
            loss.batch_size = len(samples)
        return self.table.dense_ids(samples)


def is_pose_estimator(model: nn.Module) -> bool:
    """Whether ``model`` is an MMPose pose estimator (False while mmpose is not imported)."""
    module = sys.modules.get(_ESTIMATOR_MODULE)
    return module is not None and isinstance(model, module.BasePoseEstimator)


@register_sam_model_adapter
def mmpose_adapter(runner, optimizer):
    """Per-sample losses and annotation-id sample ids for MMPose estimators under AUSAM."""
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if not is_pose_estimator(model) or not getattr(optimizer, 'uses_sample_ids', False):
        return None
    from .per_sample_losses import use_per_sample_losses  # imports mmpose, loaded by now

    if getattr(model, 'head', None) is None:
        raise TypeError(f'AUSAM with MMPose: {type(model).__name__} has no head to take per-sample '
                        'losses from; train with SAM or VSAM.')
    losses = use_per_sample_losses(model.head)
    table = AnnotationIdTable(runner.train_dataloader.dataset)
    return PoseSampleIds(table, losses)
