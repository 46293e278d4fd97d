"""Turn any MMEngine config into one that trains with a SAM-family optimizer (for scripts).

In a config file the change is three keys (see the README)::

    optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                         sam=dict(type='AUSAM', rho=0.1, alpha=0.5))
    train_cfg = dict(type='SAMEpochBasedTrainLoop')

:func:`use_sam` makes the same change on a loaded ``Config`` (benchmarks, tests), keeping
the base optimizer, ``paramwise_cfg``, clipping and the schedule of the original.
"""
from __future__ import annotations

from typing import Optional

from mmengine.config import Config


def use_sam(cfg: Config, sam: dict, dtype: Optional[str] = None, **loop_options) -> Config:
    """Train ``cfg`` with the SAM-family optimizer ``sam`` (``type`` and its options), in place.

    Args:
        cfg: A config whose ``optim_wrapper`` has an ``optimizer`` (the base optimizer) and
            whose ``train_cfg`` is epoch- or iteration-based.
        sam: ``dict(type='AUSAM', rho=0.1, ...)``: the optimizer's own options only.
        dtype: The wrapper's autocast dtype (``None`` keeps the config's).
        **loop_options: Options of the SAM train loop (``warmup_epochs``, ``sample_id_key``,
            ``stats_interval``, ``share_window``).

    Returns:
        ``cfg``.
    """
    wrapper = cfg.optim_wrapper
    if wrapper.get('type') == 'AmpOptimWrapper':  # keep mixed precision: AmpOptimWrapper's default is fp16
        dtype = dtype or wrapper.get('dtype') or 'float16'
        wrapper.pop('dtype', None)
    wrapper.type = 'SAMOptimWrapper'
    wrapper.constructor = 'SAMOptimWrapperConstructor'
    wrapper.sam = dict(sam)
    if dtype is not None:
        wrapper.dtype = dtype
    train_cfg = cfg.train_cfg
    if train_cfg.get('type') not in (None, 'EpochBasedTrainLoop', 'IterBasedTrainLoop',
                                     'SAMEpochBasedTrainLoop', 'SAMIterBasedTrainLoop'):
        raise ValueError(f'use_sam: train_cfg type {train_cfg.type!r} is not one of MMEngine\'s loops; '
                         'its SAM counterpart is unknown.')
    by_epoch = train_cfg.get('by_epoch', 'max_epochs' in train_cfg) if train_cfg.get('type') is None \
        else 'Epoch' in train_cfg.type
    train_cfg.pop('by_epoch', None)  # MMEngine refuses by_epoch next to type
    train_cfg.type = 'SAMEpochBasedTrainLoop' if by_epoch else 'SAMIterBasedTrainLoop'
    train_cfg.update(loop_options)
    return cfg
