"""The table of SAM-family optimizers, by class name (configs and tests iterate over it)."""
from .ausam import AUSAM, UniformSubsetSAM
from .looksam import LookSAM
from .random_schedule import RandomScheduleSAM
from .sam import SAM
from .vsam import VSAM

OPTIMIZERS = {cls.__name__: cls for cls in (SAM, AUSAM, VSAM, LookSAM, UniformSubsetSAM, RandomScheduleSAM)}


def build_sam_optimizer(name: str, params, **kwargs):
    """Build ``OPTIMIZERS[name](params, **kwargs)`` with a clear error for unknown names."""
    if name not in OPTIMIZERS:
        raise KeyError(f'Unknown SAM-family optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}.')
    return OPTIMIZERS[name](params, **kwargs)
