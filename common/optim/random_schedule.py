"""Random-schedule SAM: a control for vSAM (RST / SS-SAM style, Zhao et al. 2022).

Each iteration is a full SAM step with probability ``sam_prob`` (a Bernoulli draw
from a generator seeded identically on every rank), otherwise a plain step with g.
If vSAM does not beat this at the same SAM share, its variation estimate buys nothing.
"""
from typing import Optional


from .base import Iteration, SAMBase
from .schedule_rng import SharedRandom


class RandomScheduleSAM(SAMBase):
    """SAM on a random ``sam_prob`` share of the iterations, plain steps on the others.

    Args:
        sam_prob: Probability that an iteration runs SAM, in (0, 1].
        seed: Seed of the shared generator (identical on all ranks; rank 0's wins).
    """

    def __init__(self, params, base_optimizer='SGD', rho: float = 0.05, sam_prob: float = 0.5,
                 seed: Optional[int] = None, **kwargs):
        if not 0 < sam_prob <= 1:
            raise ValueError(f'sam_prob must be in (0, 1], got {sam_prob}.')
        super().__init__(params, base_optimizer, rho=rho, **kwargs)
        self.sam_prob = sam_prob
        self.rng = SharedRandom(seed)

    def _plan(self, sample_ids) -> Iteration:
        return Iteration(sam=self.rng.uniform() < self.sam_prob)

    def _extra_state(self) -> dict:
        return dict(rng=self.rng.state_dict())

    def _load_extra_state(self, state: dict) -> None:
        self.rng.load_state_dict(state['rng'])
