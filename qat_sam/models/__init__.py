"""Networks and the MMEngine classification model."""
from .classifier import ImageClassifier, load_float_weights
from .resnet_cifar import CifarResNet, SmallCNN, TorchvisionResNet

__all__ = ['ImageClassifier', 'CifarResNet', 'SmallCNN', 'TorchvisionResNet', 'load_float_weights']
