#!/usr/bin/env python3
"""Create the project's virtual environment with the pinned stack (idempotent).

Run with any Python >= 3.10 (standard library only)::

    python3 tools/setup_env.py            # creates ./.venv and installs everything
    python3 tools/setup_env.py --force    # re-runs every step even if up to date

The pins live in ``pyproject.toml`` (``[project]`` and ``[tool.leansam.setup]``).
mmcv 2.1.0 has no wheel for torch 2.14, so it is built from its source distribution
with compiled ops (CUDA ops when ``nvcc`` and a GPU are present, CPU ops otherwise) and
cached as a wheel under ``$LEANSAM_CACHE`` (default ``~/.cache/leansam``), keyed by the
torch version, the Python version and the kind of ops, so later set-ups take seconds.
A stamp file in the venv records the hash of the pins: when nothing changed, the
whole set-up is skipped.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get('LEANSAM_VENV', ROOT / '.venv'))
CACHE = Path(os.environ.get('LEANSAM_CACHE', Path.home() / '.cache' / 'leansam'))
STAMP = VENV / '.leansam-setup-stamp'


class StepFailed(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f'[setup] {msg}', flush=True)


def run(cmd: list[str], step: str, hint: str, env: dict | None = None, cwd=None) -> None:
    log('  $ ' + ' '.join(str(c) for c in cmd))
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd)
    if proc.returncode != 0:
        raise StepFailed(f'step "{step}" failed (exit {proc.returncode}). {hint}')


class Steps:
    """Runs named steps, printing what each does and how long it took."""

    def __init__(self):
        self.timings: list[tuple[str, float]] = []

    def __call__(self, name: str, fn) -> None:
        log(f'--- {name}')
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        self.timings.append((name, dt))
        log(f'--- {name}: done in {dt:.1f} s')

    def summary(self) -> None:
        log('timings:')
        for name, dt in self.timings:
            log(f'  {dt:8.1f} s  {name}')
        log(f'  {sum(dt for _, dt in self.timings):8.1f} s  total')


def venv_python() -> Path:
    return VENV / 'bin' / 'python'


def pip(*args: str, step: str, hint: str, env: dict | None = None) -> None:
    run([venv_python(), '-m', 'pip', 'install', '--disable-pip-version-check',
         '--progress-bar', 'off', *args], step, hint, env=env)


def read_pins() -> dict:
    with open(ROOT / 'pyproject.toml', 'rb') as f:
        data = tomllib.load(f)
    return dict(
        project=data['project']['dependencies'],
        test=data['project']['optional-dependencies']['test'],
        **data['tool']['leansam']['setup'])


def pins_hash(pins: dict) -> str:
    text = repr(sorted(pins.items())) + Path(__file__).read_text()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def venv_query(code: str) -> str:
    out = subprocess.run([venv_python(), '-c', code], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ''


def cuda_build_wanted() -> bool:
    """CUDA ops only when a compiler and a GPU are both present (FORCE_CUDA overrides)."""
    if os.environ.get('FORCE_CUDA') in ('0', '1'):
        return os.environ['FORCE_CUDA'] == '1'
    has_gpu = venv_query('import torch; print(torch.cuda.is_available())') == 'True'
    return bool(shutil.which('nvcc')) and has_gpu


def mmcv_wheel_dir(mmcv_pin: str, with_cuda: bool) -> Path:
    torch_version = venv_query('import torch; print(torch.__version__)').replace('+', '_')
    py = venv_query('import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
    ops = 'cuda' if with_cuda else 'cpu'
    name = mmcv_pin.replace('==', '-')
    return CACHE / 'wheels' / f'{name}-torch{torch_version}-{py}-{ops}-ops'


def build_mmcv(mmcv_pin: str, out_dir: Path, with_cuda: bool) -> None:
    """Build mmcv's sdist with compiled ops into a wheel in ``out_dir``."""
    hint = ('mmcv needs gcc/g++ and the Python headers; the torch headers need C++20. '
            'Re-run with --force after fixing, or set MAX_JOBS=1 if the compiler ran out of memory.')
    with tempfile.TemporaryDirectory(prefix='leansam-mmcv-') as tmp:
        run([venv_python(), '-m', 'pip', 'download', '--disable-pip-version-check', '--no-deps',
             '--no-binary', ':all:', '-d', tmp, mmcv_pin], 'download mmcv source',
            'Is the package registry reachable?')
        sdist = glob.glob(os.path.join(tmp, 'mmcv-*.tar.gz'))[0]
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter='data')
        src = Path(sdist[:-len('.tar.gz')])
        setup_py = src / 'setup.py'
        # torch >= 2.6 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17.
        setup_py.write_text(setup_py.read_text().replace('-std=c++17', '-std=c++20'))
        env = dict(os.environ, MMCV_WITH_OPS='1', FORCE_CUDA='1' if with_cuda else '0',
                   MAX_JOBS=os.environ.get('MAX_JOBS', str(os.cpu_count() or 2)))
        log(f'  building mmcv with {"CUDA" if with_cuda else "CPU"} ops, MAX_JOBS={env["MAX_JOBS"]} '
            '(about 9 minutes on 2 cores, once per machine)')
        tmp_out = Path(tmp) / 'wheel'
        run([venv_python(), '-m', 'pip', 'wheel', '--disable-pip-version-check', '--no-deps',
             '--no-build-isolation', '-w', tmp_out, src], 'build mmcv', hint, env=env)
        out_dir.mkdir(parents=True, exist_ok=True)
        for whl in tmp_out.glob('*.whl'):
            shutil.move(str(whl), out_dir / whl.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--force', action='store_true', help='re-run every step')
    args = parser.parse_args()

    pins = read_pins()
    digest = pins_hash(pins)
    if not args.force and STAMP.exists() and STAMP.read_text().strip() == digest:
        log(f'environment {VENV} is up to date (stamp {digest})')
        return 0

    steps = Steps()
    hint_net = 'Is the package registry reachable? Re-run `make setup` to retry.'

    def make_venv():
        if not venv_python().exists():
            run([sys.executable, '-m', 'venv', VENV], 'create venv',
                'Needs Python >= 3.10 with the venv module (Debian: apt-get install python3-venv).')
        pip(*pins['build'], step='build tools', hint=hint_net)

    steps('virtual environment + build tools', make_venv)
    steps('torch, torchvision, mmengine and the pure-Python stack',
          lambda: pip(*pins['project'], *pins['test'], step='python stack', hint=hint_net))

    def mmcv():
        with_cuda = cuda_build_wanted()
        wheel_dir = mmcv_wheel_dir(pins['mmcv'], with_cuda)
        wheels = sorted(wheel_dir.glob('mmcv-*.whl'))
        if wheels:
            log(f'  using cached wheel {wheels[-1]}')
        else:
            build_mmcv(pins['mmcv'], wheel_dir, with_cuda)
            wheels = sorted(wheel_dir.glob('mmcv-*.whl'))
        pip('--no-deps', '--force-reinstall', wheels[-1], step='install mmcv',
            hint=f'Delete {wheel_dir} and re-run to rebuild the wheel.')

    steps(f'{pins["mmcv"]} with compiled ops', mmcv)
    steps('mmdet + mmpose without their dependency pins',
          lambda: pip('--no-deps', *pins['no_deps'], step='mmdet/mmpose', hint=hint_net))
    steps('xtcocotools built against numpy 2',
          lambda: pip('--no-build-isolation', '--no-binary', ','.join(
              p.split('==')[0] for p in pins['from_source']), *pins['from_source'],
              step='xtcocotools', hint='Needs cython, numpy and a C compiler in the venv.'))
    steps('leansam itself (editable)',
          lambda: pip('--no-deps', '--no-build-isolation', '-e', ROOT, step='leansam',
                      hint='Check pyproject.toml.'))

    def check():
        run([venv_python(), '-c',
             'import torch, torchvision, mmengine, mmcv, mmcv.ops, mmdet, mmpose.models, brevitas, '
             'xtcocotools.coco, sklearn, onnxruntime, common, qat_sam, pose_sam; '
             'print("torch", torch.__version__, "mmcv", mmcv.__version__, "mmpose", mmpose.__version__, '
             '"cuda", torch.cuda.is_available())'],
            'import check', 'An import failed: the traceback above names the package.')

    steps('import check', check)
    STAMP.write_text(digest + '\n')
    steps.summary()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except StepFailed as exc:
        log(f'ERROR: {exc}')
        sys.exit(1)
