"""SAM model adapters: let a model family meet the per-sample protocol without model changes.

SAM and vSAM need only a scalar loss, so every MMEngine model trains with them as is.
AUSAM and ``UniformSubsetSAM`` also need (see :mod:`common.engine.train_step`) per-sample
losses in ``mode='loss'`` and a stable dense id per sample. A model family whose code
we do not own (e.g. MMPose's estimators) gets both from an adapter::

    @register_sam_model_adapter
    def my_adapter(runner, optimizer):
        if not isinstance(unwrap(runner.model), MyModel):
            return None                      # not mine: leave everything as it is
        if optimizer.uses_sample_ids:
            ...                              # e.g. swap loss modules for per-sample ones
            return lambda data: ids_of(data) # preprocessed batch -> LongTensor of dense ids
        return None

The SAM train loops (:mod:`common.engine.sam_loops`) call every registered adapter at the
start of ``run``, once the model, optimizer and training data loader are built. An adapter may prepare the model and may return a
sample-id function, which then replaces ``train_step.sample_ids_of(data, id_key)``: it is
called once per iteration, with the whole preprocessed batch, before any forward pass,
and must return ids in ``[0, len(train_dataset))`` (the size of AUSAM's table). At most
one adapter may return an id function.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional

from torch import Tensor

#: ``fn(data) -> LongTensor [batch]``: dense sample ids of a preprocessed batch.
SampleIdsFn = Callable[[Any], Tensor]
#: ``adapter(runner, optimizer) -> SampleIdsFn or None``.
SAMModelAdapter = Callable[[Any, Any], Optional[SampleIdsFn]]

_ADAPTERS: List[SAMModelAdapter] = []


def register_sam_model_adapter(adapter: SAMModelAdapter) -> SAMModelAdapter:
    """Decorator: register ``adapter`` (registering the same function twice is a no-op)."""
    if adapter not in _ADAPTERS:
        _ADAPTERS.append(adapter)
    return adapter


def registered_sam_model_adapters() -> List[SAMModelAdapter]:
    """The registered adapters, in registration order."""
    return list(_ADAPTERS)


def apply_sam_model_adapters(runner, optimizer) -> Optional[SampleIdsFn]:
    """Run every registered adapter; return the one sample-id function, if any.

    Raises:
        RuntimeError: If more than one adapter returns a sample-id function.
    """
    found = []
    for adapter in list(_ADAPTERS):
        fn = adapter(runner, optimizer)
        if fn is not None:
            found.append((adapter, fn))
    if len(found) > 1:
        names = ', '.join(f'{a.__module__}.{a.__qualname__}' for a, _ in found)
        raise RuntimeError(f'several SAM model adapters claim this model and return sample-id '
                           f'functions: {names}. Make at most one of them apply to it.')
    return found[0][1] if found else None
