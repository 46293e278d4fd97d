#!/usr/bin/env python3
"""One prepared GPU check: CUDA correctness, no host syncs, speed, a short real CIFAR-10 run.

Claim under test: leansam's SAM family is correct on CUDA and costs what its sample-passes
say. Targets (ratios measured side by side in one run): AUSAM (alpha 0.5) >= 0.97x SGD
images/s; SAM >= 0.49x; vSAM at a fixed SAM share s >= 0.97/(1+s); leansam SAM >= 1.05x
pytorch_optimizer's SAM; the optimizer's own time <= 3% of the step at batch 128 fp32; no
host synchronisation in steady-state steps.

Parts (``--parts``, all by default), each writing into ``--out``:

1. ``correctness``: ``pytest -m cuda tests/common/optim/test_cuda.py`` (float64 reference on
   the device, fp16/bf16, AUSAM state on the device, ``torch.compile``, no host sync under
   ``torch.cuda.set_sync_debug_mode('error')``) -> ``correctness.xml``.
2. ``speed``: ``tools/benchmark_optimizers.py`` on the CIFAR ResNet-18 at batch 128 and 512,
   fp32 and bf16 autocast + channels_last, SGD and the SAM family next to
   ``pytorch_optimizer.SAM``, round-robin, CUDA events -> ``speed_<config>.{json,md,png}``.
3. ``cifar``: ResNet-20 on the real CIFAR-10 training set (decoded once, kept on the GPU,
   augmented there), SGD, SAM, AUSAM and UniformSubsetSAM, one seed, after an untimed
   warm-up (cuDNN autotuning, allocator) so that the first run's wall time is not inflated.

It ends with ``summary.md`` (also printed last) and ``results.json``. On one H200 the whole
check is sized to about 7 minutes. ``--quick`` runs every part in miniature on the CPU (CI
does, so the check cannot rot). How to run it on a lent GPU machine: docs/gpu_check.md.

    python tools/gpu_check.py --out work_dirs/gpu_check --cifar data/cifar10_jpeg.tar.gz
    python tools/gpu_check.py --quick --device cpu --out /tmp/gpu_check --cifar <small folder>
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from common.optim import AUSAM, SAM, UniformSubsetSAM  # noqa: E402
from qat_sam.data.device_batches import DeviceBatches  # noqa: E402
from qat_sam.data.image_folder_arrays import read_image_folder  # noqa: E402
from qat_sam.networks import CifarResNet  # noqa: E402
from qat_sam.plain_training import top1, train_classifier  # noqa: E402

PARTS = ('correctness', 'speed', 'cifar')
SPEED_OPTIMIZERS = ['SGD', 'SAM', 'AUSAM', 'VSAM-fixed', 'LookSAM', 'UniformSubsetSAM',
                    'RandomScheduleSAM', 'pytorch_optimizer.SAM']
CIFAR_OPTIMIZERS = ('SGD', 'SAM', 'AUSAM', 'UniformSubsetSAM')
DEFAULT_CIFAR = (ROOT / 'data' / 'cifar10_jpeg.tar.gz', ROOT.parent / 'shared' / 'data' / 'cifar10_jpeg.tar.gz')


def log(message: str) -> None:
    print(f'[gpu_check {time.strftime("%H:%M:%S")}] {message}', flush=True)


# ------------------------------------------------------------------ 1. correctness
def run_correctness(args) -> dict:
    xml = args.out / 'correctness.xml'
    env = dict(os.environ, LEANSAM_TEST_DEVICE=args.device,
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    command = [sys.executable, '-m', 'pytest', '-m', 'cuda', 'tests/common/optim/test_cuda.py', '-q',
               '-p', 'no:cacheprovider', '-o', 'addopts=-ra', f'--junitxml={xml}']
    log('correctness: ' + ' '.join(command[1:]))
    proc = subprocess.run(command, cwd=ROOT, env=env)
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == 'testsuite' else suite.find('testsuite')
    failed = []
    for case in suite.iter('testcase'):
        problem = case.find('failure') if case.find('failure') is not None else case.find('error')
        if problem is not None:
            failed.append(f'{case.get("name")}: {problem.get("message", "")[:200]}')
    counts = {k: int(suite.get(k, 0)) for k in ('tests', 'failures', 'errors', 'skipped')}
    return dict(returncode=proc.returncode, **counts, passed=counts['tests'] - counts['failures']
                - counts['errors'] - counts['skipped'], failed=failed)


# ------------------------------------------------------------------------ 2. speed
def speed_configs(args):
    if args.quick:
        return [(8, False), (8, True)]
    return [(b, amp) for amp in (False, True) for b in (128, 512)]


def run_speed(args) -> dict:
    results = {}
    for batch, amp in speed_configs(args):
        name = f'b{batch}_{"bf16cl" if amp else "fp32"}'
        stem = args.out / f'speed_{name}'
        command = [sys.executable, str(ROOT / 'tools' / 'benchmark_optimizers.py'), '--device', args.device,
                   '--batch-size', str(batch), '--sam-share', str(args.sam_share),
                   '--optimizers', *SPEED_OPTIMIZERS, '--json', f'{stem}.json', '--markdown', f'{stem}.md',
                   '--plot', f'{stem}.png']
        command += ['--amp', '--channels-last'] if amp else []
        command += (['--depth', '20', '--iters', '1', '--repeats', '2', '--warmup', '1', '--no-cpu-peak']
                    if args.quick
                    else ['--iters', str(args.speed_iters), '--repeats', '5', '--warmup', '10'])
        log(f'speed {name}: ' + ' '.join(command[1:]))
        subprocess.run(command, cwd=ROOT, check=True)
        results[name] = json.loads(Path(f'{stem}.json').read_text())['results']
    return results


def speed_targets(speed: dict, sam_share: float) -> list:
    """The issue's targets against the measured ratios: (target, value, verdict)."""
    rows = []
    for config, r in speed.items():
        def ratio(a, b='SGD'):  # median over rounds of the ratio within a round
            return statistics.median(x / y for x, y in zip(r[a]['images_per_s'], r[b]['images_per_s']))
        checks = [('AUSAM >= 0.97x SGD', ratio('AUSAM'), 0.97),
                  ('SAM >= 0.49x SGD', ratio('SAM'), 0.49),
                  (f'vSAM (share {sam_share:g}) >= {0.97 / (1 + sam_share):.3f}x SGD', ratio('VSAM-fixed'),
                   0.97 / (1 + sam_share)),
                  ('SAM >= 1.05x pytorch_optimizer.SAM', ratio('SAM', 'pytorch_optimizer.SAM'), 1.05)]
        for target, value, bound in checks:
            rows.append(dict(config=config, target=target, value=value, met=value >= bound))
        if config == 'b128_fp32':
            for name in ('SAM', 'AUSAM', 'VSAM-fixed', 'LookSAM', 'UniformSubsetSAM', 'RandomScheduleSAM'):
                value = r[name]['overhead_pct']
                rows.append(dict(config=config, target=f'{name} own time <= 3% of the step',
                                 value=value, met=value <= 3.0, unit='%'))
    return rows


