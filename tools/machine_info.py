"""What machine a benchmark ran on, for its reports (no heavy imports)."""
import os
import platform


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
