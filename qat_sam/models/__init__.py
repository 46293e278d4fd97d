"""The MMEngine classification model, and the networks registered for configs."""
from mmengine.registry import MODELS

from ..networks import CifarResNet, SmallCNN, TorchvisionResNet
from .classifier import ImageClassifier, load_float_weights

__all__ = ['ImageClassifier', 'CifarResNet', 'SmallCNN', 'TorchvisionResNet', 'load_float_weights']

for _network in (CifarResNet, SmallCNN, TorchvisionResNet):
    MODELS.register_module(module=_network)
