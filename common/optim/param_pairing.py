"""Pair per-parameter tensors by parameter identity, never by position.

The set of parameters that receive a gradient can change between the two passes of
a SAM step and between steps (stochastic depth, LayerDrop, mixture-of-experts
routing, heads used on some batches, layers unfrozen during training). Stored state
(PSF, LookSAM's g_v) is therefore kept next to the list of its parameters and matched
to the current gradients through this function.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
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


class ParamBuffers:
    """Tensors kept per parameter across iterations (vSAM's PSF, LookSAM's g_v).

    ``params[i]`` owns ``tensors[i]``; every exchange with the current gradients goes
    through :func:`pair_by_param`, and checkpoints key the tensors by the parameter's
    position in the optimizer's param groups.
    """

    def __init__(self):
        self.params: List[Tensor] = []
        self.tensors: List[Tensor] = []

    def __bool__(self) -> bool:
        return bool(self.tensors)

    def hold(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
        """Copy ``grads`` in (the buffers are reused while the parameters stay the same)."""
        if not same_params(self.params, params):
            self.tensors = [torch.empty_like(t) for t in grads]
            self.params = list(params)
        torch._foreach_copy_(self.tensors, grads)

    def keep_common(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> List[Tensor]:
        """Drop the entries of parameters not in ``params``; return ``grads`` paired with the rest."""
        self.params, self.tensors, grads = pair_by_param(self.params, self.tensors, params, grads)
        return grads

    def matching(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """``(grads, buffers)`` of the parameters in both, in the order of ``params``."""
        _, grads, tensors = pair_by_param(params, grads, self.params, self.tensors)
        return grads, tensors

    def state_dict(self, index: dict) -> dict:
        """``{position of the parameter in the param groups: tensor}``; ``index`` maps ``id(p)``."""
        return {index[id(p)]: t for p, t in zip(self.params, self.tensors)}

    def load_state_dict(self, state: dict, params: Sequence[Tensor]) -> None:
        """Restore from :meth:`state_dict`; ``params`` are the param groups' parameters in order."""
        order = sorted(state)
        self.params = [params[i] for i in order]
        self.tensors = [state[i].to(params[i].device, params[i].dtype).clone() for i in order]
