"""Dense sample ids for MMPose top-down data: annotation id -> index in the training set.

MMPose's ``PackPoseInputs`` drops MMEngine's ``sample_idx`` but keeps the annotation id
``'id'`` and ``'dataset_name'`` in each data sample's metainfo. :class:`AnnotationIdTable`
reads the training set's data lists once and maps ``(dataset_name, id)`` to a dense index
in ``[0, len(train_dataset))``, the size of AUSAM's table. No mmpose import.

Data set wrappers: ``ConcatDataset`` and MMPose's ``CombinedDataset`` (anything with
``datasets``) place their children one after the other; ``RepeatDataset`` and
``ClassBalancedDataset`` (anything with ``dataset``) map every repeat of a sample to
the same index, so the repeats share one ADLP entry.
"""
from __future__ import annotations

import numbers
from typing import Any, Dict, Hashable, Iterator, List, Optional, Tuple

import torch
from mmengine.dataset import BaseDataset
from torch import Tensor

Key = Tuple[Optional[str], Hashable]


class AnnotationIdTable:
    """``(dataset_name, annotation id)`` of every training sample -> dense index.

    Args:
        dataset: The training set (lazily initialised data sets are fully initialised).

    Raises:
        ValueError: If an annotation id is missing, not a single id (bottom-up data),
            repeated within one data set, or if the indices would not fit in
            ``len(dataset)``.
        TypeError: For a data set type whose samples cannot be listed.
    """

    def __init__(self, dataset):
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        self.size = len(dataset)
        self.index: Dict[Key, int] = {}
        end = 0
        for leaf, offset in _leaves(dataset, 0):
            name = leaf.metainfo.get('dataset_name')
            seen = set()
            for i, info in enumerate(_data_infos(leaf)):
                key = (name, _normalise(info.get('id'), leaf, i))
                if key in seen:
                    raise ValueError(f'annotation id {key[1]!r} occurs twice in {type(leaf).__name__} '
                                     f'{name!r}: AUSAM needs a unique id per training sample.')
                seen.add(key)
                self.index.setdefault(key, offset + i)  # a data set concatenated twice: first copy
            end = max(end, offset + len(leaf))
        if end > self.size:
            raise ValueError(f'the training set lists {end} samples in its parts but has length '
                             f'{self.size} (e.g. CombinedDataset with sample_ratio_factor): dense ids '
                             'would not fit in AUSAM\'s table. Train with SAM or VSAM, or without '
                             'resampling.')
        self.names = {name for name, _ in self.index}

    def __len__(self) -> int:
        return len(self.index)

    def dense_ids(self, data_samples: List[Any]) -> Tensor:
        """Dense ids of a batch's data samples (``metainfo['id']``), a CPU LongTensor."""
        ids = []
        for sample in data_samples:
            meta = sample.metainfo
            if meta.get('id') is None:
                raise KeyError("AUSAM needs each data sample's annotation id, but metainfo has no 'id': "
                               "keep 'id' (and 'dataset_name') in PackPoseInputs' meta_keys, as "
                               "MMPose's default does.")
            name = meta.get('dataset_name')
            if name is None and len(self.names) == 1:
                name = next(iter(self.names))
            key = (name, _normalise(meta['id']))
            if key not in self.index:
                raise KeyError(f'annotation id {key[1]!r} of data set {name!r} is not in the training '
                               'set: AUSAM ids are looked up in the training data set the Runner built.')
            ids.append(self.index[key])
        return torch.as_tensor(ids, dtype=torch.long)


def _leaves(dataset, offset: int) -> Iterator[Tuple[BaseDataset, int]]:
    """The data sets holding samples, with the global index of their first sample."""
    if hasattr(dataset, 'datasets'):  # ConcatDataset, CombinedDataset
        for child in dataset.datasets:
            yield from _leaves(child, offset)
            offset += len(child)
    elif hasattr(dataset, 'dataset'):  # RepeatDataset, ClassBalancedDataset
        yield from _leaves(dataset.dataset, offset)
    elif isinstance(dataset, BaseDataset):
        yield dataset, offset
    else:
        raise TypeError(f'AUSAM with MMPose: cannot list the samples of a {type(dataset).__name__}; '
                        "use an MMEngine BaseDataset (or ConcatDataset/RepeatDataset/CombinedDataset of "
                        'them), or register a SAM model adapter (common.engine.model_adapters).')


def _data_infos(leaf: BaseDataset) -> Iterator[dict]:
    if leaf.serialize_data:  # data_list was pickled into one buffer: read it back per item
        return (BaseDataset.get_data_info(leaf, i) for i in range(len(leaf)))
    return iter(leaf.data_list)


def _normalise(value, leaf=None, position: Optional[int] = None) -> Hashable:
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        return int(value)
    if isinstance(value, str):
        return value
    where = f' (sample {position} of {type(leaf).__name__})' if leaf is not None else ''
    raise ValueError(f"AUSAM with MMPose needs one annotation id per sample, got 'id'={value!r}{where}. "
                     'Top-down data sets give one; for bottom-up data (several instances per image) '
                     'train with SAM or VSAM.')
