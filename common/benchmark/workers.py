"""Worker processes side by side, sharing out groups of runs through atomic claim files."""
import os
import os.path as osp
import subprocess
from typing import Iterable, List

import torch


def claim(claims_dir: str, name: str) -> bool:
    """Create ``claims_dir/name`` atomically: True for the one process that made it."""
    try:
        os.close(os.open(osp.join(claims_dir, name), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def visible_gpus() -> List[str]:
    """The CUDA devices this process may use, named as ``CUDA_VISIBLE_DEVICES`` names them."""
    mask = os.environ.get('CUDA_VISIBLE_DEVICES')
    if mask is not None:
        return [d.strip() for d in mask.split(',') if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def run_workers(commands: Iterable[List[str]], cwd: str, log_dir: str) -> None:
    """Run the commands side by side, each logging to ``log_dir/worker<i>.log``.

    With CUDA devices, worker ``i`` sees only the ``i mod count``-th visible device (one GPU
    per worker, within any ``CUDA_VISIBLE_DEVICES`` the caller set). If this process stops
    early (an error, Ctrl-C), the workers are terminated with it.

    Raises:
        RuntimeError: a worker exited with an error (naming its log).
    """
    gpus = visible_gpus()
    workers = []
    try:
        for i, command in enumerate(commands):
            env = dict(os.environ, **({'CUDA_VISIBLE_DEVICES': gpus[i % len(gpus)]} if gpus else {}))
            log = open(osp.join(log_dir, f'worker{i}.log'), 'w')
            process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
            workers.append((process, log))
        failed = [osp.join(log_dir, f'worker{i}.log') for i, (process, _) in enumerate(workers) if process.wait()]
    finally:
        for process, log in workers:
            if process.poll() is None:
                process.terminate()
                process.wait()
            log.close()
    if failed:
        raise RuntimeError(f'{len(failed)} worker(s) failed; see {", ".join(failed)}')
