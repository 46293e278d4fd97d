"""Pair per-parameter tensors by parameter identity, never by position.

The set of parameters that receive a gradient can change between the two passes of
a SAM step and between steps (stochastic depth, LayerDrop, mixture-of-experts
routing, heads used on some batches, layers unfrozen during training). Stored state
(PSF, LookSAM's g_v) is therefore kept next to the list of its parameters and matched
to the current gradients through this function.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

from torch import Tensor


def same_params(a: Sequence[Tensor], b: Sequence[Tensor]) -> bool:
    """Whether two parameter lists hold the same parameters in the same order."""
    return len(a) == len(b) and all(p is q for p, q in zip(a, b))


def pair_by_param(params_a: Sequence[Tensor], tensors_a: Sequence[Tensor],
                  params_b: Sequence[Tensor], tensors_b: Sequence[Tensor]
                  ) -> Tuple[List[Tensor], List[Tensor], List[Tensor]]:
    """Return ``(params, from_a, from_b)`` for the parameters present in both lists.

    ``tensors_a[i]`` belongs to ``params_a[i]`` (likewise for b). The result follows
    the order of ``params_a``. When both lists hold the same parameters in the same
    order (the usual case) the inputs are returned as they are.
    """
    if same_params(params_a, params_b):
        return list(params_a), list(tensors_a), list(tensors_b)
    where_b = {id(p): i for i, p in enumerate(params_b)}
    both = [(i, where_b[id(p)]) for i, p in enumerate(params_a) if id(p) in where_b]
    return ([params_a[i] for i, _ in both], [tensors_a[i] for i, _ in both],
            [tensors_b[j] for _, j in both])
