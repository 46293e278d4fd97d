"""Whole-network conversion: float -> LSQ-quantized (``prepare``) and back (``to_float``)."""
import copy

from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU
from torch import nn

from .layers import lsq_conv2d, lsq_linear, lsq_relu


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition('.')
    setattr(root.get_submodule(parent_name) if parent_name else root, child, new)


def prepare(network: nn.Module, weight_bits: int = 4, act_bits: int = 4, first_last_bits: int = 8,
            per_channel: bool = True) -> nn.Module:
    """Return an LSQ-quantized copy of ``network`` (Esser et al. 2020 recipe).

    Every ``Conv2d``/``Linear`` gets LSQ weights (``weight_bits``; the first and the last
    of them ``first_last_bits``, as in the paper), every ``nn.ReLU`` becomes an unsigned
    LSQ activation quantizer (``act_bits``). Weight steps are initialised from the
    (pretrained) weights now; activation steps from the first training batch.
    """
    network = copy.deepcopy(network)
    layers = [n for n, m in network.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        raise ValueError('prepare: the network has no Conv2d or Linear layer to quantize.')
    edge = {layers[0], layers[-1]}
    for name, module in list(network.named_modules()):
        if isinstance(module, nn.Conv2d):
            _replace(network, name, lsq_conv2d(module, first_last_bits if name in edge else weight_bits, per_channel))
        elif isinstance(module, nn.Linear):
            _replace(network, name, lsq_linear(module, first_last_bits if name in edge else weight_bits, per_channel))
        elif isinstance(module, nn.ReLU):
            _replace(network, name, lsq_relu(act_bits))
    return network


def to_float(network: nn.Module) -> nn.Module:
    """Return a plain PyTorch copy whose weights are the quantized values (activation
    quantization is dropped; for deployment export to ONNX QCDQ instead)."""
    network = copy.deepcopy(network).eval()
    for name, module in list(network.named_modules()):
        if isinstance(module, QuantConv2d):
            conv = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                             module.padding, module.dilation, module.groups, module.bias is not None)
            _load_quantized(conv, module)
            _replace(network, name, conv)
        elif isinstance(module, QuantLinear):
            linear = nn.Linear(module.in_features, module.out_features, module.bias is not None)
            _load_quantized(linear, module)
            _replace(network, name, linear)
        elif isinstance(module, QuantReLU):
            _replace(network, name, nn.ReLU())
    return network


def _load_quantized(dst: nn.Module, src: nn.Module) -> None:
    dst.weight.data.copy_(src.quant_weight().value.detach())
    if src.bias is not None:
        dst.bias.data.copy_(src.bias.detach())
