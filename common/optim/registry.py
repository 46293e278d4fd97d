"""The table of SAM-family optimizers, by class name (configs and tests iterate over it)."""
import inspect
from typing import Optional

from ..options import accepted_keywords, check_options, did_you_mean
from .ausam import AUSAM, UniformSubsetSAM
from .base import SAMBase, resolve_base_optimizer
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


def sam_option_names(cls: type, base_optimizer='SGD') -> Optional[frozenset]:
    """The keyword options ``cls(params, **options)`` accepts with ``base_optimizer``.

    The SAM-family class's own parameters, :class:`SAMBase`'s (``base_optimizer``,
    ``rho``, ``adaptive``...) and the base optimizer's hyper-parameters (``SAMBase``
    passes its ``**base_kwargs`` on to it); never ``params``. ``None`` if they cannot be
    known (an ``__init__`` or a base optimizer that takes arbitrary ``**kwargs``).
    """
    own = accepted_keywords(cls, stop_at=SAMBase, exclude=('self', 'params'))
    base = accepted_keywords(resolve_base_optimizer(base_optimizer), exclude=('self', 'params'))
    if own is None or base is None:
        return None
    return own | base


def _default_base_optimizer(cls: type):
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is not None:
            parameter = inspect.signature(init).parameters.get('base_optimizer')
            if parameter is not None and parameter.default is not inspect.Parameter.empty:
                return parameter.default
    return 'SGD'


def check_sam_options(cls: type, options: dict, *, base_optimizer=None, extra=(), exclude=(),
                      context: Optional[str] = None) -> None:
    """Raise :class:`~common.options.UnknownOptionError` if ``options`` holds a key that
    ``cls`` (a SAM-family class) with its base optimizer does not accept.

    Args:
        cls: The SAM-family class.
        options: The keyword arguments after ``params``.
        base_optimizer: The base optimizer (class or name); default
            ``options['base_optimizer']``, else ``cls``'s default.
        extra: Further valid keys (consumed by someone else, e.g. the hook).
        exclude: Keys ``cls`` accepts that are not valid here.
        context: Added to the message after the class name (where the options came from).
    """
    if base_optimizer is None:
        base_optimizer = options.get('base_optimizer', _default_base_optimizer(cls))
    base_cls = resolve_base_optimizer(base_optimizer)
    valid = sam_option_names(cls, base_cls)
    if valid is None:
        return
    detail = f'(base optimizer {base_cls.__name__})'
    check_options(cls.__name__, options, (valid | set(extra)) - set(exclude),
                  context=f'{detail} {context}' if context else detail)


def build_sam_optimizer(name: str, params, **kwargs):
    """Build ``OPTIMIZERS[name](params, **kwargs)``.

    An unknown ``name`` raises ``KeyError`` with the closest name; an unknown keyword
    (for the class or its base optimizer) raises
    :class:`~common.options.UnknownOptionError` naming the class, the key, the closest
    valid key and all valid keys.
    """
    cls = sam_optimizer_class(name)
    check_sam_options(cls, kwargs)
    return cls(params, **kwargs)
