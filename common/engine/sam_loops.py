"""Train loops that run the SAM-family iteration: ``SAMEpochBasedTrainLoop``, ``SAMIterBasedTrainLoop``.

Why a loop: MMEngine's ``EpochBasedTrainLoop.run_iter`` / ``IterBasedTrainLoop.run_iter``
call ``model.train_step(data, optim_wrapper)``, whose ``BaseModel`` implementation runs one
forward and ``optim_wrapper.update_params(loss)``. A SAM step needs a closure over the batch
(two passes, or AUSAM's subset) instead. The train loop is the component MMEngine lets a
config replace (``train_cfg = dict(type=...)``, registry ``LOOPS``) to change what one
iteration does, without touching the model or patching live objects. These loops subclass
MMEngine's two loops and differ in one line of ``run_iter`` (the call of
:func:`~common.engine.train_step.sam_train_step`) plus what a SAM run needs around it:

- at the start of ``run`` (after MMEngine has built the optimizer and resumed): AUSAM's
  table is sized from the training set; vSAM's ``warmup_epochs`` become iterations; the
  registered SAM model adapters (:mod:`common.engine.model_adapters`) prepare the model
  and may supply the sample-id function;
- every iteration: epoch-aware optimizers (AUSAM) learn the epoch; ``train/rho``,
  ``train/sam_share`` (share of SAM iterations over the last ``share_window``), AUSAM's
  ``train/subset_size``, and every ``stats_interval`` iterations the optimizer's
  ``statistics()`` (ADLP, vSAM's rate; a host sync) go to the message hub, hence to the
  log, the JSON scalars and TensorBoard.

Switching a config to SAM: ``train_cfg = dict(type='SAMEpochBasedTrainLoop', ...)`` next to
the SAM optimizer wrapper (:mod:`common.engine.optim_constructor`). MMEngine refuses
``type`` and ``by_epoch`` in one ``train_cfg``, so a child of a config that sets
``by_epoch`` (MMPose's) replaces the dict: ``train_cfg = dict(_delete_=True,
type='SAMEpochBasedTrainLoop', max_epochs=210, val_interval=10)``.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Optional

from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from common.options import checked_options

from .model_adapters import apply_sam_model_adapters
from .optim_wrapper import SAMOptimWrapper
from .train_step import sam_train_step


class _SAMLoop:
    """What both SAM loops add to MMEngine's loops (see the module docstring).

    Args:
        warmup_epochs: vSAM only: epochs (may be fractional) whose iterations are all SAM
            (the paper's 3 of 200); converted to iterations with the loader's length.
        sample_id_key: Where AUSAM finds each sample's stable id (``metainfo`` of the data
            samples, or a key of the batch dict); see :func:`~common.engine.train_step.sample_ids_of`.
        stats_interval: Iterations between ``statistics()`` reports (they cost a host sync).
        share_window: Iterations over which ``train/sam_share`` is measured.
    """

    def _init_sam(self, warmup_epochs: Optional[float], sample_id_key: str, stats_interval: int,
                  share_window: int) -> None:
        if warmup_epochs is not None and not warmup_epochs >= 0:
            raise ValueError(f'warmup_epochs must be >= 0 (vSAM epochs that are all SAM), got {warmup_epochs}.')
        if stats_interval < 1 or share_window < 1:
            raise ValueError(f'stats_interval and share_window must be >= 1, got {stats_interval}, {share_window}.')
        self.warmup_epochs, self.sample_id_key = warmup_epochs, sample_id_key
        self.stats_interval = stats_interval
        self.sam_flags = deque(maxlen=share_window)
        self.sample_ids_fn = None

    def run(self):
        """MMEngine's ``run``, after preparing the optimizer and model (see the module docstring)."""
        self._prepare_sam()
        return super().run()

    def _prepare_sam(self) -> None:
        wrapper = self.runner.optim_wrapper
        if not isinstance(wrapper, SAMOptimWrapper):
            raise TypeError(f'{type(self).__name__} trains with a SAM-family optimizer: set optim_wrapper = '
                            "dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor', "
                            f"sam=dict(type=...)), got {type(wrapper).__name__}.")
        optimizer = wrapper.optimizer
        if hasattr(optimizer, 'set_num_samples') and optimizer.num_samples is None:
            optimizer.set_num_samples(len(self.dataloader.dataset))
        if self.warmup_epochs is not None:
            if not hasattr(optimizer, 'warmup_steps'):
                raise ValueError(f'warmup_epochs is a vSAM option; {type(optimizer).__name__} has no '
                                 'warm-up. Remove it from train_cfg.')
            optimizer.warmup_steps = math.ceil(self.warmup_epochs * len(self.dataloader))
        self.sample_ids_fn = apply_sam_model_adapters(self.runner, optimizer)

    def _sam_iteration(self, data_batch) -> dict:
        wrapper = self.runner.optim_wrapper
        optimizer = wrapper.optimizer
        if hasattr(optimizer, 'set_epoch'):
            optimizer.set_epoch(self.runner.iter // len(self.dataloader))
        outputs = sam_train_step(self.runner.model, data_batch, wrapper, id_key=self.sample_id_key,
                                 sample_ids_fn=self.sample_ids_fn)
        hub = self.runner.message_hub
        hub.update_scalar('train/rho', optimizer.param_groups[0]['rho'])
        self.sam_flags.append(optimizer.last_iteration.sam)
        hub.update_scalar('train/sam_share', sum(self.sam_flags) / len(self.sam_flags))
        if hasattr(optimizer, 'last_subset_size'):
            hub.update_scalar('train/subset_size', float(optimizer.last_subset_size))
        if hasattr(optimizer, 'statistics') and (self.runner.iter + 1) % self.stats_interval == 0:
            for key, value in optimizer.statistics().items():
                hub.update_scalar(f'train/{key}', value)
        return outputs


@LOOPS.register_module()
@checked_options
class SAMEpochBasedTrainLoop(_SAMLoop, EpochBasedTrainLoop):
    """MMEngine's ``EpochBasedTrainLoop`` running SAM-family iterations.

    Args: those of ``EpochBasedTrainLoop`` (``max_epochs``, ``val_begin``, ``val_interval``,
    ``dynamic_intervals``) and the SAM options of :class:`_SAMLoop`.
    """

    def __init__(self, runner, dataloader, max_epochs: int, val_begin: int = 1, val_interval: int = 1,
                 dynamic_intervals=None, warmup_epochs: Optional[float] = None, sample_id_key: str = 'sample_idx',
                 stats_interval: int = 50, share_window: int = 50):
        super().__init__(runner, dataloader, max_epochs, val_begin, val_interval, dynamic_intervals)
        self._init_sam(warmup_epochs, sample_id_key, stats_interval, share_window)

    def run_iter(self, idx, data_batch) -> None:
        self.runner.call_hook('before_train_iter', batch_idx=idx, data_batch=data_batch)
        outputs = self._sam_iteration(data_batch)
        self.runner.call_hook('after_train_iter', batch_idx=idx, data_batch=data_batch, outputs=outputs)
        self._iter += 1


@LOOPS.register_module()
@checked_options
class SAMIterBasedTrainLoop(_SAMLoop, IterBasedTrainLoop):
    """MMEngine's ``IterBasedTrainLoop`` running SAM-family iterations.

    Args: those of ``IterBasedTrainLoop`` (``max_iters``, ``val_begin``, ``val_interval``,
    ``dynamic_intervals``) and the SAM options of :class:`_SAMLoop` (``warmup_epochs``
    counts passes over the loader).
    """

    def __init__(self, runner, dataloader, max_iters: int, val_begin: int = 1, val_interval: int = 1000,
                 dynamic_intervals=None, warmup_epochs: Optional[float] = None, sample_id_key: str = 'sample_idx',
                 stats_interval: int = 50, share_window: int = 50):
        super().__init__(runner, dataloader, max_iters, val_begin, val_interval, dynamic_intervals)
        self._init_sam(warmup_epochs, sample_id_key, stats_interval, share_window)

    def run_iter(self, data_batch) -> None:
        self.runner.call_hook('before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        outputs = self._sam_iteration(data_batch)
        self.runner.call_hook('after_train_iter', batch_idx=self._iter, data_batch=data_batch, outputs=outputs)
        self._iter += 1
