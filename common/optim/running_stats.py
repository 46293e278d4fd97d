"""Freeze running statistics during SAM's second forward pass.

SAM (Foret et al. 2021) evaluates the loss a second time at the perturbed weights
w + e. That pass must not move BatchNorm running statistics, quantizer observers,
EMA buffers or any other buffer that a module updates in ``forward``: the model seen
at w + e is a probe, not a training state. Instead of special-casing each module
type, :func:`frozen_running_stats` snapshots every floating-point and integer buffer
of the module and copies the snapshot back afterwards, which is exact for any module.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import nn


@contextmanager
def frozen_running_stats(module: Optional[nn.Module]) -> Iterator[None]:
    """Restore every buffer of ``module`` to its value at entry when the block exits.

    Args:
        module: The model (may be wrapped in DistributedDataParallel). ``None`` is
            allowed for models without buffers and makes this a no-op.
    """
    buffers = [] if module is None else [b for b in module.buffers() if b is not None]
    snapshot = [b.detach().clone() for b in buffers]
    try:
        yield
    finally:
        if buffers:
            with torch.no_grad():
                torch._foreach_copy_(buffers, snapshot)
