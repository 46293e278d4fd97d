"""What machine and software a benchmark ran on, for its reports."""
import datetime
import os
import platform
import subprocess
import sys
from typing import Optional

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_name() -> str:
    """``cpu_model()`` with the core count, e.g. ``'AMD EPYC (2 cores)'``."""
    return f'{cpu_model()} ({os.cpu_count()} cores)'


def machine() -> str:
    """One line: CPU and cores, GPU if any, torch and Python versions."""
    gpu = f', {torch.cuda.get_device_name(0)}' if torch.cuda.is_available() else ', no GPU'
    return f'{cpu_name()}{gpu}, torch {torch.__version__}, Python {platform.python_version()}'


def git_commit(root: str) -> Optional[str]:
    """The commit checked out at ``root``, ``None`` outside a git checkout."""
    try:
        done = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() or None


def environment(root: str) -> dict:
    """Versions, machine, date, command line and commit of this invocation (JSON-ready)."""
    try:
        import mmengine
        mmengine_version = mmengine.__version__
    except ImportError:
        mmengine_version = None
    python = osp_rel(sys.executable, root)
    return dict(torch=torch.__version__, cuda=torch.version.cuda, mmengine=mmengine_version,
                python=platform.python_version(), cpu=cpu_model(), cpu_count=os.cpu_count(),
                gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                platform=platform.platform(),
                date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
                command=' '.join([python] + sys.argv), git_commit=git_commit(root))


def osp_rel(path: str, root: str) -> str:
    """``path`` relative to ``root`` when inside it (a venv's python), else as it is."""
    path, root = os.path.abspath(path), os.path.abspath(root)
    return os.path.relpath(path, root) if os.path.commonpath([path, root]) == root else path
