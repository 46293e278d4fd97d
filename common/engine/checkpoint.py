"""Make MMEngine 0.10.7 load its own checkpoints under torch >= 2.6.

torch 2.6 changed ``torch.load``'s default to ``weights_only=True``. MMEngine 0.10.7
calls ``torch.load(filename, map_location=...)`` without the argument, and its
checkpoints hold more than tensors (the message hub's numpy scalars, the config,
optimizer extras such as AUSAM's table), so ``--resume`` and ``load_from`` fail with
"Weights only load failed". :func:`trust_local_checkpoints` replaces MMEngine's loader
for local paths, through MMEngine's own ``CheckpointLoader.register_scheme``, with one
that passes ``weights_only=False``. It runs when ``common.engine`` is imported, which
every entry point and package of this project does, so there is one place for it.

Security: ``weights_only=False`` unpickles arbitrary objects, which can run code. Only
*local files the user points to* (``--resume``, ``load_from``, ``tools/test.py
CHECKPOINT``, ``init_cfg`` paths) go through this loader: they are trusted by the
user's own choice, like any Python file they run. Remote schemes (``http://``,
``torchvision://``, ...) keep MMEngine's loaders and torch's safe default.
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader


def load_from_local(filename: str, map_location=None):
    """Load a trusted local checkpoint with ``weights_only=False`` (see module docstring).

    Named like MMEngine's loader so that its log line still says "local backend".
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def trust_local_checkpoints() -> None:
    """Register :func:`load_from_local` for local paths in MMEngine (idempotent)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
