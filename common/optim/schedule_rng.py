"""A host-side random stream that is identical on every data-parallel rank.

vSAM and random-schedule SAM decide per iteration whether to run a second pass. If
ranks decided differently, one would wait in the second pass's all-reduce forever.
The stream is a CPU ``torch.Generator``; its seed is broadcast from rank 0 the first
time it is used, so ranks agree even when their global seeds differ.
"""
from typing import Optional

import torch

from ._distributed import broadcast_from_rank0, draw_seed


class SharedRandom:
    """Uniform draws in [0, 1) from a generator shared (by seed) across ranks."""

    def __init__(self, seed: Optional[int] = None):
        if seed is None:
            seed = draw_seed()
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self._synced = False

    def _sync_seed(self) -> None:
        seed = int(broadcast_from_rank0(self.seed, torch.int64))
        if seed != self.seed:
            self.seed = seed
            self.generator.manual_seed(seed)
        self._synced = True

    def uniform(self) -> float:
        if not self._synced:
            self._sync_seed()
        return float(torch.rand((), generator=self.generator))

    def state_dict(self) -> dict:
        return dict(seed=self.seed, state=self.generator.get_state())

    def load_state_dict(self, state: dict) -> None:
        self.seed = state['seed']
        self.generator.set_state(state['state'])
        self._synced = True
