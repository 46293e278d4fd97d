"""What ``tools/train.py`` and ``tools/test.py`` share: registrations, launcher, config edits."""
from __future__ import annotations

import importlib
import os
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.config import Config

#: Packages whose import registers models, datasets, metrics and hooks.
PROJECT_MODULES = ('common.engine', 'qat_sam.registration', 'pose_sam.registration')


def import_project_modules() -> None:
    """Import every registration module of the project that exists."""
    for name in PROJECT_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Set ``cfg.launcher``; on machines without CUDA start torch.distributed with gloo.

    MMEngine 0.10.7's pytorch launcher calls ``torch.cuda.set_device`` and wraps the
    model with ``device_ids=[local_rank]``, both of which fail without a GPU. Under
    ``torchrun`` on a CPU machine the gloo group is initialised here (the Runner then
    skips its own initialisation) and DDP is built with ``device_ids=None``.
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(f'launcher {launcher!r} without CUDA: only "pytorch" (torchrun) is supported on CPU.')
    if not dist.is_initialized():
        dist.init_process_group('gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    os.environ.setdefault('LOCAL_RANK', str(dist.get_rank()))


def apply_common_args(cfg: Config, args) -> None:
    """``--cfg-options`` and ``--work-dir`` (default ``./work_dirs/<config name>``)."""
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])


def uses_sam(cfg: Config) -> bool:
    return cfg.get('optim_wrapper', {}).get('type') == 'SAMOptimWrapper'


def ensure_sam_hook(cfg: Config) -> None:
    """Add ``SAMHook`` to ``custom_hooks`` when the config trains with SAMOptimWrapper."""
    if not uses_sam(cfg):
        return
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') == 'SAMHook' for h in hooks):
        hooks.append(dict(type='SAMHook'))
    cfg.custom_hooks = hooks


def enable_amp(cfg: Config) -> None:
    """``--amp``: fp16 with loss scaling (SAMOptimWrapper keeps a configured bf16)."""
    wrapper = cfg.optim_wrapper
    if wrapper.get('type') == 'SAMOptimWrapper':
        if wrapper.get('dtype') is None:
            wrapper.dtype = 'float16'
    elif wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        raise ValueError(f'--amp is not supported with optim_wrapper type {wrapper.type}.')
