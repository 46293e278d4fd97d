#!/usr/bin/env python3
"""The evidence in one command: accuracy against cost, then speed side by side.

    python tools/benchmark.py                         # CIFAR-10 and digits grids + speed (CPU, and CUDA if present)
    python tools/benchmark.py --quick                 # every stage in miniature, a few minutes
    python tools/benchmark.py --stages speed          # only the speed tables
    python tools/benchmark.py --stages accuracy speed pose --publish docs/benchmarks
    python tools/benchmark.py --stages --publish docs/benchmarks   # re-tabulate and publish only

Stages, in this order, each a script of its own that can also be run alone:

* ``cifar`` (about 75 min on 2 CPU cores, two worker processes): ``tools/benchmark_accuracy.py
  --dataset cifar10 --jobs 2``, the headline evidence: every optimizer and control on real
  CIFAR-10 at CPU scale (ResNet-8, 2,000 images), clean and 40% label noise, float and
  W4A4 QAT, 3 seeds. Needs the data in ``data/cifar`` (``tools/prepare_cifar.py``).
* ``accuracy`` (about 1 h on 2 CPU cores): ``tools/benchmark_accuracy.py``, every
  optimizer and control on the embedded digits at 0/20/40% label noise, float and W4A4
  QAT, 3 seeds, at equal epochs; sample-passes and wall time per run. A re-run reuses
  the finished runs.
* ``speed`` (about 40 min on 2 CPU cores): ``tools/benchmark_optimizers.py`` on the CIFAR
  ResNet-18, batch 128, float and W4A4 LSQ, on the CPU and on CUDA when a GPU is present.
  vSAM at a fixed share and RandomScheduleSAM run at the SAM share vSAM reached in the
  accuracy stage (mean over its runs), so the speed table prices the schedule that was
  actually trained.
* ``pose`` (opt-in, about 15 min on 2 CPU cores): ``tools/benchmark_pose.py``, the pose
  demo with Adam, SAM, AUSAM and vSAM.

Everything goes under ``--out-dir`` (default ``work_dirs/benchmark``): one folder per stage
and ``summary.md`` with every table, the commands that made them and the machine.
``--publish DIR`` copies the small result files (markdown, JSON, PNG) to DIR.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)  # the repository root, for `common`
from common.benchmark.environment import machine  # noqa: E402

STAGES = ('cifar', 'accuracy', 'speed', 'pose')
PRECISIONS = {'float': [], 'w4a4': ['--lsq-bits', '4']}
#: vSAM's SAM share when no accuracy results exist (the share it reached on the digits grid).
DEFAULT_SAM_SHARE = 0.12
QUICK = dict(cifar=['--noise', '0.4', '--seeds', '0', '--precision', 'float', '--optimizers', 'SGD', 'SAM', 'AUSAM',
                    '--epochs-float', '2'],  # AUSAM draws subsets from epoch 1 on
             accuracy=['--noise', '0.4', '--seeds', '0', '--precision', 'float', 'w4a4',
                       '--epochs-float', '2', '--epochs-qat', '1'],
             speed=['--warmup', '1', '--iters', '1', '--repeats', '2', '--batch-size', '4',
                    '--optimizers', 'SGD', 'SAM', 'AUSAM', 'VSAM-fixed'],
             pose=['--variants', 'adam', 'ausam', '--epochs', '1'])


def run(script: str, args: list) -> str:
    """Run ``tools/<script>`` with ``args`` in a fresh interpreter; return its command line."""
    args = [osp.relpath(a, ROOT) if isinstance(a, str) and osp.isabs(a) else str(a) for a in args]
    command = [sys.executable, osp.join('tools', script)] + args
    subprocess.run(command, cwd=ROOT, check=True)
    return ' '.join(['python'] + command[1:])


def vsam_share(*accuracy_jsons: str) -> float:
    """Mean SAM share of vSAM's runs in the first accuracy results that have them (CIFAR-10
    before the digits), or the default without any."""
    for path in accuracy_jsons:
        if osp.exists(path):
            with open(path) as f:
                shares = [row['sam_share'] for row in json.load(f)['summary'] if row['optimizer'] == 'VSAM']
            if shares:
                return round(sum(shares) / len(shares), 3)
    return DEFAULT_SAM_SHARE


def speed_devices() -> list:
    return ['cpu', 'cuda'] if torch.cuda.is_available() else ['cpu']


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def write_summary(out_dir: str, commands: dict, share: float) -> str:
    """``summary.md``: each stage's table under the command that produced it (``commands``, by file)."""
    date = datetime.datetime.now().astimezone().isoformat(timespec='minutes')
    parts = [f'# leansam benchmark\n\nMachine: {machine()}. Date: {date}.']
    speed = [(d, p) for d in speed_devices() for p in PRECISIONS
             if osp.exists(osp.join(out_dir, 'speed', f'{d}_{p}.md'))]
    if speed:
        parts.append(f'## Speed\n\nvSAM (fixed share) and RandomScheduleSAM at SAM share {share:g}, '
                     "vSAM's share in the accuracy stage.")
    for device, precision in speed:
        stem = f'speed/{device}_{precision}'
        cmd = commands.get(stem, '(command not recorded)')
        parts.append(f'### {device.upper()}, {precision}\n\n`{cmd}`\n\n![speed]({stem}.png)\n\n'
                     + read(osp.join(out_dir, stem + '.md')))
    for key, folder, title in (('cifar', 'accuracy_cifar10', 'Accuracy against cost: CIFAR-10'),
                               ('accuracy', 'accuracy', 'Accuracy against cost: digits')):
        if osp.exists(osp.join(out_dir, folder, 'results.md')):
            cmd = commands.get(key, '(command not recorded)')
            figures = [f'![{name}]({folder}/{name}.png)' for name in ('accuracy_vs_cost', 'ausam_behaviour',
                                                                       'vsam_behaviour')
                       if osp.exists(osp.join(out_dir, folder, f'{name}.png'))]
            parts.append(f'## {title}\n\n`{cmd}`\n\n' + '\n'.join(figures) + '\n\n'
                         + read(osp.join(out_dir, folder, 'results.md')))
    if osp.exists(osp.join(out_dir, 'pose', 'results.md')):
        cmd = commands.get('pose', '(command not recorded)')
        parts.append(f'## Pose\n\n`{cmd}`\n\n' + read(osp.join(out_dir, 'pose', 'results.md')))
    path = osp.join(out_dir, 'summary.md')
    with open(path, 'w') as f:
        f.write('\n\n'.join(parts) + '\n')
    return path


