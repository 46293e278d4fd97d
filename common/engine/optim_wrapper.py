"""``SAMOptimWrapper``: the SAM family behind MMEngine's optimizer-wrapper interface."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Optional, Union

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

from common.optim import OPTIMIZERS, SAMBase, build_sam_optimizer
from common.optim.registry import check_sam_options, sam_optimizer_class
from common.options import accepted_keywords, checked_options

#: Options of ``sam=dict(...)`` that the hook, not the optimizer, consumes.
HOOK_OPTIONS = ('warmup_epochs',)


@OPTIM_WRAPPERS.register_module()
@checked_options
class SAMOptimWrapper(OptimWrapper):
    """Optimizer wrapper that trains with SAM, ASAM, AUSAM, vSAM or a control.

    MMEngine builds ``optimizer`` (with ``paramwise_cfg`` and everything else its
    constructor supports); this wrapper wraps it in the SAM-family optimizer named by
    ``sam['type']``, sharing its param groups (``lr``, ``weight_decay`` and ``rho`` are
    group keys, so MMEngine's parameter schedulers can schedule ``rho`` too).

    A SAM step needs a closure over the batch, which ``update_params(loss)`` cannot
    give; :class:`~common.engine.SAMHook` replaces the model's ``train_step`` by one
    that calls :meth:`sam_step` (``tools/train.py`` adds the hook automatically).

    Example::

        optim_wrapper = dict(
            type='SAMOptimWrapper',
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4),
            sam=dict(type='AUSAM', rho=0.1, alpha=0.5),
            dtype='bfloat16',          # optional: None, 'float16' (loss scaling) or 'bfloat16'
            clip_grad=dict(max_norm=10))  # applied to the final gradient only

    Args:
        optimizer: The base optimizer built by MMEngine, or an already built
            SAM-family optimizer.
        sam: ``type`` (a name of :data:`common.optim.OPTIMIZERS`) and its arguments.
            ``warmup_epochs`` (vSAM) is converted to iterations by the hook. Keys are
            checked by name: an unknown one raises
            :class:`~common.options.UnknownOptionError` naming the SAM-family class, the
            key, the closest valid key and all valid keys (the class's, ``SAMBase``'s,
            the base optimizer's hyper-parameters, ``type`` and ``warmup_epochs``). The
            base optimizer is ``optimizer``, not a ``sam`` key.
        dtype: Autocast dtype of both passes: ``None``, ``'float16'`` or ``'bfloat16'``.
        loss_scale: fp16 only: ``'dynamic'``, a float (the initial scale) or GradScaler kwargs.
        accumulative_counts: Must be 1: a SAM step's two passes see one batch, so
            gradient accumulation is refused rather than silently wrong.
        clip_grad: As in :class:`mmengine.optim.OptimWrapper`.
    """

    valid_dtypes = (None, 'float16', 'bfloat16')

    def __init__(self, optimizer: torch.optim.Optimizer, sam: Optional[dict] = None,
                 dtype: Optional[str] = None, loss_scale: Union[str, float, dict] = 'dynamic',
                 accumulative_counts: int = 1, clip_grad: Optional[dict] = None):
        if accumulative_counts != 1:
            raise ValueError(
                'SAMOptimWrapper does not support gradient accumulation (accumulative_counts='
                f'{accumulative_counts}): SAM perturbs the weights with the gradient of one batch '
                'and needs both passes on that batch. Remove accumulative_counts, or raise the '
                'batch size instead.')
        if dtype not in self.valid_dtypes:
            raise ValueError(f'dtype must be one of {self.valid_dtypes}, got {dtype!r}.')
        sam = dict(sam or {})
        self.hook_options = {k: sam.pop(k) for k in HOOK_OPTIONS if k in sam}
        if not isinstance(optimizer, SAMBase):
            name = sam.pop('type', None)
            if name is None:
                raise ValueError("SAMOptimWrapper needs sam=dict(type=..., ...) with type one of "
                                 f'{sorted(OPTIMIZERS)}.')
            if 'base_optimizer' in sam:
                raise ValueError('sam=dict(base_optimizer=...) is not an option of SAMOptimWrapper: the base '
                                 'optimizer is optim_wrapper.optimizer (e.g. optimizer=dict(type=\'AdamW\', '
                                 'lr=1e-3)). Remove base_optimizer from sam.')
            # The sam dict's own keys, checked before they are merged with the base
            # optimizer's defaults, so that a misspelt key is blamed on the SAM class.
            cls = sam_optimizer_class(name)
            check_sam_options(cls, sam, base_optimizer=type(optimizer), extra=(*HOOK_OPTIONS, 'type'),
                              exclude=('base_optimizer',), context='in optim_wrapper.sam')
            if cls.uses_sample_ids:
                sam.setdefault('num_samples', None)  # SAMHook sizes the table from the data set
            # The base optimizer's defaults, less those its __init__ derives itself (AdamW's
            # decoupled_weight_decay), which it would refuse as keyword arguments.
            base_keys = accepted_keywords(type(optimizer), exclude=('self', 'params'))
            defaults = {k: v for k, v in optimizer.defaults.items() if base_keys is None or k in base_keys}
            optimizer = build_sam_optimizer(name, optimizer.param_groups, base_optimizer=type(optimizer),
                                            **{**defaults, **sam})
        elif sam:
            raise ValueError('sam options given for an optimizer that is already a SAM-family optimizer.')
        super().__init__(optimizer=optimizer, clip_grad=clip_grad)
        self.cast_dtype = None if dtype is None else getattr(torch, dtype)
        self.loss_scaler = _make_scaler(loss_scale) if dtype == 'float16' else None
        #: Forward/backward passes run so far, counted per sample (this process, this run).
        self.sample_passes = 0

    # ------------------------------------------------------------------ stepping
    def sam_step(self, closure: Callable, model: nn.Module, sample_ids=None):
        """One SAM-family iteration (see :meth:`common.optim.SAMBase.step`)."""
        return self.step(closure=closure, model=model, sample_ids=sample_ids)

    def step(self, closure: Optional[Callable] = None, model: Optional[nn.Module] = None,
             sample_ids=None, **kwargs):
        """The SAM step; goes through ``step`` so that MMEngine's schedulers count it."""
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
            "update_params(loss), backward() or step(). Add dict(type='SAMHook') to custom_hooks "
            '(tools/train.py does this for you); it gives the model a train_step that calls sam_step().')

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

