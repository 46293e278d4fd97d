"""The SAM-family ``train_step`` and the per-sample loss protocol between model and wrapper.

MMEngine's ``BaseModel.train_step`` runs one forward and calls
``optim_wrapper.update_params(loss)``. SAM needs a closure over the batch instead, so
:func:`sam_train_step` preprocesses the batch once (random batch augmentations are not
drawn twice), then hands the wrapper a closure that evaluates the loss on the whole
batch or on the rows AUSAM selected.

Per-sample loss protocol (needed by AUSAM and UniformSubsetSAM only): in
``mode='loss'`` the model returns its usual dict, and every entry whose key contains
``'loss'`` is a tensor of shape ``[batch]`` holding one loss per sample (MMEngine's
``parse_losses`` averages such tensors, so the same model still trains with plain
``OptimWrapper``). The per-sample total is the sum over the entries.

Sample ids (AUSAM): a stable index of each sample in the training set, read from the
preprocessed batch: ``data_samples[i].metainfo[id_key]`` (MMEngine's ``BaseDataset``
puts ``sample_idx`` into each data info; keep it in the packing transform's
``meta_keys``), or ``data[id_key]`` for models whose batches are dicts of tensors. A SAM
model adapter (:mod:`common.engine.model_adapters`) may supply ``sample_ids_fn`` instead.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import torch
from mmengine.model import is_model_wrapper
from torch import Tensor


def select_rows(data: Any, index: Tensor, batch_size: int) -> Any:
    """Rows ``index`` of every tensor and list in ``data`` whose first dimension is the batch."""
    if isinstance(data, Tensor):
        return data[index.to(data.device)] if data.dim() and data.shape[0] == batch_size else data
    if isinstance(data, dict):
        return {k: select_rows(v, index, batch_size) for k, v in data.items()}
    if isinstance(data, (list, tuple)) and len(data) == batch_size:
        rows = index.tolist()
        return type(data)(data[i] for i in rows) if isinstance(data, tuple) else [data[i] for i in rows]
    if isinstance(data, (list, tuple)):
        return type(data)(select_rows(v, index, batch_size) for v in data)
    return data


def batch_size_of(data: Any) -> int:
    """The batch size: length of ``data_samples``, else first dimension of ``inputs``."""
    if isinstance(data, dict):
        if data.get('data_samples') is not None:
            return len(data['data_samples'])
        inputs = data.get('inputs')
        if isinstance(inputs, Tensor):
            return inputs.shape[0]
        if isinstance(inputs, (list, tuple)):
            return len(inputs)
    raise ValueError('cannot tell the batch size: the preprocessed batch has neither data_samples '
                     'nor an inputs tensor/list.')


def sample_ids_of(data: Any, id_key: str) -> Tensor:
    """Stable per-sample ids from the batch (see module docstring)."""
    if isinstance(data, dict) and isinstance(data.get(id_key), Tensor):
        return data[id_key].long().cpu()
    samples = data.get('data_samples') if isinstance(data, dict) else None
    if samples is not None:
        ids = [s.metainfo.get(id_key) if hasattr(s, 'metainfo') else None for s in samples]
        if all(i is not None for i in ids):
            return torch.as_tensor([int(i) for i in ids], dtype=torch.long)
    raise KeyError(
        f"AUSAM needs a stable id per sample but the batch has no '{id_key}': put it into each "
        f"data sample's metainfo (MMEngine's BaseDataset sets data_info['{id_key}']; add "
        f"'{id_key}' to the packing transform's meta_keys), or into the batch dict as a tensor, "
        "or set train_cfg's sample_id_key to the key your data uses. For MMPose models, import "
        "pose_sam.registration (custom_imports): its adapter supplies annotation-id sample ids.")


def per_sample_total(losses: Dict[str, Any], rows: int) -> Tensor:
    """Sum of the per-sample loss entries, shape ``[rows]``; clear error if one is not per sample."""
    total = None
    for key, value in losses.items():
        if 'loss' not in key:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if not isinstance(v, Tensor) or v.shape != (rows,):
                shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                raise ValueError(
                    f"AUSAM needs per-sample losses, but the model's loss '{key}' has shape {shape} "
                    f'instead of [{rows}]. In mode="loss" return one loss per sample (e.g. '
                    "reduction='none' averaged over all but the batch dimension); see "
                    'common/engine/train_step.py for the protocol and pose_sam for MMPose heads.')
            total = v if total is None else total + v
    if total is None:
        raise ValueError(f"the model's loss dict has no entry whose key contains 'loss': {list(losses)}")
    return total


def _detached(losses: Dict[str, Any]) -> Dict[str, Any]:
    out = {}
    for k, v in losses.items():
        if isinstance(v, Tensor):
            out[k] = v.detach()
        elif isinstance(v, (list, tuple)):
            out[k] = [t.detach() if isinstance(t, Tensor) else t for t in v]
        else:
            out[k] = v
    return out


def sam_train_step(model, data, optim_wrapper, id_key: str = 'sample_idx',
                   sample_ids_fn: Optional[Callable[[Any], Tensor]] = None) -> Dict[str, Tensor]:
    """One SAM-family iteration (what the SAM train loops call instead of ``model.train_step``):
    same inputs and log output as MMEngine's ``BaseModel.train_step``.

    ``sample_ids_fn(data)`` (from a SAM model adapter), when given, replaces
    ``sample_ids_of(data, id_key)``: it gets the whole preprocessed batch once per iteration.
    """
    module = model.module if is_model_wrapper(model) else model
    with optim_wrapper.optim_context(model):
        data = module.data_preprocessor(data, True)
    optimizer = optim_wrapper.optimizer
    per_sample = optimizer.uses_sample_ids
    batch_size = batch_size_of(data)
    first: Dict[str, Any] = {}

    def closure(index: Tensor = None):
        batch = data if index is None else select_rows(data, index, batch_size)
        rows = batch_size if index is None else index.numel()
        optim_wrapper.sample_passes += rows
        with optim_wrapper.optim_context(model):
            losses = model._run_forward(batch, mode='loss')
        if not first:
            first.update(_detached(losses))
        if per_sample:
            return per_sample_total(losses, rows)
        return module.parse_losses(losses)[0]

    sample_ids = None
    if per_sample:
        sample_ids = sample_ids_fn(data) if sample_ids_fn is not None else sample_ids_of(data, id_key)
    optim_wrapper.step(closure, model=model, sample_ids=sample_ids)
    return module.parse_losses(first)[1]
