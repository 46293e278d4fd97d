"""LSQ: Learned Step Size Quantization (Esser et al., ICLR 2020), as brevitas quantizers.

LSQ quantizes a tensor v with a learned step size s::

    v_q = round(clip(v / s, -Q_N, Q_P)) * s

- signed (weights):           Q_N = 2^(b-1), Q_P = 2^(b-1) - 1
- unsigned (after a ReLU):    Q_N = 0,       Q_P = 2^b - 1

``round`` is a straight-through estimator, so the gradient with respect to s is
``-v/s + round(v/s)`` inside the range and ``-Q_N`` / ``Q_P`` at the clipped ends (clipped is
decided before rounding). The gradient of s is multiplied by ``g = 1 / sqrt(N * Q_P)``, N being
the number of weights the step quantizes (per channel: the weights of one output channel) or the
number of features of one sample of the activation. The step starts at
``s = 2 * mean(|v|) / sqrt(Q_P)``: from the weights when the layer is built (or when
:meth:`LSQStepSize.init_from_weight` is called after loading pretrained weights), from the first
batch seen in training mode for activations.

How this plugs into brevitas (0.13): a brevitas integer quantizer is a ``RescalingIntQuant``
that asks its ``scaling_impl`` for the scale and hands it to its ``int_quant``. The two
quantizer classes below (:class:`LSQWeightQuant`, :class:`LSQActQuant`) inject

- ``scaling_impl = LSQStepSize``: the step s itself is the ``nn.Parameter`` (created in
  ``__init__``, so optimizers and SAM see it at once); the step it returns is
  ``max(|s|, min_step)`` (always positive, see :func:`positive_step`) with LSQ's gradient scale;
- ``int_quant = LSQIntQuant``: brevitas's ``IntQuant`` with clamp and round swapped
  (``round(clamp(v/s))`` instead of ``clamp(round(v/s))``). The forward values are identical
  (the bounds are integers), but only this order gives LSQ's gradient at the range ends.

Everything else is stock brevitas (zero zero-point, constant bit width, ``narrow_range=False``,
float scale), so layers are plain ``QuantConv2d`` / ``QuantLinear`` / ``QuantReLU`` /
``QuantIdentity`` and ``brevitas.export.export_onnx_qcdq`` exports them unchanged.

Example:
    >>> from brevitas.nn import QuantConv2d, QuantReLU
    >>> conv = QuantConv2d(3, 8, 3, weight_quant=LSQWeightQuant, weight_bit_width=4,
    ...                    weight_scaling_per_output_channel=True)
    >>> act = QuantReLU(act_quant=LSQActQuant, bit_width=4)
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import brevitas
import torch
import torch.distributed as dist
from brevitas.core.function_wrapper import TensorClamp
from brevitas.core.quant import IntQuant
from brevitas.inject import ExtendedInjector
from brevitas.inject.enum import RestrictValueType, ScalingImplType
from brevitas.quant.base import IntQuant as _SignedIntQuantFragment
from brevitas.quant.base import UintQuant as _UnsignedIntQuantFragment
from brevitas.quant.solver import ActQuantSolver, WeightQuantSolver
from torch import Tensor, nn

__all__ = ['lsq_range', 'lsq_init_step', 'grad_scale', 'positive_step', 'LSQ_MIN_STEP',
           'LSQStepSize', 'LSQIntQuant', 'LSQWeightQuant', 'LSQActQuant', 'LSQSignedActQuant']

MIN_BITS, MAX_BITS = 2, 8  # QCDQ export carries at most 8-bit integers
# Floor of the step used in forward (see positive_step): 2^-24, float16's smallest subnormal.
# A power of two, so it is exact in float16, bfloat16 and float32, and it stays > 0 when a
# per-tensor (0-dim) step is promoted to a float16 input's dtype under autocast (v / s then runs
# in float16, where anything below 2^-25 rounds to 0 and 0 / 0 is NaN). It lies 2-3 orders of
# magnitude below the smallest steps LSQ's init gives real layers (8-bit weights of std 1e-4:
# s ~ 1.4e-5), so it never alters a healthy step; it only catches a step pushed to 0 or below.
LSQ_MIN_STEP = 2.0 ** -24
_OWNER_KEY = '_lsq_step_size'  # the proxy's reference to its current LSQStepSize


def lsq_range(bit_width: int, signed: bool) -> Tuple[int, int]:
    """Return LSQ's integer range ``(Q_N, Q_P)``: the grid is ``[-Q_N, Q_P]``.

    Args:
        bit_width: Number of bits b, 2..8.
        signed: ``True`` for weights and signed activations, ``False`` after a ReLU.
    """
    bit_width = int(bit_width)
    if not MIN_BITS <= bit_width <= MAX_BITS:
        raise ValueError(f'LSQ bit_width must be an integer in [{MIN_BITS}, {MAX_BITS}], got '
                         f'{bit_width}; keep full precision for layers that need more bits.')
    if signed:
        return 2 ** (bit_width - 1), 2 ** (bit_width - 1) - 1
    return 0, 2 ** bit_width - 1


def lsq_init_step(v: Tensor, q_p: int, shape: Sequence[int] = ()) -> Tensor:
    """LSQ's initial step ``2 * mean(|v|) / sqrt(Q_P)``, one per entry of ``shape``.

    Args:
        v: Weights or a batch of activations.
        q_p: Upper end Q_P of the integer range.
        shape: Broadcastable shape of the step: ``()`` for one step per tensor,
            e.g. ``(C_out, 1, 1, 1)`` for one per output channel of a conv weight.
            The mean runs over the dimensions where ``shape`` is 1.

    Returns:
        The step, of shape ``shape``, at least the smallest normal number of v's dtype
        (an all-zero tensor would otherwise give a zero step and a division by zero).
    """
    v = v.detach().abs()
    if len(shape) == 0 or math.prod(shape) == 1:
        mean = v.mean().reshape(shape)
    else:
        if len(shape) != v.dim():
            raise ValueError(f'step shape {tuple(shape)} does not broadcast against '
                             f'{tuple(v.shape)}')
        dims = [d for d, n in enumerate(shape) if n == 1]
        mean = v.mean(dim=dims, keepdim=True)
    return (2.0 * mean / math.sqrt(q_p)).clamp_min(torch.finfo(v.dtype).tiny)


def grad_scale(x: Tensor, g: float) -> Tensor:
    """Return x unchanged with its gradient multiplied by g (LSQ's gradient scale).

    The paper writes ``(x - x * g).detach() + x * g``; this is the same function and the
    same gradient, in an order whose forward value is exactly ``x`` (the exported scale is
    then bit-identical to the parameter).
    """
    xg = x * g
    return x.detach() + (xg - xg.detach())


def positive_step(s: Tensor, min_step: float = LSQ_MIN_STEP) -> Tensor:
    """The step LSQ uses in forward: ``max(|s|, min_step)``, with gradient ``sign(s)``.

    LSQ needs s > 0, but nothing in training keeps the learned parameter there: SAM's ascent
    step and learning-rate spikes can push it to 0 (``v / s`` is then ``0 / 0 = NaN``) or below
    (after a ReLU everything quantizes to 0 and the step gradient is exactly 0: a dead layer).
    The parameter s stays free; the step used is its magnitude, floored:

    - forward: ``s_used = max(|s|, min_step) > 0``, always;
    - backward: ``d s_used / d s = sign(s)``, with ``sign(0) := +1``, straight through, also
      where the floor is active (there the true derivative is 0 and the layer could never
      leave the floor).

    Why this parametrisation: for ``s >= min_step`` the forward value is ``s`` bit for bit and
    the gradient is multiplied by exactly 1.0, so LSQ is unchanged wherever it was defined
    (same values, same gradients as ``torch._fake_quantize_learnable_*``). A log-parametrised
    step (``s = exp(t)``) is positive too, but changes the gradient everywhere (``ds/dt = s``)
    and the optimiser dynamics of healthy steps. For ``s < 0`` the layer behaves as with
    ``|s|`` (the loss is even in s) and keeps learning: gradient descent moves ``|s|`` the way
    the loss asks, by the same amount as for ``+|s|``. At or below the floor the gradient is
    LSQ's at ``min_step``: non-zero and finite, so a step pushed to 0 recovers.

    Args:
        s: The learned step (any shape: per tensor or per channel).
        min_step: The floor, > 0 (default :data:`LSQ_MIN_STEP` = 2^-24).

    Returns:
        ``s_used``, of s's shape and dtype, every entry >= ``min_step``.
    """
    sign = 1.0 - 2.0 * (s.detach() < 0).to(s.dtype)  # +1 for s >= 0 (and for -0.0), -1 below
    magnitude = s * sign                                # |s|, differentiable: d/ds = sign(s)
    floored = magnitude.detach().clamp_min(min_step)
    return floored + (magnitude - magnitude.detach())   # value: floored exactly (x - x = 0)


class LSQStepSize(nn.Module):
    """LSQ step size: a brevitas ``scaling_impl`` that owns the learned step s.

    Built by brevitas's dependency injection from the quantizer's attributes (``bit_width``,
    ``signed``, ``scaling_shape``, ``lsq_activation``, and for weights the tracked weight).

    The step used in forward (and seen by brevitas, hence by ONNX export, as the scale) is
    ``max(|s|, min_step)`` with gradient ``sign(s)`` (:func:`positive_step`): always positive,
    identical to s (value and gradient) for ``s >= min_step``, and still learning when an
    optimizer or SAM's perturbation pushes s to 0 or below (no NaN, no dead layer).

    Attributes:
        value (nn.Parameter): The step s (``step`` is an alias), shape ``scaling_shape``. It may
            become <= 0 in training; :attr:`used_step` is what the forward uses.
        min_step (float): Floor of the step used in forward.
        initialized (Tensor): Bool buffer, set once s holds LSQ's initial value.
        q_n, q_p (int): Integer range ``[-Q_N, Q_P]``.
        bit_width (int), signed (bool), activation (bool).

    Args:
        bit_width: Bits b (2..8).
        signed: Signed grid (weights) or unsigned (activations after a ReLU).
        scaling_shape: Shape of s: ``()`` per tensor, ``(C_out, 1, ...)`` per channel.
        lsq_activation: ``True`` for activations: s is initialised from the first batch seen in
            training mode and N is the number of features per sample; ``False`` for weights: s
            is initialised from the weight here and N is the number of weights per step.
        tracked_parameter_list: The weight(s) (weights only), injected by brevitas.
        dtype, device: Of the step (weights: those of the weight).
        proxy_module: The brevitas quantizer proxy that owns this module, injected by brevitas.
        lsq_min_step: Floor of the step used in forward (default :data:`LSQ_MIN_STEP`, 2^-24);
            set it on a quantizer with e.g. ``LSQActQuant.let(lsq_min_step=1e-6)``.

    Note:
        brevitas rebuilds a quantizer's modules on ``load_state_dict`` (its
        ``REINIT_ON_STATE_DICT_LOAD``). The rebuilt step keeps the previous ``nn.Parameter``
        object (found through ``proxy_module``), so an optimizer built before a checkpoint is
        loaded (MMEngine's resume) keeps updating the step. As in brevitas, a rebuilt weight step
        is re-initialised from the weight just loaded, then overwritten by the checkpoint's step
        if it has one; an activation step keeps its value and flag unless the checkpoint has them.
    """

    def __init__(self, bit_width: int, signed: bool, scaling_shape: Sequence[int] = (),
                 lsq_activation: bool = False,
                 tracked_parameter_list: Optional[Sequence[nn.Parameter]] = None,
                 dtype: Optional[torch.dtype] = None,
                 device: Optional[torch.device] = None,
                 proxy_module: Optional[nn.Module] = None,
                 lsq_min_step: float = LSQ_MIN_STEP) -> None:
        super().__init__()
        self.min_step = float(lsq_min_step)
        if not (self.min_step > 0 and math.isfinite(self.min_step)):
            raise ValueError(f'lsq_min_step must be a positive finite number, got {lsq_min_step}')
        self.bit_width, self.signed = int(bit_width), bool(signed)
        self.q_n, self.q_p = lsq_range(self.bit_width, self.signed)
        self.activation = bool(lsq_activation)
        shape = tuple(scaling_shape)
        previous = None if proxy_module is None else proxy_module.__dict__.get(_OWNER_KEY)
        if previous is not None and tuple(previous.value.shape) == shape \
                and previous.activation == self.activation:
            self.value = previous.value  # same Parameter object: optimizers keep tracking it
            self.register_buffer('initialized', previous.initialized.clone())
            self._initialized = previous._initialized
        else:
            self.value = nn.Parameter(torch.ones(shape, dtype=dtype, device=device))
            self.register_buffer('initialized', torch.tensor(False, device=device))
            self._initialized = False  # host mirror: no device sync per forward
        if proxy_module is not None:  # a plain reference, not a registered submodule
            proxy_module.__dict__[_OWNER_KEY] = self
        # A plain list (not registered): the weight belongs to the layer.
        self._weights = [] if self.activation else list(tracked_parameter_list or [])
        if self._weights:
            self.init_from_weight()

    @property
    def step(self) -> nn.Parameter:
        """The learned step size s (an ``nn.Parameter``; may be <= 0, see :attr:`used_step`)."""
        return self.value

    @property
    def used_step(self) -> Tensor:
        """The step the forward uses, ``max(|s|, min_step)`` (detached): the exported scale."""
        return positive_step(self.value.detach(), self.min_step)

    @torch.no_grad()
    def init_from(self, v: Tensor) -> None:
        """Set s to ``2 * mean(|v|) / sqrt(Q_P)`` and mark the step initialised.

        For activations under ``torch.distributed`` the mean is averaged over the ranks, so
        every rank starts from the same step (all ranks must call this together, as they do
        in their first training forward).
        """
        step = lsq_init_step(v, self.q_p, self.value.shape).to(self.value)
        if self.activation and dist.is_available() and dist.is_initialized() \
                and dist.get_world_size() > 1:
            dist.all_reduce(step)
            step /= dist.get_world_size()
        self.value.copy_(step)
        self._set_initialized(True)

    def init_from_weight(self) -> None:
        """(Re)initialise s from the current values of the quantized weight (e.g. pretrained)."""
        if not self._weights:
            raise RuntimeError('init_from_weight() needs a weight quantizer; an activation step '
                               'is initialised from data: call init_from(batch) or '
                               'qat_sam.quant.calibrate_lsq(model, batch).')
        v = self._weights[0] if len(self._weights) == 1 else torch.cat(
            [w.detach().flatten() for w in self._weights])
        if v.dim() != self.value.dim() and self.value.numel() > 1:
            raise RuntimeError('per-channel init of a step shared by several weights is not '
                               'supported; use one quantizer per layer.')
        self.init_from(v)

    def reset(self) -> None:
        """Forget the initialisation: the next training forward re-initialises s from its batch."""
        self._set_initialized(False)

    def _set_initialized(self, flag: bool) -> None:
        self._initialized = flag
        self.initialized.fill_(flag)

    def num_features(self, x: Tensor) -> int:
        """N of LSQ's gradient scale for input x."""
        if self.activation:  # features of one sample
            return max(1, x.numel() // x.shape[0]) if x.dim() > 1 else max(1, x.numel())
        return max(1, x.numel() // self.value.numel())  # weights per step

    def forward(self, x: Tensor, threshold: Optional[Tensor] = None) -> Tensor:
        """Return the step for input x; brevitas's threshold is not used.

        The step is ``max(|s|, min_step)`` with gradient ``sign(s)`` (:func:`positive_step`),
        times LSQ's gradient scale ``g = 1 / sqrt(N * Q_P)``. An activation step not yet
        initialised takes its value from x in training mode, once. brevitas queries the scale
        with a 0-dim placeholder (e.g. at export): that never initialises.
        """
        if self.training and not self._initialized and x.dim() > 0:
            self.init_from(x)
        g = 1.0 / math.sqrt(self.num_features(x) * self.q_p)
        return grad_scale(positive_step(self.value, self.min_step), g)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        self.initialized.fill_(self._initialized)  # the host flag is the authority
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + 'initialized' in state_dict:
            self._initialized = bool(self.initialized)

    def extra_repr(self) -> str:
        kind = 'activation' if self.activation else 'weight'
        return (f'{kind}, bit_width={self.bit_width}, Q_N={self.q_n}, Q_P={self.q_p}, '
                f'shape={tuple(self.value.shape)}, min_step={self.min_step:g}')


class LSQIntQuant(IntQuant):
    """brevitas ``IntQuant`` that clips before rounding: ``round_ste(clamp(v/s, -Q_N, Q_P))``.

    Same forward as brevitas's ``clamp(round_ste(v/s))``; the gradient differs for v/s within
    half a step outside the range, where LSQ (and this class) count v as clipped.

    Half-precision inputs (fp16/bf16 autocast) are quantized in float32 and the result is
    cast back: the step gradient of ``v / s`` is ``-grad * (v / s) / s``, which overflows
    fp16 for small steps (0 * inf = NaN for clipped values, and a GradScaler would then skip
    every step). Costs a float32 copy of the input for backward in half-precision runs.
    """

    @brevitas.jit.script_method
    def forward(self, scale: Tensor, zero_point: Tensor, bit_width: Tensor, x: Tensor) -> Tensor:
        dtype = x.dtype
        if dtype == torch.float16 or dtype == torch.bfloat16:
            x = x.float()
        y = (self.to_int(scale, zero_point, bit_width, x) - zero_point) * scale
        return self.delay_wrapper(x, y).to(dtype)

    @brevitas.jit.script_method
    def to_int(self, scale: Tensor, zero_point: Tensor, bit_width: Tensor, x: Tensor) -> Tensor:
        y = self.input_view_impl(x) / scale + zero_point
        y = self.tensor_clamp_impl(y, min_val=self.min_int(bit_width),
                                   max_val=self.max_int(bit_width))
        return self.float_to_int_impl(y)


class _LSQ(ExtendedInjector):
    """Settings shared by the LSQ quantizers (brevitas injector fragment)."""
    scaling_impl_type = ScalingImplType.PARAMETER  # informative: the step is a parameter
    scaling_impl = LSQStepSize
    int_quant = LSQIntQuant
    tensor_clamp_impl = TensorClamp  # no STE through the clamp: LSQ's end gradients
    restrict_scaling_type = RestrictValueType.FP
    update_state_dict_impl = None
    narrow_range = False
    bit_width = 8
    lsq_min_step = LSQ_MIN_STEP  # floor of the step used in forward (LSQStepSize)


class LSQWeightQuant(_LSQ, _SignedIntQuantFragment, WeightQuantSolver):
    """LSQ weight quantizer (signed, per tensor by default).

    Layer keywords: ``weight_bit_width`` (2..8), ``weight_scaling_per_output_channel``.

    Example:
        >>> QuantConv2d(16, 32, 3, weight_quant=LSQWeightQuant, weight_bit_width=4,
        ...             weight_scaling_per_output_channel=True)
    """
    scaling_per_output_channel = False
    lsq_activation = False


class LSQActQuant(_LSQ, _UnsignedIntQuantFragment, ActQuantSolver):
    """LSQ activation quantizer, unsigned (after a ReLU), one step per tensor.

    Layer keyword: ``bit_width`` (2..8).

    Example:
        >>> QuantReLU(act_quant=LSQActQuant, bit_width=4)
    """
    scaling_per_output_channel = False
    lsq_activation = True


class LSQSignedActQuant(_LSQ, _SignedIntQuantFragment, ActQuantSolver):
    """LSQ activation quantizer, signed (Q_N = 2^(b-1), Q_P = 2^(b-1) - 1), one step per tensor.

    Example:
        >>> QuantIdentity(act_quant=LSQSignedActQuant, bit_width=8)
    """
    scaling_per_output_channel = False
    lsq_activation = True
