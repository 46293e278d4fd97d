"""The few torch.distributed operations the optimizer core needs, one name each (private).

Every SAM-family optimizer must take the same branch on every data-parallel rank, average
rank-local buffers, and seed its random streams reproducibly; these helpers are all of that.
Outside ``torch.distributed`` (or with one process) they are no-ops.
"""
from __future__ import annotations

from typing import List

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    """Number of processes in the default group (1 without torch.distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default group (0 without torch.distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_distributed() -> bool:
    """Whether more than one process trains together."""
    return world_size() > 1


def collective_device() -> torch.device:
    """Where small host values must live for a collective: CUDA for NCCL, CPU for gloo."""
    return torch.device('cuda', torch.cuda.current_device()) if dist.get_backend() == 'nccl' \
        else torch.device('cpu')


def broadcast_from_rank0(value, dtype: torch.dtype = torch.float64):
    """Rank 0's ``value`` (a Python number) on every rank; the value itself without DDP."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=dtype, device=collective_device())
    dist.broadcast(t, src=0)
    return t.item()


def all_reduce_mean_(tensors: List[Tensor]) -> None:
    """Average ``tensors`` over ranks in place, in one flat all-reduce."""
    if not is_distributed() or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world_size()
    torch._foreach_copy_(tensors, [f.view_as(t) for f, t in zip(flat.split([t.numel() for t in tensors]), tensors)])


def draw_seed() -> int:
    """A seed for an optimizer's own generator when the user gives none (from torch's RNG,
    so ``torch.manual_seed`` makes runs reproducible)."""
    return int(torch.randint(0, 2 ** 62, (1,)).item())
