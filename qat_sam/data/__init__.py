"""Classification data: the embedded digits, CIFAR and ImageFolder trees, with stable sample ids.

Imported lazily (PEP 562), so that the pure-PyTorch parts (:mod:`.image_folder_arrays`,
:mod:`.device_batches`, :mod:`.sample`) work without MMEngine; :mod:`qat_sam.registration`
imports the MMEngine data sets, which registers them.
"""
import importlib

_EXPORTS = {'DigitsDataset': '.digits', 'CIFARDataset': '.folders', 'ImageFolderDataset': '.folders',
            'pack_sample': '.sample', 'symmetric_noise': '.sample',
            'read_image_folder': '.image_folder_arrays', 'ImageArrays': '.image_folder_arrays',
            'DeviceBatches': '.device_batches'}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
