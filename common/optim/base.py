"""Shared machinery of the SAM family: one two-pass step, specialised by subclasses.

SAM (Foret et al., ICLR 2021, arXiv 2010.01412) and its cheap variants all run the
same skeleton per iteration:

1. decide the iteration (:meth:`SAMBase.begin`): full SAM, a subset of the batch
   (AUSAM), or a single SGD-cost pass (vSAM, LookSAM, random schedule);
2. first forward/backward, gradient g (local under DistributedDataParallel when a
   second pass follows);
3. on SAM iterations (:meth:`SAMBase.first_step`): w <- w + e with
   e = rho g / ||g|| (ASAM: rho T^2 g / ||T g||, T = |w|), then a second
   forward/backward at w + e with running statistics frozen, giving g_s;
4. :meth:`SAMBase.second_step`: restore w exactly from one backup and hand the final
   gradient to the base optimizer (SGD, AdamW, ...), which shares its
   ``param_groups`` with this wrapper, so LR schedulers and ``rho`` schedules work.

Two ways to drive it, running the same code:

- ``loss = optimizer.step(closure, model=model)``: ``closure`` runs the forward pass
  and *returns* the loss; it must not call ``backward`` (the optimizer owns the
  backward so that it can scale it for fp16, place it inside ``no_sync`` and average
  per-sample losses). Optimizers that train on a subset of the batch
  (``uses_sample_ids = True``) call ``closure(index)`` with the batch positions to
  evaluate and need ``sample_ids``; see :class:`~common.optim.AUSAM`.
- The two-phase form, for loops that own backward (PyTorch Lightning's manual
  optimisation, Hugging Face Accelerate, custom AMP loops)::

      it = optimizer.begin(sample_ids=ids)      # optional unless AUSAM: it.index, it.sam
      optimizer.zero_grad()
      with optimizer.first_pass(model):         # no_sync under DDP when a 2nd pass follows
          loss = it.objective(per_sample_loss)  # or any scalar loss
          scaler.scale(loss).backward()         # or loss.backward()
      if optimizer.first_step(scaler=scaler):   # True: this iteration wants a second pass
          with optimizer.second_pass(model):    # running statistics frozen
              scaler.scale(loss_fn(...)).backward()
      optimizer.second_step()                   # always: restores w, base step, scaler.update()

  ``second_step()`` runs through ``step()`` (no closure), so step hooks and LR schedulers
  see one step per iteration; ``abort()`` drops an iteration that failed half-way
  (restoring w), e.g. a batch that ran out of memory in its second pass.

Gradients are matched to stored per-parameter state by parameter identity
(:mod:`~common.optim.param_pairing`): a parameter may receive a gradient in one pass
and not in the other, or in some steps only. A parameter without a gradient in the
first pass is not perturbed; the base optimizer steps exactly the parameters with a
gradient in the last pass (the others keep their weights and optimizer state).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..options import accepted_keywords, check_options
from ._distributed import is_distributed
from .running_stats import frozen_running_stats


@dataclass
class Iteration:
    """What one iteration does: a SAM step or not, on which rows, with which weights.

    Attributes:
        sam: Whether a second (perturbed) pass is run.
        index: Batch positions to evaluate, shape ``[k]`` (subset optimizers), else ``None``.
        weights: Per-sample weights of the selected rows, shape ``[k]``, or ``None`` for
            a plain mean (AUSAM's importance weighting).
    """

    sam: bool
    index: Optional[Tensor] = None
    weights: Optional[Tensor] = None

    def objective(self, loss: Tensor) -> Tensor:
        """The scalar to back-propagate: the (weighted) mean of ``loss`` (any shape)."""
        return loss.mean() if self.weights is None else (loss * self.weights).mean()


@dataclass
class GradGroup:
    """The parameters of one param group that received a gradient, and those gradients."""

    group: dict
    params: List[Tensor]
    grads: List[Tensor]


@dataclass
class _Pending:
    """An iteration between :meth:`SAMBase.begin` and :meth:`SAMBase.second_step`."""

    plan: Iteration
    stage: str = 'begun'                  # 'begun' -> 'first_step' -> done
    scaler: Optional[object] = None
    found_inf: Optional[Tensor] = None
    loss: Optional[Tensor] = None         # per-sample losses of the first pass (AUSAM)
    groups: List[GradGroup] = field(default_factory=list)  # non-SAM iterations only
    perturbed: bool = False               # w holds w + e (restore on abort)


def resolve_base_optimizer(base_optimizer) -> type:
    """Return a ``torch.optim.Optimizer`` subclass given the class itself or its name."""
    if isinstance(base_optimizer, str):
        cls = getattr(torch.optim, base_optimizer, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            names = sorted(n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
                           and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)
                           and n != 'Optimizer')
            raise ValueError(f'Unknown base_optimizer {base_optimizer!r}; use one of {names} '
                             'or pass an optimizer class.')
        return cls
    if isinstance(base_optimizer, type) and issubclass(base_optimizer, torch.optim.Optimizer):
        return base_optimizer
    raise TypeError('base_optimizer must be a torch.optim.Optimizer subclass or its name, '
                    f'got {base_optimizer!r}.')


def flat_params(groups: List[GradGroup]) -> List[Tensor]:
    """The parameters of ``groups``, in order."""
    return [p for g in groups for p in g.params]


def flat_grads(groups: List[GradGroup]) -> List[Tensor]:
    """The gradients of ``groups``, in the order of :func:`flat_params`."""
    return [t for g in groups for t in g.grads]


def global_norm(tensors: List[Tensor]) -> Tensor:
    """One L2 norm over all ``tensors`` (0-dim), in float32, or float64 if any tensor is float64."""
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors, 2, dtype=dtype)))


def _enabled(scaler):
    """``scaler``, or ``None`` for a disabled ``GradScaler`` (``GradScaler(enabled=use_amp)``)."""
    return scaler if scaler is not None and scaler.is_enabled() else None


def check_rho(rho: float) -> None:
    if not rho >= 0:
        raise ValueError(f'rho must be >= 0 (the perturbation radius), got {rho}.')


class SAMBase(torch.optim.Optimizer):
    """Base class of the SAM family; runs the iteration skeleton described above.

    Args:
        params: Parameters or param groups, as for any torch optimizer.
        base_optimizer: The optimizer that applies the final gradient, as a class or as
            the name of a class in ``torch.optim`` (e.g. ``'SGD'``, ``'AdamW'``).
        rho: Perturbation radius, a param-group key (schedulable like ``lr``).
        adaptive: ASAM (Kwon et al., ICML 2021): scale the perturbation by ``|w|``.
        perturb_eps: Added to the norm of the perturbation (and LookSAM's ratios). Norms
            are computed in float32 (float64 for float64 parameters), so the default is
            safe for fp16/bf16 gradients too. Not ``eps``: that is the base optimizer's
            (Adam's, RMSprop's...).
        check_finite: Raise ``FloatingPointError`` on a non-finite first-pass loss.
            Costs one host synchronisation per step, so it is off by default; with a
            ``GradScaler`` non-finite steps are always skipped instead.
        base_options: Hyper-parameters of the base optimizer given as a dict; needed only
            for a name that this class uses too (e.g. RMSprop's ``alpha`` next to AUSAM's
            or LookSAM's ``alpha``). Wins over ``**base_kwargs``.
        **base_kwargs: Hyper-parameters of the base optimizer (``lr``, ``momentum``, ``eps``...).
    """

    #: Whether ``step`` needs ``sample_ids`` and calls ``closure(index)``.
    uses_sample_ids = False

    def __init__(self, params, base_optimizer='SGD', rho: float = 0.05, adaptive: bool = False,
                 perturb_eps: float = 1e-12, check_finite: bool = False,
                 base_options: Optional[dict] = None, **base_kwargs):
        check_rho(rho)
        if not perturb_eps > 0:
            raise ValueError(f'perturb_eps must be > 0, got {perturb_eps}.')
        base_kwargs = {**base_kwargs, **(base_options or {})}
        base_cls = resolve_base_optimizer(base_optimizer)
        self._check_base_kwargs(base_cls, base_kwargs)
        super().__init__(params, dict(rho=rho, adaptive=adaptive, **base_kwargs))
        self.base_optimizer = base_cls(self.param_groups, **base_kwargs)
        self._share_base_state()
        self.defaults.update(self.base_optimizer.defaults)
        self.perturb_eps = perturb_eps
        self.check_finite = check_finite
        self._backup: List[Tensor] = []
        self._backup_params: List[Tensor] = []
        self._checked_closure = False
        self._pending: Optional[_Pending] = None
        self.last_iteration: Optional[Iteration] = None

    def _check_base_kwargs(self, base_cls: type, base_kwargs: dict) -> None:
        """A key neither this class nor the base optimizer knows: name this class, not the base."""
        own = accepted_keywords(type(self), stop_at=SAMBase, exclude=('self', 'params'))
        base = accepted_keywords(base_cls, exclude=('self', 'params'))
        if own is not None and base is not None:
            check_options(type(self).__name__, [k for k in base_kwargs if k not in base], own | base,
                          context=f'(base optimizer {base_cls.__name__})')

    def _share_base_state(self) -> None:
        # One set of param groups and one state for wrapper and base optimizer.
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state

    # ------------------------------------------------------- closure form
    @torch.no_grad()
    def step(self, closure: Callable[..., Tensor] = None, *, model: Optional[nn.Module] = None,
             scaler: Optional['torch.amp.GradScaler'] = None, sample_ids: Optional[Tensor] = None,
             before_base_step: Optional[Callable[[], None]] = None,
             loss: Optional[Tensor] = None) -> Optional[Tensor]:
        """Run one iteration and return the (detached) mean loss of the first pass.

        Called without a closure after :meth:`first_step`, it finishes that iteration
        instead (what :meth:`second_step` does), so that step hooks, LR schedulers and
        frameworks that count ``optimizer.step()`` calls see one step per iteration.

        Args:
            closure: Runs the forward pass and returns the loss (scalar, or per sample).
                Must not call ``backward``. Subset optimizers call ``closure(index)``.
            model: The module the closure runs (DDP-wrapped or not). Its buffers are
                frozen during the second pass, and under DDP the first pass of a SAM
                iteration runs inside ``model.no_sync()``. ``None`` only for models
                without buffers outside DDP.
            scaler: A ``torch.amp.GradScaler`` for fp16 training (a disabled one counts
                as none). Each pass is unscaled before its norm; a non-finite value in
                either pass skips the step and leaves the weights unchanged.
                ``scaler.update()`` is called here.
            sample_ids: Stable ids of the batch's samples, shape ``[batch]`` (subset
                optimizers; the others ignore them). Keep them on the CPU.
            before_base_step: Called with the final gradient in ``.grad`` right before
                the base optimizer steps (e.g. gradient clipping).
            loss: Only when finishing a two-phase iteration: see :meth:`second_step`.

        Raises:
            TypeError: no closure (outside a two-phase iteration), or the closure does
                not return a tensor.
            RuntimeError: the closure called ``backward`` or returned a detached loss,
                or no parameter received a gradient.
            ValueError: a subset optimizer got a loss that is not per sample.
        """
        if closure is None:
            if self._pending is not None and self._pending.stage == 'first_step':
                return self._finish(loss, before_base_step)
            raise TypeError(f'{type(self).__name__}.step needs a closure that returns the loss '
                            '(or, in the two-phase form, a first_step() before it); see the README.')
        if self._pending is not None:
            raise RuntimeError(f'{type(self).__name__}.step: an iteration started with begin() '
                               'has not been finished with second_step() (or dropped with abort()).')
        scaler = _enabled(scaler)
        plan = self.begin(sample_ids)
        args = () if plan.index is None else (plan.index,)
        self.zero_grad(set_to_none=True)
        try:
            with self.first_pass(model):
                loss = self._forward_backward(closure, args, scaler, plan)
            loss_after = None
            if self._first_step(scaler, loss):
                with self.second_pass(model):
                    loss_after = self._forward_backward(closure, args, scaler, plan)
        except BaseException:
            self.abort()
            raise
        self._finish(loss_after, before_base_step)
        return loss.mean()

    def _forward_backward(self, closure, args, scaler, plan: Iteration) -> Tensor:
        with torch.enable_grad():
            loss = closure(*args)
            self._check_loss(loss, plan)
            objective = plan.objective(loss)
            if self.check_finite and scaler is None:
                self._check_finite(objective)
            (scaler.scale(objective) if scaler is not None else objective).backward()
        return loss.detach()

    def _check_loss(self, loss, plan: Iteration) -> None:
        name = type(self).__name__
        if not isinstance(loss, Tensor):
            raise TypeError(f'{name}: the closure must return the loss as a tensor, got '
                            f'{type(loss).__name__}.')
        if not self._checked_closure:
            if any(p.grad is not None for g in self.param_groups for p in g['params']):
                raise RuntimeError(f'{name}: the closure called backward(). Return the loss '
                                   'instead: the optimizer runs backward itself.')
            self._checked_closure = True
        if not loss.requires_grad:
            raise RuntimeError(f'{name}: the loss returned by the closure has no gradient '
                               '(computed under torch.no_grad() or detached?).')
        self._check_per_sample(loss, plan)

    def _check_finite(self, objective: Tensor) -> None:
        if not torch.isfinite(objective):
            raise FloatingPointError(
                f'{type(self).__name__}: the loss is not finite ({objective.item()}). Lower the '
                'learning rate or rho, or use a GradScaler to skip such steps.')

    def _check_per_sample(self, loss: Tensor, plan: Iteration) -> None:
        if plan.index is not None and loss.shape != plan.index.shape:
            raise ValueError(
                f'{type(self).__name__} needs per-sample losses: the loss of the rows '
                f'iteration.index must have shape [{plan.index.numel()}] (one loss per selected '
                f"sample, e.g. cross_entropy(..., reduction='none')), got shape {tuple(loss.shape)}.")

    # ---------------------------------------------------- two-phase form
    def begin(self, sample_ids: Optional[Tensor] = None) -> Iteration:
        """Decide the coming iteration, before its first forward pass.

        Optional for optimizers that evaluate the whole batch (``first_pass`` and
        ``first_step`` call it); required for subset optimizers (AUSAM), whose
        ``Iteration.index`` names the batch rows to evaluate in both passes.

        Args:
            sample_ids: Stable ids of the batch's samples, shape ``[batch]`` (subset
                optimizers; ignored by the others).

        Returns:
            The :class:`Iteration`: ``sam`` (a second pass follows), ``index``,
            ``weights``; ``it.objective(per_sample_loss)`` is the scalar to back-propagate.
        """
        if self._pending is not None:
            raise RuntimeError(f'{type(self).__name__}.begin: the previous iteration was not '
                               'finished; call second_step() after every first_step().')
        plan = self.last_iteration = self._plan(sample_ids)
        self._pending = _Pending(plan)
        return plan

    def _current(self, caller: str) -> _Pending:
        if self._pending is None:
            if self.uses_sample_ids:
                raise RuntimeError(f'{type(self).__name__}.{caller}: call begin(sample_ids=ids) '
                                   'before the first forward pass; it returns the rows to evaluate.')
            self.begin()
        return self._pending

    def first_pass(self, model: Optional[nn.Module]):
        """Context for the first forward/backward: ``model.no_sync()`` under DDP when this
        iteration runs a second pass (g stays rank-local, as SAM intends), else nothing."""
        plan = self._current('first_pass').plan
        no_sync = getattr(model, 'no_sync', None) if plan.sam and is_distributed() else None
        return no_sync() if no_sync is not None else nullcontext()

    @staticmethod
    def second_pass(model: Optional[nn.Module]):
        """Context for the second forward/backward: every buffer of ``model`` (BatchNorm
        running statistics, LSQ/observer state, EMA buffers) is restored on exit."""
        return frozen_running_stats(model)

    @torch.no_grad()
    def first_step(self, scaler: Optional['torch.amp.GradScaler'] = None,
                   loss: Optional[Tensor] = None) -> bool:
        """After the first backward: perturb w on SAM iterations; say whether a 2nd pass is wanted.

        Args:
            scaler: The ``GradScaler`` the backward was scaled with (fp16), or ``None`` (a
                disabled one counts as none). The same scaler must scale the second
                backward; :meth:`second_step` calls ``scaler.update()`` (do not call
                ``scaler.step``/``update`` yourself).
            loss: Losses of the first pass: per sample, shape ``[k]``, for AUSAM (DLP);
                optional for the others (checked for finiteness with ``check_finite``).

        Returns:
            ``True`` if the caller must run a second forward/backward on the same rows
            (inside :meth:`second_pass`), ``False`` if the iteration has one pass only.
            Either way, finish with :meth:`second_step` (or :meth:`abort`).

        Raises:
            FloatingPointError: ``check_finite`` and a non-finite ``loss`` (w unchanged).
            RuntimeError: called twice, or no parameter received a gradient.
        """
        pending = self._current('first_step')
        if pending.stage != 'begun':
            raise RuntimeError(f'{type(self).__name__}.first_step called twice; call second_step() '
                               '(or abort()).')
        scaler = _enabled(scaler)
        try:
            if self.check_finite and scaler is None and loss is not None:
                self._check_finite(pending.plan.objective(loss))
            return self._first_step(scaler, loss)
        except BaseException:
            self.abort()
            raise

    def _first_step(self, scaler, loss: Optional[Tensor]) -> bool:
        pending = self._pending
        plan = pending.plan
        if self.uses_sample_ids and plan.sam:
            if loss is None:
                raise ValueError(f'{type(self).__name__}.first_step needs loss=<per-sample losses '
                                 'of the first pass> (shape [len(iteration.index)]) for DLP.')
            self._check_per_sample(loss, plan)
        groups = self._grad_groups()
        pending.stage, pending.scaler = 'first_step', scaler
        pending.loss = None if loss is None else loss.detach()
        pending.found_inf = self._unscale(groups, scaler)
        if plan.sam:
            self._before_perturb(groups)
            self._perturb(groups)
        else:
            pending.groups = groups
        return plan.sam

    def second_step(self, loss: Optional[Tensor] = None,
                    before_base_step: Optional[Callable[[], None]] = None) -> None:
        """Finish the iteration: restore w, apply the final gradient with the base optimizer.

        Goes through :meth:`step` (without a closure), so step hooks and LR schedulers see it.

        Args:
            loss: Per-sample losses of the second pass, shape ``[k]`` (AUSAM, SAM
                iterations only).
            before_base_step: Called with the final gradient in ``.grad`` right before
                the base optimizer steps (e.g. gradient clipping).
        """
        pending = self._pending
        if pending is None or pending.stage != 'first_step':
            raise RuntimeError(f'{type(self).__name__}.second_step needs first_step() first.')
        self.step(loss=loss, before_base_step=before_base_step)

    @torch.no_grad()
    def _finish(self, loss: Optional[Tensor], before_base_step: Optional[Callable[[], None]]) -> None:
        pending = self._pending
        plan, scaler, found_inf = pending.plan, pending.scaler, pending.found_inf
        try:
            if plan.sam:
                torch._foreach_copy_(self._backup_params, self._backup)
                pending.perturbed = False
                if self.uses_sample_ids:
                    if loss is None:
                        raise ValueError(f'{type(self).__name__}.second_step needs loss=<per-sample '
                                         'losses of the second pass> for DLP.')
                    self._check_per_sample(loss, plan)
                groups = self._grad_groups()
                found_inf = self._unscale(groups, scaler, found_inf)
                finite = self._is_finite(found_inf)
                if finite:
                    self._after_sam_step(groups, plan, pending.loss,
                                         None if loss is None else loss.detach())
                else:
                    self._skipped_sam_step()
            else:
                finite = self._is_finite(found_inf)
                if finite:
                    self._non_sam_step(pending.groups)
        finally:
            self._pending = None
        if finite:
            if before_base_step is not None:
                before_base_step()
            self.base_optimizer.step()
        if scaler is not None:
            self._update_scaler(scaler, found_inf)
        self._end_iteration(plan)

    @torch.no_grad()
    def abort(self) -> None:
        """Drop the iteration in progress (e.g. a batch that failed in its second pass).

        Restores w if :meth:`first_step` perturbed it; the optimizer state and schedules
        are as before the iteration, except that the schedule's draw for it is used. The
        gradients are left as they are (call ``zero_grad()``). A no-op without one.
        """
        pending, self._pending = self._pending, None
        if pending is not None and pending.perturbed:
            torch._foreach_copy_(self._backup_params, self._backup)

    # ---------------------------------------------------------- subclass hooks
    def _plan(self, sample_ids: Optional[Tensor]) -> Iteration:
        """Decide the iteration before its first pass (host-side, same on every rank)."""
        return Iteration(sam=True)

    def _before_perturb(self, groups: List[GradGroup]) -> None:
        """Called with g in ``.grad`` before it is turned into the perturbation."""

    def _after_sam_step(self, groups: List[GradGroup], plan: Iteration, loss: Optional[Tensor],
                        loss_after: Optional[Tensor]) -> None:
        """Called with g_s in ``.grad`` (``groups``: the second pass's) and w restored,
        before the base step."""

    def _skipped_sam_step(self) -> None:
        """Called when a SAM iteration is skipped (non-finite gradient under a GradScaler):
        buffers filled in ``_before_perturb`` hold garbage and must not be reused."""

    def _non_sam_step(self, groups: List[GradGroup]) -> None:
        """Called with g in ``.grad`` on iterations without a second pass."""

    def _end_iteration(self, plan: Iteration) -> None:
        """Called last in every iteration (counters, schedules)."""

    def _extra_state(self) -> dict:
        """State of the subclass that must survive a checkpoint."""
        return {}

    def _load_extra_state(self, state: dict) -> None:
        pass

    def _grad_groups(self) -> List[GradGroup]:
        groups = []
        for group in self.param_groups:
            params = [p for p in group['params'] if p.grad is not None]
            if params:
                groups.append(GradGroup(group, params, [p.grad for p in params]))
        if not groups:
            raise RuntimeError(f'{type(self).__name__}: no parameter received a gradient; does the '
                               "loss depend on the optimizer's parameters?")
        return groups

    # ------------------------------------------------------------- perturbation
    def _perturbation_norm(self, groups: List[GradGroup]) -> Tensor:
        """||g|| (SAM) or ||T g|| with T = |w| (ASAM), over all tensors."""
        tensors = []
        for g in groups:
            grads = g.grads
            if g.group['adaptive']:
                grads = torch._foreach_mul(torch._foreach_abs(g.params), g.grads)
            tensors.extend(grads)
        return global_norm(tensors)

    def _perturb(self, groups: List[GradGroup]) -> None:
        """w <- w + e, e = rho g / (||g|| + eps) or rho T^2 g / (||T g|| + eps).

        e is built in place in ``.grad`` (g is consumed); the gradients are then dropped
        (``None``) so that the second backward reports exactly the parameters it reaches.
        """
        norm = self._perturbation_norm(groups)
        params = flat_params(groups)
        self._backup_params = params
        if len(self._backup) != len(params) or any(
                b.shape != p.shape or b.dtype != p.dtype for b, p in zip(self._backup, params)):
            self._backup = [torch.empty_like(p) for p in params]
        torch._foreach_copy_(self._backup, params)
        self._pending.perturbed = True
        inv_norm = (norm + self.perturb_eps).reciprocal()
        for g in groups:
            if g.group['adaptive']:
                abs_w = torch._foreach_abs(g.params)
                torch._foreach_mul_(g.grads, abs_w)
                torch._foreach_mul_(g.grads, abs_w)
            torch._foreach_mul_(g.grads, inv_norm * g.group['rho'])
            torch._foreach_add_(g.params, g.grads)
        for p in params:
            p.grad = None

    # ---------------------------------------------------------- mixed precision
    @staticmethod
    def _unscale(groups: List[GradGroup], scaler, found_inf: Optional[Tensor] = None):
        """Unscale this pass's gradients in place; accumulate the non-finite flag."""
        if scaler is None:
            return None
        grads = flat_grads(groups)
        if found_inf is None:
            found_inf = torch.zeros(1, device=grads[0].device)
        inv_scale = scaler._scale.double().reciprocal().float().to(grads[0].device)
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale)
        return found_inf

    @staticmethod
    def _is_finite(found_inf: Optional[Tensor]) -> bool:
        """Host decision to step; under DDP every rank sees any rank's overflow."""
        if found_inf is None:
            return True
        if is_distributed():
            dist.all_reduce(found_inf, op=dist.ReduceOp.MAX)
        return not bool(found_inf.item())

    def _update_scaler(self, scaler, found_inf: Tensor) -> None:
        # GradScaler.update() reads the flags recorded per optimizer by unscale_();
        # record ours (both passes) so that it backs off or grows as usual.
        scaler._per_optimizer_states[id(self)]['found_inf_per_device'] = {found_inf.device: found_inf}
        scaler.update()

    # -------------------------------------------------------------- state dict
    def state_dict(self) -> dict:
        """The base optimizer's state dict plus this optimizer's own state under ``'sam'``."""
        state = self.base_optimizer.state_dict()
        state['sam'] = self._extra_state()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop('sam', None)
        if extra is None:
            raise KeyError(f'{type(self).__name__}.load_state_dict: no "sam" entry; this state '
                           'dict was not saved by a SAM-family optimizer.')
        self.base_optimizer.load_state_dict(state_dict)
        self._share_base_state()
        self._load_extra_state(extra)

    def _param_index(self) -> dict:
        """Position of each parameter in the flattened param groups (checkpoint keys)."""
        return {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g['params'])}

    def __repr__(self) -> str:
        return f'{type(self).__name__}(base={self.base_optimizer!r})'