def publish(out_dir: str, dest: str) -> None:
    """Copy summary.md and every stage's markdown, JSON and PNG results (not the runs) to ``dest``."""
    speed = osp.join(out_dir, 'speed')
    files = ['summary.md'] + [osp.join('speed', n) for n in (sorted(os.listdir(speed)) if osp.isdir(speed) else [])]
    for stage in ('accuracy_cifar10', 'accuracy', 'pose'):
        files += [osp.join(stage, n) for n in ('results.md', 'results.json', 'accuracy_vs_cost.png',
                                               'ausam_behaviour.png', 'vsam_behaviour.png')]
    for name in files:
        if osp.isfile(osp.join(out_dir, name)):
            os.makedirs(osp.dirname(osp.join(dest, name)) or dest, exist_ok=True)
            shutil.copy2(osp.join(out_dir, name), osp.join(dest, name))
    print(f'published to {dest}')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--stages', nargs='*', choices=STAGES, default=['cifar', 'accuracy', 'speed'],
                   help='none: only rewrite summary.md (and publish) from earlier results')
    p.add_argument('--out-dir', help='default work_dirs/benchmark (work_dirs/benchmark_quick with --quick)')
    p.add_argument('--quick', action='store_true', help='every stage in miniature (a smoke run)')
    p.add_argument('--publish', metavar='DIR', help='copy the result files (not the runs) here')
    args = p.parse_args(argv)
    args.out_dir = osp.abspath(args.out_dir or osp.join(ROOT, 'work_dirs', 'benchmark_quick' if args.quick
                                                         else 'benchmark'))
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    out = args.out_dir
    os.makedirs(out, exist_ok=True)
    commands_file = osp.join(out, 'commands.json')  # what made each result, kept across partial re-runs
    commands = {}
    if osp.exists(commands_file):
        with open(commands_file) as f:
            commands = json.load(f)

    def stage(key: str, script: str, script_args: list) -> None:
        commands[key] = run(script, script_args + (QUICK[key.split('/')[0]] if args.quick else []))
        with open(commands_file, 'w') as f:
            json.dump(commands, f, indent=1)

    if 'cifar' in args.stages and not osp.exists(osp.join(ROOT, 'data', 'cifar')):
        print('skipping the CIFAR-10 stage: no data in data/cifar (python tools/prepare_cifar.py --source '
              '<cifar10 tarball or folder> --out data/cifar prepares it)', file=sys.stderr)
    elif 'cifar' in args.stages:
        stage('cifar', 'benchmark_accuracy.py', ['--dataset', 'cifar10', '--jobs', '2',
                                                 '--out-dir', osp.join(out, 'accuracy_cifar10')])
    if 'accuracy' in args.stages:
        stage('accuracy', 'benchmark_accuracy.py', ['--out-dir', osp.join(out, 'accuracy')])
    share = vsam_share(osp.join(out, 'accuracy_cifar10', 'results.json'), osp.join(out, 'accuracy', 'results.json'))
    if 'speed' in args.stages:
        os.makedirs(osp.join(out, 'speed'), exist_ok=True)
        for device in speed_devices():
            for precision, bits in PRECISIONS.items():
                stem = f'speed/{device}_{precision}'
                path = osp.join(out, stem)
                outputs = ['--json', path + '.json', '--markdown', path + '.md', '--plot', path + '.png']
                stage(stem, 'benchmark_optimizers.py', ['--device', device, *bits, '--sam-share', share] + outputs)
    if 'pose' in args.stages:
        stage('pose', 'benchmark_pose.py', ['--out-dir', osp.join(out, 'pose')])
    print('\nsummary:', write_summary(out, commands, share))
    if args.publish:
        publish(out, osp.abspath(args.publish))


if __name__ == '__main__':
    main()