# ------------------------------------------------------------------------ 3. CIFAR
def find_cifar(args) -> Path:
    if args.cifar is not None:
        return args.cifar
    for path in DEFAULT_CIFAR:
        if path.exists():
            return path
    raise SystemExit('no CIFAR-10 data: pass --cifar PATH (the image-folder tarball or folder); '
                     f'looked in {", ".join(map(str, DEFAULT_CIFAR))}. See docs/gpu_check.md.')


def build_cifar_optimizer(name: str, network, num_samples: int, epochs: int):
    base = dict(lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    if name == 'SGD':
        return torch.optim.SGD(network.parameters(), **base)
    subset = dict(num_samples=num_samples, alpha=0.5, ramp_epochs=max(1.0, 0.15 * epochs), seed=0)
    cls, extra = dict(SAM=(SAM, {}), AUSAM=(AUSAM, subset), UniformSubsetSAM=(UniformSubsetSAM, subset))[name]
    return cls(network.parameters(), 'SGD', rho=0.05, **extra, **base)


def warm_up(train_batches, num_classes: int, device, iterations: int = 20) -> None:
    """Untimed SGD and SAM iterations on a throwaway network: one-time costs (cuDNN's kernel
    search, the allocator's first blocks) are paid before any timed run."""
    network = CifarResNet(depth=20, num_classes=num_classes).to(device)
    for optimizer in (torch.optim.SGD(network.parameters(), lr=0.0),
                      SAM(network.parameters(), 'SGD', rho=0.05, lr=0.0)):
        for i, (x, y, ids) in zip(range(iterations), train_batches):
            closure = lambda: torch.nn.functional.cross_entropy(network(x), y)  # noqa: E731
            if isinstance(optimizer, SAM):
                optimizer.step(closure, model=network)
            else:
                optimizer.zero_grad()
                closure().backward()
                optimizer.step()


def run_cifar(args) -> dict:
    source = find_cifar(args)
    log(f'cifar: decoding {source}')
    start = time.perf_counter()
    data = read_image_folder(source)
    train, test = data['train'], data['test']
    if args.train_limit:
        keep = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(0))[:args.train_limit]
        train.images, train.labels = train.images[keep.numpy()], train.labels[keep.numpy()]
    decode_s = time.perf_counter() - start
    log(f'cifar: {len(train.labels)} training and {len(test.labels)} test images in {decode_s:.1f} s')
    device = torch.device(args.device)
    train_batches = DeviceBatches(train.images, train.labels, args.batch_size, device, train=True)
    test_batches = DeviceBatches(test.images, test.labels, 1000, device, train=False)
    warm_up(train_batches, len(train.classes), device)
    runs = {}
    for name in CIFAR_OPTIMIZERS:
        torch.manual_seed(0)
        network = CifarResNet(depth=20, num_classes=len(train.classes)).to(device)
        optimizer = build_cifar_optimizer(name, network, len(train.labels), args.epochs)
        stats = train_classifier(network, optimizer, train_batches, args.epochs,
                                 on_epoch=lambda e, s: log(f'cifar {name}: epoch {e + 1}/{args.epochs} '
                                                           f'({s["seconds"]:.0f} s)'))
        stats['top1'] = top1(network, test_batches)
        log(f'cifar {name}: top-1 {stats["top1"]:.2f}% in {stats["wall_s"]:.0f} s, '
            f'{stats["sample_passes"]:.2f} sample-passes per sample-epoch')
        runs[name] = stats
    return dict(source=str(source), train_images=len(train.labels), test_images=len(test.labels),
                decode_s=decode_s, epochs=args.epochs, batch_size=args.batch_size, runs=runs,
                recipe='ResNet-20, SGD lr 0.1 cosine per iteration, momentum 0.9 nesterov, weight decay '
                       '5e-4, rho 0.05, AUSAM/UniformSubsetSAM alpha 0.5, pad-4 crop + flip, fp32, seed 0')


