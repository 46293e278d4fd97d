"""Finished runs are reused; independent groups of runs are shared out to worker processes.

A run lives in ``runs/<key>/`` with its ``result.json``; the key hashes everything that
determines the result, so a run whose settings changed is never reused. Worker processes
take whole groups (runs that depend on each other) by creating a claim file atomically.
"""
import os
import os.path as osp
import subprocess
from typing import Dict, Hashable, Iterable, List, Optional, Sequence

import torch

from .records import read_json


def cached_result(spec: dict, run_dir: str, needs: Optional[str] = None) -> Optional[dict]:
    """The finished result in ``run_dir`` if it was made from ``spec`` (and ``needs`` exists)."""
    path = osp.join(run_dir, 'result.json')
    if not osp.isfile(path):
        return None
    result = read_json(path)
    if result.get('spec') != spec:
        return None
    if needs is not None and not osp.isfile(needs):
        return None  # e.g. the checkpoint a later run starts from
    return result


def groups_by(runs: Sequence, key) -> List[list]:
    """``runs`` split by ``key(run)``, keeping their order within a group; largest group first."""
    groups: Dict[Hashable, list] = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    return sorted(groups.values(), key=len, reverse=True)


def claim(claims_dir: str, name: str) -> bool:
    """Create ``claims_dir/name`` atomically: True for the one process that made it."""
    try:
        os.close(os.open(osp.join(claims_dir, name), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def run_workers(commands: Iterable[List[str]], cwd: str, log_dir: str) -> None:
    """Run the commands side by side, each logging to ``log_dir/worker<i>.log``.

    With CUDA devices, worker ``i`` sees only device ``i mod count`` (one GPU per worker).

    Raises:
        RuntimeError: a worker exited with an error (naming its log).
    """
    gpus = torch.cuda.device_count()
    workers = []
    for i, command in enumerate(commands):
        env = dict(os.environ, **({'CUDA_VISIBLE_DEVICES': str(i % gpus)} if gpus else {}))
        log = open(osp.join(log_dir, f'worker{i}.log'), 'w')
        workers.append((subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    failed = []
    for i, (process, log) in enumerate(workers):
        if process.wait() != 0:
            failed.append(osp.join(log_dir, f'worker{i}.log'))
        log.close()
    if failed:
        raise RuntimeError(f'{len(failed)} worker(s) failed; see {", ".join(failed)}')
