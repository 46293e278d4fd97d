"""Validation of option dicts by name: an unknown key is named, with the closest valid one.

Configs hand their dicts to constructors as keyword arguments. A misspelt key then fails
far from the config, often in another class: ``sam=dict(type='AUSAM', alfa=0.3)`` used to
end in ``TypeError: SGD.__init__() got an unexpected keyword argument 'alfa'``, because
the SAM-family optimizers pass the keys they do not know on to the base optimizer. Every
dict the project owns is checked where it is unpacked, and an unknown key fails with an
:class:`UnknownOptionError` such as::

    AUSAM (base optimizer SGD): unknown option 'alfa' (did you mean 'alpha'?). Valid
    options: 'adaptive', 'alpha', ..., 'weight_decay'. Fix the spelling or remove it.

- :func:`check_options` raises that error for any dict (or key list) and valid key set;
- :func:`accepted_keywords` collects the keyword names a class or function accepts,
  following ``**kwargs`` up the class hierarchy;
- :func:`checked_options` is a class decorator that checks the keyword arguments of
  ``__init__`` before it runs (for classes that configs build by ``cls(**dict)``:
  MMEngine hooks, data sets, models, optimizer wrappers).

Pure Python (no torch, no mmengine): :mod:`common.optim` uses it.
"""
from __future__ import annotations

import difflib
import functools
import inspect
from typing import Callable, Iterable, Mapping, Optional, Union

__all__ = ['UnknownOptionError', 'check_options', 'accepted_keywords', 'checked_options', 'did_you_mean']

_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class UnknownOptionError(TypeError):
    """An option dict holds a key its owner does not accept.

    A ``TypeError``, like the error Python raises for an unexpected keyword argument, so
    code that caught that keeps working. Built from the message alone (as registries
    that re-raise ``type(e)(message)`` need); :func:`check_options` also sets
    ``owner``, ``unknown`` (the unknown keys, in the order given) and ``valid`` (sorted).
    """

    def __init__(self, message: str, *, owner: Optional[str] = None, unknown: Iterable[str] = (),
                 valid: Iterable[str] = ()):
        super().__init__(message)
        self.owner = owner
        self.unknown = tuple(unknown)
        self.valid = tuple(valid)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to ``name``, else ``''``.

    Closeness is :func:`difflib.get_close_matches` (ratio >= 0.6), ignoring case.
    """
    choices = [str(c) for c in choices]
    by_lower = {}
    for choice in choices:
        by_lower.setdefault(choice.lower(), choice)
    match = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.6)
    return f' (did you mean {by_lower[match[0]]!r}?)' if match else ''


def check_options(owner: str, given: Union[Mapping, Iterable[str]], valid: Iterable[str], *,
                  what: str = 'option', context: Optional[str] = None) -> None:
    """Raise :class:`UnknownOptionError` if ``given`` holds a key not in ``valid``.

    Args:
        owner: Who the options belong to, first in the message (e.g. ``'AUSAM'``).
        given: The option dict (its keys are checked) or the keys themselves.
        valid: The accepted keys.
        what: What a key is called in the message (``'option'``, ``'argument'``...).
        context: Added after ``owner`` (e.g. ``'(base optimizer SGD)'``).

    The message names the owner, every unknown key with the closest valid key (if any is
    close), all valid keys sorted, and says to fix or remove the unknown ones.
    """
    keys = list(given.keys() if isinstance(given, Mapping) else given)
    valid = sorted({str(v) for v in valid})
    valid_set = set(valid)
    unknown = [str(k) for k in keys if str(k) not in valid_set]
    if not unknown:
        return
    head = f'{owner} {context}' if context else owner
    listed = ', '.join(f'{k!r}{did_you_mean(k, valid)}' for k in unknown)
    plural = len(unknown) > 1
    if valid:
        accepted = f"Valid {what}s: {', '.join(repr(v) for v in valid)}."
    else:
        accepted = f'{owner} takes no {what}s.'
    raise UnknownOptionError(
        f"{head}: unknown {what}{'s' if plural else ''} {listed}. {accepted} "
        f"Fix the spelling or remove {'them' if plural else 'it'}.",
        owner=owner, unknown=unknown, valid=valid)


def _keywords_of(function: Callable):
    """(names that can be passed by keyword, whether ``**kwargs`` is accepted)."""
    if inspect.unwrap(function) is object.__init__:
        return set(), False  # object() takes no arguments
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # no signature (some builtins): cannot tell
        return set(), True
    names = {p.name for p in signature.parameters.values() if p.kind in _KEYWORD_KINDS}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    return names, var_kw


def accepted_keywords(target: Callable, *, stop_at: Optional[type] = None,
                      exclude: Iterable[str] = ('self',)) -> Optional[frozenset]:
    """The keyword argument names ``target`` accepts, or ``None`` if it accepts any.

    For a class, the ``__init__`` methods of its MRO are read in order: each adds its
    named parameters, and one that takes ``**kwargs`` is assumed to pass them on to the
    next ``__init__`` up the MRO (``super().__init__(**kwargs)``); one without ends the
    walk. ``object.__init__`` accepts nothing; ``**kwargs`` that would reach it are taken
    as used by their own class (any name). ``stop_at`` is a class whose ``**kwargs``
    go elsewhere (``SAMBase`` passes them to the base optimizer): the walk ends there
    and the caller adds the names of that destination. Positional-only parameters and
    ``exclude`` are left out. ``None`` means the names cannot be known (``**kwargs`` that
    go nowhere known, or no signature): do not check.
    """
    exclude = set(exclude)
    if not isinstance(target, type):
        names, var_kw = _keywords_of(target)
        return None if var_kw else frozenset(names - exclude)
    names, passed_on = set(), False
    for klass in target.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        if klass is object and passed_on:
            return None  # **kwargs right below object: used by that class itself, any name
        own, var_kw = _keywords_of(init)
        names |= own
        if not var_kw or klass is stop_at:
            return frozenset(names - exclude)
        passed_on = True
    return None


def checked_options(cls: type = None, *, what: str = 'option'):
    """Class decorator: unknown keyword arguments of ``__init__`` raise :class:`UnknownOptionError`.

    The valid keys are :func:`accepted_keywords` of the class (computed on first use);
    the check runs before ``__init__`` and only looks at keyword arguments, so a config
    dict built with ``cls(**cfg)`` (MMEngine's registries) gets the message that names
    the class, the unknown key, the closest valid key and all valid keys. The signature
    seen by :mod:`inspect` is unchanged. Usable as ``@checked_options`` or
    ``@checked_options(what='argument')``.
    """
    if cls is None:
        return functools.partial(checked_options, what=what)
    init = cls.__init__
    valid_cache = []

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if kwargs:
            if not valid_cache:
                valid_cache.append(accepted_keywords(cls))
            valid = valid_cache[0]
            if valid is not None:
                owner = type(self).__name__ if type(self).__init__ is __init__ else cls.__name__
                check_options(owner, kwargs, valid, what=what)
        init(self, *args, **kwargs)

    cls.__init__ = __init__
    return cls
