"""The table of SAM-family optimizers, by class name (configs and tests iterate over it)."""

from ..options import did_you_mean
from .ausam import AUSAM, UniformSubsetSAM
from .looksam import LookSAM
from .random_schedule import RandomScheduleSAM
from .sam import SAM
from .vsam import VSAM

OPTIMIZERS = {cls.__name__: cls for cls in (SAM, AUSAM, VSAM, LookSAM, UniformSubsetSAM, RandomScheduleSAM)}


def sam_optimizer_class(name: str) -> type:
    """``OPTIMIZERS[name]``; an unknown name raises ``KeyError`` naming the closest one."""
    if name not in OPTIMIZERS:
        hint = (" (ASAM is SAM with adaptive=True)" if name.upper() == 'ASAM'
                else did_you_mean(name, OPTIMIZERS))
        raise KeyError(f'Unknown SAM-family optimizer {name!r}{hint}; choose one of {sorted(OPTIMIZERS)}.')
    return OPTIMIZERS[name]


def build_sam_optimizer(name: str, params, **kwargs):
    """Build ``OPTIMIZERS[name](params, **kwargs)``.

    An unknown ``name`` raises ``KeyError`` with the closest name; an unknown keyword
    (for the class or its base optimizer) raises
    :class:`~common.options.UnknownOptionError` naming the class, the key, the closest
    valid key and all valid keys.
    """
    return sam_optimizer_class(name)(params, **kwargs)  # SAMBase.__init__ checks the keywords
