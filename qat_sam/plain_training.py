"""Train and evaluate a classifier with SGD or any SAM-family optimizer, in plain PyTorch.

For machines without MMEngine (the GPU check) and for short measured runs: one loop, per-
iteration cosine learning rate, sample-passes counted by the closure (every forward/backward
row, both passes of SAM included), wall time with the device synchronised.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from common.optim import SAMBase


def cosine_lr(optimizer: torch.optim.Optimizer, total_iters: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay from the optimizer's ``lr`` to 0 over ``total_iters`` iterations."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: 0.5 * (1 + math.cos(math.pi * min(it, total_iters) / total_iters)))


@torch.no_grad()
def top1(network: nn.Module, batches: Iterable) -> float:
    """Top-1 accuracy in percent over ``(images, labels, ids)`` batches (eval mode)."""
    was_training = network.training
    network.eval()
    correct = total = 0
    for x, y, _ in batches:
        correct += (network(x).argmax(1) == y).sum()
        total += y.numel()
    network.train(was_training)
    return float(100.0 * correct / total)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def train_classifier(network: nn.Module, optimizer: torch.optim.Optimizer, train_batches,
                     epochs: int, label_smoothing: float = 0.0,
                     autocast: Optional[torch.dtype] = None,
                     on_epoch: Optional[Callable[[int, dict], None]] = None) -> dict:
    """Train ``network`` for ``epochs`` over ``train_batches`` (``(x, y, ids)`` iterables).

    A SAM-family ``optimizer`` is stepped with a closure (per-sample losses and
    ``sample_ids`` for AUSAM); any other with backward + ``step``. The LR follows a
    per-iteration cosine schedule.

    Returns:
        ``wall_s`` (seconds, device synchronised), ``sample_passes`` (forward/backward rows,
        in units of the training-set size per epoch: SGD 1.0, SAM 2.0), ``iterations``,
        ``sam_iterations`` (iterations with a second pass).
    """
    device = next(network.parameters()).device
    scheduler = cosine_lr(optimizer, epochs * len(train_batches))
    rows = samples = sam_iterations = iterations = 0
    network.train()
    _sync(device)
    start = time.perf_counter()
    for epoch in range(epochs):
        if hasattr(optimizer, 'set_epoch'):
            optimizer.set_epoch(epoch)
        for x, y, ids in train_batches:
            samples += y.numel()

            def closure(index=None):
                nonlocal rows
                xb, yb = (x, y) if index is None else (x[index], y[index])
                rows += yb.shape[0]
                with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                    losses = F.cross_entropy(network(xb), yb, reduction='none',
                                             label_smoothing=label_smoothing)
                return losses if index is not None else losses.mean()

            if isinstance(optimizer, SAMBase):
                kwargs = dict(sample_ids=ids) if optimizer.uses_sample_ids else {}
                optimizer.step(closure, model=network, **kwargs)
                sam_iterations += int(optimizer.last_iteration.sam)
            else:
                optimizer.zero_grad(set_to_none=True)
                closure().backward()
                optimizer.step()
            scheduler.step()
            iterations += 1
        if on_epoch is not None:
            on_epoch(epoch, dict(iterations=iterations, seconds=time.perf_counter() - start))
    _sync(device)
    return dict(wall_s=time.perf_counter() - start, sample_passes=rows / max(samples, 1),
                iterations=iterations, sam_iterations=sam_iterations)
