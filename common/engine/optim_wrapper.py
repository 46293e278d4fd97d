"""``SAMOptimWrapper``: the SAM family behind MMEngine's optimizer-wrapper interface."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Optional, Union

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

from common.optim import SAMBase
from common.options import checked_options


@OPTIM_WRAPPERS.register_module()
@checked_options
class SAMOptimWrapper(OptimWrapper):
    """Optimizer wrapper around a SAM-family optimizer (SAM, ASAM, AUSAM, vSAM, a control).

    Built by :class:`~common.engine.optim_constructor.SAMOptimWrapperConstructor`, which
    builds the SAM-family optimizer once around the parameter groups of ``paramwise_cfg``;
    driven by the SAM train loops (:mod:`common.engine.sam_loops`), which call :meth:`step`
    with a closure over the batch. ``update_params(loss)`` and ``backward`` cannot express
    two passes and are refused with an error that says what to configure.

    Example::

        optim_wrapper = dict(
            type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4),
            sam=dict(type='AUSAM', rho=0.1, alpha=0.5),
            dtype='bfloat16',             # optional: None, 'float16' (loss scaling) or 'bfloat16'
            clip_grad=dict(max_norm=10))  # applied to the final gradient only
        train_cfg = dict(type='SAMEpochBasedTrainLoop', max_epochs=200)

    Args:
        optimizer: The SAM-family optimizer (built by the constructor).
        dtype: Autocast dtype of both passes: ``None``, ``'float16'`` or ``'bfloat16'``.
        loss_scale: fp16 only: ``'dynamic'``, a float (the initial scale) or GradScaler kwargs.
        accumulative_counts: Must be 1: a SAM step's two passes see one batch, so
            gradient accumulation is refused rather than silently wrong.
        clip_grad: As in :class:`mmengine.optim.OptimWrapper`.
        sam: Read by the constructor; reaching the wrapper means the config lacks
            ``constructor='SAMOptimWrapperConstructor'``, which is then raised.
    """

    valid_dtypes = (None, 'float16', 'bfloat16')

    def __init__(self, optimizer: SAMBase, dtype: Optional[str] = None,
                 loss_scale: Union[str, float, dict] = 'dynamic', accumulative_counts: int = 1,
                 clip_grad: Optional[dict] = None, sam: Optional[dict] = None):
        if sam is not None or not isinstance(optimizer, SAMBase):
            raise TypeError(
                f'SAMOptimWrapper wraps a SAM-family optimizer, got {type(optimizer).__name__}. Build it '
                "with constructor='SAMOptimWrapperConstructor' in optim_wrapper (and sam=dict(type=...)).")
        if accumulative_counts != 1:
            raise ValueError(
                'SAMOptimWrapper does not support gradient accumulation (accumulative_counts='
                f'{accumulative_counts}): SAM perturbs the weights with the gradient of one batch '
                'and needs both passes on that batch. Remove accumulative_counts, or raise the '
                'batch size instead.')
        if dtype not in self.valid_dtypes:
            raise ValueError(f'dtype must be one of {self.valid_dtypes}, got {dtype!r}.')
        super().__init__(optimizer=optimizer, clip_grad=clip_grad)
        self.cast_dtype = None if dtype is None else getattr(torch, dtype)
        self.loss_scaler = _make_scaler(loss_scale) if dtype == 'float16' else None
        #: Forward/backward passes run so far, counted per sample (this process, this run).
        self.sample_passes = 0

    # ------------------------------------------------------------------ stepping
    def step(self, closure: Optional[Callable] = None, model: Optional[nn.Module] = None,
             sample_ids=None, **kwargs):
        """One SAM-family iteration (:meth:`common.optim.SAMBase.step`) with this wrapper's
        GradScaler and gradient clipping; returns the first pass's mean loss."""
        if closure is None:
            self._refuse()
        loss = self.optimizer.step(closure, model=model, scaler=self.loss_scaler, sample_ids=sample_ids,
                                   before_base_step=self._clip_grad if self.clip_grad_kwargs else None)
        self._inner_count += 1
        return loss

    def update_params(self, *args, **kwargs):
        self._refuse()

    def backward(self, *args, **kwargs):
        self._refuse()

    @staticmethod
    def _refuse():
        raise RuntimeError(
            'SAMOptimWrapper runs two forward/backward passes per step and cannot be driven by '
            "update_params(loss), backward() or step() without a closure. Train with a SAM loop: "
            "train_cfg = dict(type='SAMEpochBasedTrainLoop', ...) (or 'SAMIterBasedTrainLoop').")

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Autocast to ``dtype`` (both passes); no accumulation context."""
        if self.cast_dtype is None:
            yield
            return
        device = 'cuda' if next(model.parameters()).is_cuda else 'cpu'
        with torch.autocast(device, dtype=self.cast_dtype):
            yield

    # ---------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict:
        state = self.optimizer.state_dict()
        if self.loss_scaler is not None:
            state['loss_scaler'] = self.loss_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        scaler_state = state_dict.pop('loss_scaler', None)
        if scaler_state is not None and self.loss_scaler is not None:
            self.loss_scaler.load_state_dict(scaler_state)
        state_dict.pop('base_param_settings', None)
        self.optimizer.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return f'SAMOptimWrapper(optimizer={self.optimizer!r}, dtype={self.cast_dtype})'


def _make_scaler(loss_scale):
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if loss_scale == 'dynamic':
        return torch.amp.GradScaler(device)
    if isinstance(loss_scale, float):
        return torch.amp.GradScaler(device, init_scale=loss_scale)
    if isinstance(loss_scale, dict):
        return torch.amp.GradScaler(device, **loss_scale)
    raise TypeError(f"loss_scale must be 'dynamic', a float or a dict, got {loss_scale!r}.")

