"""``ImageClassifier``: an MMEngine model that reports per-sample losses (for AUSAM)."""
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import MODELS

from common.options import accepted_keywords, check_options, checked_options


@MODELS.register_module()
@checked_options
class ImageClassifier(BaseModel):
    """Image classification with optional LSQ quantization of its network.

    In ``mode='loss'`` it returns ``dict(loss=Tensor[B])``, one (label-smoothed)
    cross-entropy per sample: the per-sample loss protocol of ``SAMOptimWrapper``
    (MMEngine averages it for plain optimizers). In ``mode='predict'`` each data sample
    gets ``pred_score`` and ``pred_label``.

    Args:
        network: Config of the network (e.g. ``dict(type='CifarResNet', depth=20)``).
        label_smoothing: Label smoothing of the cross-entropy.
        float_checkpoint: Float weights loaded by ``init_weights`` (which MMEngine's Runner
            calls before training, not before testing or resuming): a checkpoint saved by
            this class or a plain state dict of the network. Loaded into a quantized
            network, they re-initialise the LSQ weight steps from the float weights (LSQ's
            init); activation steps initialise on the first training batch.
        quantization: ``None`` (float) or ``qat_sam.quant.prepare`` arguments, e.g.
            ``dict(weight_bits=4, act_bits=4, first_last_bits=8)``.
        data_preprocessor: MMEngine data preprocessor config (normalisation).
    """

    def __init__(self, network: dict, label_smoothing: float = 0.0, float_checkpoint: Optional[str] = None,
                 quantization: Optional[dict] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.network = MODELS.build(network)
        self.float_checkpoint = float_checkpoint
        if quantization is not None:
            from qat_sam.quant import prepare
            valid = accepted_keywords(prepare, exclude=('network',))
            if valid is not None:
                check_options(type(self).__name__, quantization, valid, context='quantization=dict(...)')
            self.network = prepare(self.network, **quantization)
        self.label_smoothing = label_smoothing

    def init_weights(self) -> None:
        super().init_weights()
        if self.float_checkpoint is not None:
            load_float_weights(self.network, self.float_checkpoint)

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List] = None, mode: str = 'tensor'):
        logits = self.network(inputs)
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            labels = torch.stack([s.gt_label for s in data_samples]).to(logits.device)
            return dict(loss=F.cross_entropy(logits.float(), labels, reduction='none',
                                             label_smoothing=self.label_smoothing))
        if mode == 'predict':
            scores = logits.float().softmax(dim=1)
            for sample, score in zip(data_samples, scores):
                sample.pred_score = score
                sample.pred_label = score.argmax()
            return data_samples
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}.")


#: Names of brevitas quantizer sub-modules: a float checkpoint has none of their entries.
QUANTIZER_KEYS = ('weight_quant.', 'act_quant.', 'input_quant.', 'output_quant.', 'bias_quant.')


def load_float_weights(network: torch.nn.Module, path: str) -> None:
    """Load float weights from an MMEngine checkpoint of ImageClassifier or a plain state dict.

    ``network`` may be float or LSQ-quantized (``prepare`` keeps the layer names); every
    entry but the quantizers' must match.
    """
    from mmengine.runner.checkpoint import _load_checkpoint
    state = _load_checkpoint(path, map_location='cpu')
    state = state.get('state_dict', state)
    prefix = 'network.'
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    missing, unexpected = network.load_state_dict(state, strict=False)
    missing = [k for k in missing if not any(q in k for q in QUANTIZER_KEYS)]
    if missing or unexpected:
        raise KeyError(f'float checkpoint {path} does not match the network: missing {missing[:5]}, '
                       f'unexpected {unexpected[:5]}.')
