"""``SAMOptimWrapperConstructor``: builds the SAM-family optimizer once, inside MMEngine's build.

MMEngine builds an optimizer wrapper through a constructor from the registry
``OPTIM_WRAPPER_CONSTRUCTORS`` (``optim_wrapper.constructor`` in a config; default
``DefaultOptimWrapperConstructor``, which turns ``paramwise_cfg`` into parameter groups and
builds ``optimizer``). That is the extension point MMEngine intends for optimizers that
need more than ``OPTIMIZERS.build(cfg)`` (its own ``LearningRateDecayOptimizerConstructor``
is one). This subclass keeps everything the default one does with the parameters
(``paramwise_cfg``: per-key lr / weight-decay multipliers, bias and norm decay, ...) and
builds, instead of the base optimizer, the SAM-family optimizer named by ``sam`` around the
same parameter groups, with the base optimizer's class and hyper-parameters from
``optimizer``. The base optimizer is built once, by the SAM-family optimizer, which shares
its ``param_groups`` (so MMEngine's parameter schedulers drive ``lr`` and ``rho`` alike)::

    optim_wrapper = dict(
        type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4),
        sam=dict(type='AUSAM', rho=0.1, alpha=0.5),
        paramwise_cfg=dict(norm_decay_mult=0.0))   # optional, as usual

``sam`` holds only the optimizer's own options (``type``, ``rho``, ``adaptive``, AUSAM's
``alpha``...); options of the training run (vSAM's warm-up in epochs, the sample-id key,
statistics) belong to the train loop (:mod:`common.engine.sam_loops`).
"""
from __future__ import annotations

from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

from common.optim import OPTIMIZERS as SAM_OPTIMIZERS
from common.optim import SAMBase
from common.optim.registry import sam_optimizer_class
from common.options import accepted_keywords, check_options


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SAMOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Build ``SAMOptimWrapper`` around a SAM-family optimizer (see the module docstring).

    Args:
        optim_wrapper_cfg: The ``optim_wrapper`` config: ``optimizer`` (the base optimizer:
            its ``type`` from MMEngine's ``OPTIMIZERS`` registry, e.g. any ``torch.optim``
            class, and its hyper-parameters), ``sam`` (``type``: a name of
            :data:`common.optim.OPTIMIZERS`, and its options), and the wrapper's own keys
            (``type``, default ``'SAMOptimWrapper'``; ``dtype``, ``loss_scale``, ``clip_grad``).
        paramwise_cfg: As for ``DefaultOptimWrapperConstructor``.

    Raises:
        ValueError: ``sam`` or its ``type`` is missing.
        KeyError: an unknown SAM-family name (with the closest one).
        ValueError: a ``sam`` key that is the base optimizer's (``lr``, ``momentum``...).
        common.options.UnknownOptionError: an ``optimizer`` key the base optimizer does not
            accept, or a ``sam`` key the SAM-family optimizer does not accept.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None):
        optim_wrapper_cfg = dict(optim_wrapper_cfg)
        sam = dict(optim_wrapper_cfg.pop('sam', None) or {})
        if 'type' not in sam:
            raise ValueError("SAMOptimWrapperConstructor needs optim_wrapper.sam = dict(type=..., ...) with "
                             f'type one of {sorted(SAM_OPTIMIZERS)}.')
        if 'warmup_epochs' in sam:
            raise ValueError('warmup_epochs is an option of the SAM train loop (it counts epochs of the '
                             "run): train_cfg = dict(type='SAMEpochBasedTrainLoop', warmup_epochs=...); "
                             'remove it from optim_wrapper.sam.')
        if 'base_optimizer' in sam:
            raise ValueError('optim_wrapper.sam must not set base_optimizer: the base optimizer is '
                             'optim_wrapper.optimizer (its type and hyper-parameters).')
        optim_wrapper_cfg.setdefault('type', 'SAMOptimWrapper')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        self.sam_type = sam.pop('type')
        self.sam_options = sam

    def __call__(self, model):
        if hasattr(model, 'module'):
            model = model.module
        optimizer_cfg = dict(self.optimizer_cfg)
        base = optimizer_cfg.pop('type')
        scope = optimizer_cfg.pop('_scope_', None)  # set by MMEngine when built inside a scope
        if isinstance(base, str):
            with OPTIMIZERS.switch_scope_and_registry(scope) as registry:
                name, base = base, registry.get(base)
            if base is None:
                raise KeyError(f'optim_wrapper.optimizer type {name!r} is not in MMEngine\'s OPTIMIZERS '
                               'registry (torch.optim classes are); check the spelling.')
        cls = sam_optimizer_class(self.sam_type)
        # The two dicts stay apart: optimizer's keys go to the base optimizer only (RMSprop's
        # alpha is not AUSAM's alpha, Adam's eps is not the perturbation's).
        check_options(f'optim_wrapper.optimizer ({base.__name__})', optimizer_cfg,
                      accepted_keywords(base, exclude=('self', 'params')) or optimizer_cfg)
        options = dict(self.sam_options)
        own = accepted_keywords(cls, stop_at=SAMBase, exclude=('self', 'params', 'base_optimizer', 'base_options'))
        misplaced = sorted(set(options) & set(accepted_keywords(base, exclude=('self', 'params')) or ()) - set(own))
        if misplaced:
            raise ValueError(f'optim_wrapper.sam sets {misplaced}: hyper-parameters of the base optimizer '
                             f'{base.__name__}. Put them in optim_wrapper.optimizer; sam holds the '
                             f'{cls.__name__} options only.')
        check_options(cls.__name__, options, own, context=f'(base optimizer {base.__name__}) in optim_wrapper.sam')
        if cls.uses_sample_ids:
            options.setdefault('num_samples', None)  # the SAM train loop sizes the table from the data set
        if self.paramwise_cfg:
            params = []
            self.add_params(params, model)
        else:
            params = model.parameters()
        optimizer = cls(params, base_optimizer=base, base_options=optimizer_cfg, **options)
        return OPTIM_WRAPPERS.build(self.optim_wrapper_cfg, default_args=dict(optimizer=optimizer))
