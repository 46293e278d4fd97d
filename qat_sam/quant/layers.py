"""LSQ layers (Esser et al., ICLR 2020): brevitas layers built from float ones, and model helpers.

The factories return stock brevitas layers whose quantizers are LSQ
(:mod:`qat_sam.quant.lsq`): ``lsq_conv2d`` / ``lsq_linear`` copy a float layer's weights and
initialise the weight steps from them; ``lsq_relu`` / ``lsq_identity`` build activation
quantizers whose step is initialised from the first training batch (or from one calibration
batch with :func:`calibrate_lsq`).

Example:
    >>> model = nn.Sequential(lsq_conv2d(conv, bit_width=4), lsq_relu(4),
    ...                       nn.Flatten(), lsq_linear(fc, bit_width=8))
    >>> calibrate_lsq(model, images)              # optional: steps of the activations
    >>> optimizer = SGD(model.parameters(), lr=0.01)   # the steps are parameters already
    >>> for name, q in lsq_quantizers(model).items():
    ...     print(name, q.step.shape, q.q_n, q.q_p)
"""
from __future__ import annotations

from typing import Dict

import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.proxy.quant_proxy import QuantProxyFromInjector
from torch import Tensor, nn

from .lsq import LSQActQuant, LSQSignedActQuant, LSQStepSize, LSQWeightQuant

__all__ = ['lsq_conv2d', 'lsq_linear', 'lsq_relu', 'lsq_identity', 'lsq_quantizers',
           'calibrate_lsq', 'set_lsq_enabled']


def _copy_weights(dst: nn.Module, src: nn.Module) -> None:
    with torch.no_grad():
        dst.weight.copy_(src.weight)
        if src.bias is not None:
            dst.bias.copy_(src.bias)
    dst.weight_quant.tensor_quant.scaling_impl.init_from_weight()  # step from these weights


def lsq_conv2d(conv: nn.Conv2d, bit_width: int = 4, per_channel: bool = True) -> QuantConv2d:
    """Return a brevitas ``QuantConv2d`` with LSQ weights, a copy of ``conv``.

    Args:
        conv: The float convolution (its weights are copied, not shared).
        bit_width: Weight bits, 2..8.
        per_channel: One step per output channel (else one per tensor).

    Returns:
        The quantized layer; its weight step is initialised from the copied weights.
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f'lsq_conv2d expects an nn.Conv2d, got {type(conv).__name__}')
    q = QuantConv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
        padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
        padding_mode=conv.padding_mode, bias=conv.bias is not None,
        device=conv.weight.device, dtype=conv.weight.dtype,
        weight_quant=LSQWeightQuant, weight_bit_width=bit_width,
        weight_scaling_per_output_channel=per_channel)
    _copy_weights(q, conv)
    return q


def lsq_linear(linear: nn.Linear, bit_width: int = 8, per_channel: bool = True) -> QuantLinear:
    """Return a brevitas ``QuantLinear`` with LSQ weights, a copy of ``linear``.

    Args:
        linear: The float layer (its weights are copied, not shared).
        bit_width: Weight bits, 2..8 (LSQ keeps the last layer at 8).
        per_channel: One step per output feature (else one per tensor).
    """
    if not isinstance(linear, nn.Linear):
        raise TypeError(f'lsq_linear expects an nn.Linear, got {type(linear).__name__}')
    q = QuantLinear(
        linear.in_features, linear.out_features, bias=linear.bias is not None,
        device=linear.weight.device, dtype=linear.weight.dtype,
        weight_quant=LSQWeightQuant, weight_bit_width=bit_width,
        weight_scaling_per_output_channel=per_channel)
    _copy_weights(q, linear)
    return q


def lsq_relu(bit_width: int = 4) -> QuantReLU:
    """Return a brevitas ``QuantReLU``: ReLU, then unsigned LSQ (Q_N = 0, Q_P = 2^b - 1)."""
    return QuantReLU(act_quant=LSQActQuant, bit_width=bit_width)


def lsq_identity(bit_width: int = 8, signed: bool = True) -> QuantIdentity:
    """Return a brevitas ``QuantIdentity`` with an LSQ quantizer (e.g. for a network's input).

    Args:
        bit_width: Bits, 2..8.
        signed: Signed grid, or unsigned for inputs known to be non-negative.
    """
    return QuantIdentity(act_quant=LSQSignedActQuant if signed else LSQActQuant,
                         bit_width=bit_width)


def lsq_quantizers(module: nn.Module) -> Dict[str, LSQStepSize]:
    """Every LSQ step of ``module`` by name: ``q.step`` is the parameter, ``q.q_n``, ``q.q_p``
    the integer range, ``q.initialized`` the flag."""
    return {name: m for name, m in module.named_modules() if isinstance(m, LSQStepSize)}


@torch.no_grad()
def calibrate_lsq(model: nn.Module, *batch: Tensor) -> Dict[str, LSQStepSize]:
    """(Re)initialise every activation step from one batch: ``s = 2 * mean(|x|) / sqrt(Q_P)``.

    The model runs in eval mode (BatchNorm uses its running statistics and moves nothing,
    dropout is off); only the activation steps initialise, and every module gets its mode
    back. Weight steps are left alone (see ``LSQStepSize.init_from_weight``). Under
    ``torch.distributed`` call it on every rank.

    Args:
        model: The quantized model.
        batch: Positional inputs of ``model``.

    Returns:
        The activation steps that were initialised, by name.
    """
    steps = {n: q for n, q in lsq_quantizers(model).items() if q.activation}
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    for q in steps.values():
        q.reset()
        q.train()
    try:
        model(*batch)
    finally:
        for m, training in modes:  # restore each module's own mode (e.g. frozen BatchNorm)
            m.training = training
    missing = [n for n, q in steps.items() if not bool(q.initialized)]
    if missing:
        raise RuntimeError(f'calibrate_lsq: {missing} saw no input (disabled or unused); '
                           'enable them or run them in the forward pass.')
    return steps


def set_lsq_enabled(module: nn.Module, enabled: bool) -> None:
    """Switch LSQ quantization on or off in ``module`` (a model, a layer, or one quantizer).

    Off, a quantizer passes its input through in float (an activation quantizer still applies
    its ReLU); the step keeps its value, and a step not yet initialised initialises from the
    first training batch after quantization is switched back on. This sets brevitas's own
    per-quantizer switch ``proxy.disable_quant``, e.g. ``conv.weight_quant`` or
    ``relu.act_quant``: pass one of those to switch a single quantizer.
    """
    for m in module.modules():
        if isinstance(m, QuantProxyFromInjector) and any(
                isinstance(s, LSQStepSize) for s in m.modules()):
            m.disable_quant = not enabled