# ----------------------------------------------------------------------- summary
def environment(args) -> dict:
    cuda = args.device == 'cuda'
    device = (torch.cuda.get_device_name() if cuda
              else f'CPU ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)')
    return dict(date=time.strftime('%Y-%m-%d %H:%M %Z'), torch=torch.__version__,
                cuda=torch.version.cuda if cuda else None, device=device,
                python=platform.python_version(), quick=args.quick)


def summary_markdown(results: dict) -> str:
    env = results['environment']
    lines = [f'# GPU check, {env["date"]}', '',
             f'{env["device"]}, torch {env["torch"]}' + (f' (CUDA {env["cuda"]})' if env['cuda'] else '')
             + f', Python {env["python"]}'
             + (' - QUICK MODE: miniature sizes, the numbers only show that every part runs' if env['quick'] else ''),
             '']
    if 'correctness' in results:
        c = results['correctness']
        lines += ['## Correctness (pytest -m cuda)', '',
                  f'{c["passed"]} passed, {c["failures"] + c["errors"]} failed, {c["skipped"]} skipped', '']
        lines += [f'- FAILED {f}' for f in c['failed']] + ([''] if c['failed'] else [])
    if 'speed' in results:
        lines += ['## Speed (images/s relative to SGD, median of round-robin repeats)', '',
                  '| optimizer | ' + ' | '.join(results['speed']) + ' | sample-passes | peak MiB (first config) |',
                  '|---|' + '---:|' * (len(results['speed']) + 2)]
        first = next(iter(results['speed'].values()))
        for name in first:
            cells = [f'{r[name]["vs_sgd"]:.2f}x ({r[name]["median"]:.0f}/s)' for r in results['speed'].values()]
            peak = first[name]['peak_memory_mib']
            lines.append(f'| {name} | ' + ' | '.join(cells) +
                         f' | {first[name]["sample_passes_per_step"]:.2f} | {"-" if peak is None else f"{peak:.0f}"} |')
        lines += ['', '| config | target | measured | met |', '|---|---|---:|---|']
        for t in results['speed_targets']:
            value = f'{t["value"]:.2f}{t.get("unit", "x")}'
            verdict = '(quick mode)' if env['quick'] else ('yes' if t['met'] else '**no**')
            lines.append(f'| {t["config"]} | {t["target"]} | {value} | {verdict} |')
        lines.append('')
    if 'cifar' in results:
        c = results['cifar']
        epochs = f'{c["epochs"]} epoch' + ('s' if c['epochs'] != 1 else '')
        lines += [f'## CIFAR ({Path(c["source"]).name}), ResNet-20, {epochs}, {c["train_images"]} training images',
                  '',
                  '| optimizer | test top-1 % | wall s | sample-passes / sample-epoch | SAM iterations |',
                  '|---|---:|---:|---:|---:|']
        for name, r in c['runs'].items():
            lines.append(f'| {name} | {r["top1"]:.2f} | {r["wall_s"]:.0f} | {r["sample_passes"]:.2f} '
                         f'| {r["sam_iterations"]} / {r["iterations"]} |')
        lines += ['', c['recipe'] + f'; decoding took {c["decode_s"]:.0f} s.', '']
    lines.append('Part times (s): ' + ', '.join(f'{k} {v:.0f}' for k, v in results['seconds'].items()))
    return '\n'.join(lines) + '\n'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', type=Path, required=True, help='folder for every result file')
    p.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    p.add_argument('--quick', action='store_true', help='every part in miniature (CI, on the CPU)')
    p.add_argument('--parts', nargs='+', choices=PARTS, default=list(PARTS))
    p.add_argument('--cifar', type=Path, help='CIFAR-10 in image-folder form: a folder or a .tar.gz '
                   '(default: data/cifar10_jpeg.tar.gz or ../shared/data/cifar10_jpeg.tar.gz)')
    p.add_argument('--epochs', type=int, default=None, help='CIFAR epochs (10; quick: 1)')
    p.add_argument('--batch-size', type=int, default=None, help='CIFAR batch size (128; quick: 32)')
    p.add_argument('--train-limit', type=int, default=None, help='train on a random subset of this size')
    p.add_argument('--sam-share', type=float, default=0.25, help='SAM share of the fixed-share vSAM')
    p.add_argument('--speed-iters', type=int, default=15, help='timed iterations per repeat')
    args = p.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('no CUDA device: run on a GPU machine, or use --quick --device cpu')
    args.epochs = args.epochs or (1 if args.quick else 10)
    args.batch_size = args.batch_size or (32 if args.quick else 128)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results, seconds = dict(environment=environment(args)), {}
    for part in args.parts:
        start = time.perf_counter()
        results[part] = dict(correctness=run_correctness, speed=run_speed, cifar=run_cifar)[part](args)
        seconds[part] = time.perf_counter() - start
        log(f'{part} done in {seconds[part]:.0f} s')
    if 'speed' in results:
        results['speed_targets'] = speed_targets(results['speed'], args.sam_share)
    results['seconds'] = seconds
    (args.out / 'results.json').write_text(json.dumps(results, indent=2) + '\n')
    summary = summary_markdown(results)
    (args.out / 'summary.md').write_text(summary)
    print(summary)
    return 1 if results.get('correctness', {}).get('returncode') else 0


if __name__ == '__main__':
    sys.exit(main())
