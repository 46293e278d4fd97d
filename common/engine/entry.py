"""What ``tools/train.py`` and ``tools/test.py`` share: registrations, launcher, shutdown,
config edits."""
from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import os.path as osp
from collections.abc import Iterator

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log

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


@contextlib.contextmanager
def distributed_session() -> Iterator[None]:
    """Wrap an entry point's work (``setup_launcher`` included): shut torch.distributed down
    at the end, so that every rank of a finished ``torchrun`` job exits 0.

    Why: left to interpreter exit, the gloo group is still alive (held by
    ``torch.distributed``'s registries and by the DDP wrapper in the Runner) with its
    worker threads running while Python finalizes. A worker thread drops its last
    reference to a finished collective (and to tensors owned by Python objects) a little
    after the main thread has been woken by it; when the main thread is already
    finalizing (a busy machine deschedules the worker), that thread's GIL acquire unwinds
    it through a ``noexcept`` frame and the rank aborts with "terminate called without an
    active exception" (SIGABRT): torchrun reports a finished job as failed. Here the group
    is destroyed and freed while the interpreter is fully alive; its destructor waits for
    the queued work and joins the worker threads. ``destroy_process_group()`` alone is not
    enough: gloo's ``shutdown()`` does nothing and the Runner's DDP keeps the group alive.

    Keep no reference to the Runner past the block (``Runner.from_cfg(cfg).train()``):
    it is freed here by ``gc`` (it lives in reference cycles), and DDP's hold with it.
    """
    try:
        yield
    except BaseException:
        shutdown_distributed(success=False)
        raise
    shutdown_distributed(success=True)


def shutdown_distributed(success: bool = True) -> None:
    """Destroy the default process group (if any) and free it while Python is alive.

    ``success``: every rank finished its work, so a barrier first lets no rank tear its
    connections down while another still finishes a collective. After an error there
    is no barrier (the other ranks may be anywhere), and only a gloo group is destroyed
    (gloo has nothing to shut down collectively; destroying an NCCL group while peers
    sit in a collective can block, and torchrun stops the other ranks anyway).
    """
    if dist.is_available() and dist.is_initialized():
        if success:
            dist.barrier()
        if success or dist.get_backend() == 'gloo':
            dist.destroy_process_group()
    # Free the Runner (reference cycles) and with it DDP's hold on the group: the group's
    # destructor joins its worker threads now, not during interpreter finalization.
    gc.collect()


def apply_common_args(cfg: Config, args) -> None:
    """``--cfg-options`` and ``--work-dir`` (default ``./work_dirs/<config name>``)."""
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])


def enable_amp(cfg: Config) -> None:
    """``--amp``: fp16 with loss scaling (SAMOptimWrapper keeps a configured bf16)."""
    wrapper = cfg.optim_wrapper
    if wrapper.get('type') == 'SAMOptimWrapper':
        if wrapper.get('dtype') is None:
            wrapper.dtype = 'float16'
            if not torch.cuda.is_available():
                print_log('--amp on a machine without CUDA: fp16 autocast runs on the CPU, several times '
                          "slower than fp32; optim_wrapper.dtype='bfloat16' is the CPU's mixed precision.",
                          logger='current', level=logging.WARNING)
    elif wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        raise ValueError(f'--amp is not supported with optim_wrapper type {wrapper.type}.')
