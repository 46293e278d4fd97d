"""Classification data: the embedded digits, CIFAR and ImageFolder trees, with stable sample ids."""
from .digits import DigitsDataset
from .folders import CIFARDataset, ImageFolderDataset
from .sample import pack_sample, symmetric_noise

__all__ = ['DigitsDataset', 'CIFARDataset', 'ImageFolderDataset', 'pack_sample', 'symmetric_noise']
