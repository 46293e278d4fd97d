"""``SAMHook``: connects SAMOptimWrapper to the Runner's model, data and logs."""
from __future__ import annotations

import math
import types
from collections import deque
from functools import partial

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from common.options import checked_options

from .model_adapters import apply_sam_model_adapters
from .optim_wrapper import SAMOptimWrapper
from .train_step import sam_train_step


@HOOKS.register_module()
@checked_options
class SAMHook(Hook):
    """Give the model a SAM ``train_step`` and report the SAM family's behaviour.

    - ``before_run``: replaces ``runner.model.train_step`` (DDP wrapper or plain model)
      by :func:`~common.engine.train_step.sam_train_step`; sizes AUSAM's table from the
      training set; converts vSAM's ``warmup_epochs`` into iterations; runs the registered
      SAM model adapters (:mod:`common.engine.model_adapters`), which may prepare the model
      for AUSAM and supply the sample-id function.
    - ``before_train_iter``: tells epoch-aware optimizers (AUSAM) the current epoch.
    - ``after_train_iter``: writes ``train/rho``, ``train/sam_share`` (share of SAM
      iterations over the last ``window`` iterations), AUSAM's ``train/subset_size``, and
      every ``stats_interval`` iterations ADLP statistics (``train/adlp_*``) and vSAM's
      ``train/sam_rate`` to the message hub: they reach the log, the JSON scalars and
      TensorBoard like any other scalar.

    Args:
        id_key: Where the sample ids are found (see ``train_step.sample_ids_of``).
        stats_interval: Iterations between statistics that need a host sync.
        window: Iterations the SAM share is measured over.
    """

    priority = 'HIGH'

    def __init__(self, id_key: str = 'sample_idx', stats_interval: int = 50, window: int = 50):
        self.id_key = id_key
        self.stats_interval = stats_interval
        self.sam_flags = deque(maxlen=window)

    def before_run(self, runner) -> None:
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, SAMOptimWrapper):
            raise TypeError(f'SAMHook needs optim_wrapper type SAMOptimWrapper, got {type(wrapper).__name__}.')
        optimizer = wrapper.optimizer
        iters_per_epoch = len(runner.train_dataloader)
        self.iters_per_epoch = iters_per_epoch
        if hasattr(optimizer, 'set_num_samples') and optimizer.num_samples is None:
            optimizer.set_num_samples(len(runner.train_dataloader.dataset))
        warmup_epochs = wrapper.hook_options.get('warmup_epochs')
        if warmup_epochs is not None:
            if not hasattr(optimizer, 'warmup_steps'):
                raise ValueError(f'warmup_epochs is a vSAM option; {type(optimizer).__name__} has no warm-up.')
            optimizer.warmup_steps = math.ceil(warmup_epochs * iters_per_epoch)
        sample_ids_fn = apply_sam_model_adapters(runner, optimizer)
        runner.model.train_step = types.MethodType(
            partial(_bound_train_step, id_key=self.id_key, sample_ids_fn=sample_ids_fn), runner.model)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        optimizer = runner.optim_wrapper.optimizer
        if hasattr(optimizer, 'set_epoch'):
            optimizer.set_epoch(runner.iter // self.iters_per_epoch)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        optimizer = runner.optim_wrapper.optimizer
        hub = runner.message_hub
        hub.update_scalar('train/rho', optimizer.param_groups[0]['rho'])
        self.sam_flags.append(optimizer.last_iteration.sam)
        hub.update_scalar('train/sam_share', sum(self.sam_flags) / len(self.sam_flags))
        if hasattr(optimizer, 'last_subset_size'):
            hub.update_scalar('train/subset_size', float(optimizer.last_subset_size))
        if hasattr(optimizer, 'statistics') and self.every_n_train_iters(runner, self.stats_interval):
            for key, value in optimizer.statistics().items():
                hub.update_scalar(f'train/{key}', value)


def _bound_train_step(model, data, optim_wrapper, id_key, sample_ids_fn=None):
    return sam_train_step(model, data, optim_wrapper, id_key=id_key, sample_ids_fn=sample_ids_fn)
