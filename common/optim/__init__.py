"""The optimizer core: SAM/ASAM, AUSAM, vSAM and the comparison controls (pure PyTorch).

See ``docs/algorithms.md`` for the specification and the README for the calling
convention. Nothing here imports mmengine.
"""
from .ausam import AUSAM, UniformSubsetSAM
from .base import SAMBase
from .looksam import LookSAM
from .random_schedule import RandomScheduleSAM
from .registry import OPTIMIZERS, build_sam_optimizer
from .running_stats import frozen_running_stats
from .sam import SAM
from .vsam import VSAM

__all__ = ['SAMBase', 'SAM', 'AUSAM', 'UniformSubsetSAM', 'VSAM', 'LookSAM', 'RandomScheduleSAM',
           'OPTIMIZERS', 'build_sam_optimizer', 'frozen_running_stats']
