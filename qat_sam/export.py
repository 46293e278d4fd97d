"""ONNX export of a trained classifier and its accuracy in onnxruntime.

LSQ-quantized networks export as QCDQ (QuantizeLinear → Clip → DequantizeLinear around
every quantized weight and activation, through brevitas's ``export_onnx_qcdq``), which
onnxruntime and TensorRT run; float networks export as plain ONNX. The exported graph
takes images as the data set yields them (C×H×W floats) and applies the data
preprocessor's normalisation itself, so a deployment feeds raw images.
"""
from __future__ import annotations

from typing import Iterable, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from .quant import lsq_quantizers


class NormalizedNetwork(nn.Module):
    """``network((images - mean) / std)``: the model as deployed."""

    def __init__(self, network: nn.Module, mean: Tensor, std: Tensor):
        super().__init__()
        self.network = network
        self.register_buffer('mean', mean.reshape(1, -1, 1, 1).clone())
        self.register_buffer('std', std.reshape(1, -1, 1, 1).clone())

    def forward(self, images: Tensor) -> Tensor:
        return self.network((images - self.mean) / self.std)


def deployable(model: nn.Module) -> NormalizedNetwork:
    """The ``ImageClassifier``'s network behind its ``ImgDataPreprocessor``'s normalisation."""
    pre = model.data_preprocessor
    if getattr(pre, '_channel_conversion', False):
        raise ValueError('export: the data preprocessor converts BGR/RGB; export supports '
                         'normalisation only (set bgr_to_rgb=False, or convert in the deployment).')
    channels = next(m for m in model.network.modules() if isinstance(m, nn.Conv2d)).in_channels
    if getattr(pre, '_enable_normalize', False):
        mean, std = pre.mean.flatten().float(), pre.std.flatten().float()
    else:
        mean, std = torch.zeros(channels), torch.ones(channels)
    return NormalizedNetwork(model.network, mean.expand(channels), std.expand(channels)).eval()


def is_quantized(network: nn.Module) -> bool:
    return bool(lsq_quantizers(network))


def export_onnx(network: nn.Module, example: Tensor, path: str) -> str:
    """Write ``network`` (batch dimension dynamic) to ``path``; QCDQ if it is LSQ-quantized.

    Args:
        network: A module in eval mode, e.g. from :func:`deployable`.
        example: One input batch (its shape apart from the batch size is fixed in the graph).
        path: The ``.onnx`` file to write.

    Returns:
        ``'qcdq'`` or ``'float'``: what was written.
    """
    network = network.eval()
    names = dict(input_names=['images'], output_names=['logits'],
                 dynamic_axes={'images': {0: 'batch'}, 'logits': {0: 'batch'}})
    with torch.no_grad():
        if is_quantized(network):
            from brevitas.export import export_onnx_qcdq
            export_onnx_qcdq(network, args=example, export_path=path, dynamo=False,
                             keep_initializers_as_inputs=False, **names)
            return 'qcdq'
        torch.onnx.export(network, (example,), path, dynamo=False, **names)
    return 'float'


def top1_torch_and_onnx(network: nn.Module, path: str,
                        batches: Iterable[Tuple[Tensor, Tensor]]) -> Tuple[float, float, float]:
    """Top-1 accuracy (%) of ``network`` in PyTorch and of the ONNX file in onnxruntime.

    Args:
        network: The exported module.
        path: Its ONNX file.
        batches: ``(images, labels)`` pairs, images as the network takes them.

    Returns:
        ``(torch_top1, onnx_top1, max_abs_logit_difference)``.
    """
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    input_name = session.get_inputs()[0].name
    network = network.eval()
    correct_torch = correct_onnx = total = 0
    max_diff = 0.0
    for images, labels in batches:
        with torch.no_grad():
            logits = network(images).float().numpy()
        (onnx_logits,) = session.run(None, {input_name: images.numpy().astype(np.float32)})
        labels = labels.numpy()
        correct_torch += int((logits.argmax(1) == labels).sum())
        correct_onnx += int((onnx_logits.argmax(1) == labels).sum())
        total += len(labels)
        max_diff = max(max_diff, float(np.abs(onnx_logits - logits).max()))
    if total == 0:
        raise ValueError('top1_torch_and_onnx: no test images.')
    return 100.0 * correct_torch / total, 100.0 * correct_onnx / total, max_diff
