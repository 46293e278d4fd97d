"""Training throughput of SGD and the SAM family, side by side, on a CIFAR ResNet-18
(float, or its LSQ-quantized version with ``--lsq-bits 4``).

What it measures, for each optimizer, on one fixed synthetic batch (random 3x32x32
images, 10 classes; the data does not matter for speed):

* images/s of full training steps (``opt.step``), median and min-max over repeats;
* the ratio to plain SGD (one forward/backward + ``torch.optim.SGD.step``), the
  median over repeats of the ratio within each repeat;
* the forward/backward work actually run: sample-passes per step in units of the
  batch (SAM 2, AUSAM at alpha 0.5 about 1, schedule-based ones in between), counted
  by a closure that records every call and the batch rows it evaluated;
* the optimizer's own overhead: step time minus the time of the passes it ran, where
  a plain forward+backward on the full batch and on half the batch (AUSAM's subset)
  is timed in the same round (other subset sizes are interpolated linearly); as % of
  the step time, SGD's own included;
* memory: the optimizer's own state (every tensor it holds that is not a parameter:
  momentum, SAM's backup, vSAM's PSF, ...), exact on any device; and the peak over
  building the model and optimizer and the warm-up steps: on CUDA the peak allocated
  minus what the other entries hold, on CPU (Linux) the growth of the peak RSS of a
  fresh process that builds and warms up that optimizer alone (until it has run a SAM
  step, for the schedule-based ones).

Every entry is built and warmed up first, then the repeats run round-robin (repeat r
of every optimizer and of the reference passes together), so load drifts on a shared
machine hit all entries alike.

All SAM-family optimizers wrap SGD (lr 0.05, momentum 0.9, weight decay 5e-4) with
their class defaults, except: AUSAM/UniformSubsetSAM alpha 0.5 (at epoch 1, epoch 0
being plain SAM), VSAM at a fixed SAM share and RandomScheduleSAM at that same share
(``--sam-share``; give it the share vSAM reached in training, as ``tools/benchmark.py``
does), LookSAM k=5. Adaptive VSAM (``--optimizers VSAM``, ``warmup_steps=0``) is not in
the default set: a short run sees only its first windows at one SAM step per 50.

Run::

    python tools/benchmark_optimizers.py                              # CUDA if available
    python tools/benchmark_optimizers.py --device cpu --iters 3 --repeats 3
    python tools/benchmark_optimizers.py --lsq-bits 4                 # W4A4 LSQ ResNet-18
    python tools/benchmark_optimizers.py --optimizers SGD SAM AUSAM VSAM-fixed --sam-share 0.12 \\
        --amp --channels-last --json bench.json --markdown bench.md --plot bench.png
"""
from __future__ import annotations

import argparse
import collections
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.optim import AUSAM, SAM, VSAM, LookSAM, RandomScheduleSAM, UniformSubsetSAM  # noqa: E402
from qat_sam.networks import CifarResNet  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import cpu_name  # noqa: E402

#: ``pytorch_optimizer.SAM``: the SAM users would otherwise install, the outside anchor.
OUTSIDE_SAM = 'pytorch_optimizer.SAM'
OPTIMIZERS = ['SGD', 'SAM', 'AUSAM', 'VSAM', 'VSAM-fixed', 'LookSAM', 'UniformSubsetSAM',
              'RandomScheduleSAM', OUTSIDE_SAM]
#: Adaptive VSAM is left out by default: a short run sees only its first windows (one SAM
#: step per 50), not the share it trains at; VSAM-fixed prices that share.
DEFAULT_OPTIMIZERS = [name for name in OPTIMIZERS if name not in ('VSAM', OUTSIDE_SAM)]


# ---------------------------------------------------------------------- the model
def make_network(lsq_bits, depth=18):
    """CIFAR ResNet-``depth`` (qat_sam's), float or LSQ-quantized at ``lsq_bits`` (W=A, first/last 8)."""
    network = CifarResNet(depth=depth, num_classes=10)
    if lsq_bits is None:
        return network
    from qat_sam.quant import prepare  # brevitas: only for the quantized network
    return prepare(network, weight_bits=lsq_bits, act_bits=lsq_bits)


# ------------------------------------------------------------------ optimizers
def build_optimizer(name: str, params, args):
    """The optimizer ``name`` over ``params``, all on the same SGD base settings."""
    base = dict(lr=0.05, momentum=0.9, weight_decay=5e-4)
    if name == 'SGD':
        return torch.optim.SGD(params, **base)
    if name == OUTSIDE_SAM:
        import pytorch_optimizer
        return pytorch_optimizer.SAM(params, torch.optim.SGD, rho=0.05, **base)
    subset = dict(num_samples=args.batch_size, alpha=0.5, seed=0)
    cls, kwargs = {
        'SAM': (SAM, {}),
        'AUSAM': (AUSAM, subset),
        'VSAM': (VSAM, dict(warmup_steps=0, seed=0)),
        'VSAM-fixed': (VSAM, dict(warmup_steps=0, fixed_rate=args.sam_share, seed=0)),
        'LookSAM': (LookSAM, dict(k=5)),
        'UniformSubsetSAM': (UniformSubsetSAM, subset),
        'RandomScheduleSAM': (RandomScheduleSAM, dict(sam_prob=args.sam_share, seed=0)),
    }[name]
    opt = cls(params, 'SGD', **kwargs, **base)
    if hasattr(opt, 'set_epoch'):
        opt.set_epoch(1)  # epoch 0 would train on the whole batch (plain SAM)
    return opt


# ---------------------------------------------------------------------- timing
def timed(fn, n: int, device: torch.device) -> float:
    """Seconds taken by ``n`` calls of ``fn`` (CUDA events on GPU, perf_counter on CPU)."""
    if device.type == 'cuda':
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(n):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def state_mib(opt, params) -> float:
    """MiB of the tensors ``opt`` holds (its state, buffers, wrapped optimizer), parameters excluded."""
    seen = {p.untyped_storage().data_ptr() for p in params}
    total, stack, visited = 0, [opt], set()
    while stack:
        obj = stack.pop()
        if id(obj) in visited or isinstance(obj, (str, bytes, int, float, torch.nn.Module)):
            continue
        visited.add(id(obj))
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        elif hasattr(obj, '__dict__'):
            stack.extend(vars(obj).values())
    return total / 2**20


# ---------------------------------------------------------------------- report
def label(name: str, args) -> str:
    """Table label of an entry, with the SAM share of the fixed-share ones."""
    if name == 'VSAM-fixed':
        return f'VSAM (fixed share {args.sam_share:g})'
    return f'RandomScheduleSAM (p {args.sam_share:g})' if name == 'RandomScheduleSAM' else name


COLORS = {'SGD': '0.6', 'SAM': 'C3', 'AUSAM': 'C0', 'VSAM': 'C0', 'VSAM-fixed': 'C0'}


def plot_vs_sgd(results: dict, args, title: str, path: Path) -> None:
    """Bar chart: images/s relative to SGD (median, min-max over repeats), sample-passes on top."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(results)
    sgd = results['SGD']['images_per_s']
    ratios = [[a / b for a, b in zip(results[n]['images_per_s'], sgd)] for n in names]
    med = [results[n]['vs_sgd'] for n in names]
    err = [[m - min(r) for m, r in zip(med, ratios)], [max(r) - m for m, r in zip(med, ratios)]]
    fig, ax = plt.subplots(figsize=(10, 3.8))
    bars = ax.bar(range(len(names)), med, yerr=err, capsize=3,
                  color=[COLORS.get(n, 'C1') for n in names])  # controls in orange
    for bar, n in zip(bars, names):
        ax.annotate(f'{results[n]["sample_passes_per_step"]:.2f} passes', (bar.get_x() + bar.get_width() / 2, 0.02),
                    ha='center', va='bottom', fontsize=7, rotation=90, color='white')
    ax.axhline(1.0, color='k', lw=0.8, ls='--')
    ax.set_xticks(range(len(names)), [label(n, args).replace(' (', '\n(') for n in names], fontsize=7)
    ax.set_ylabel('images/s relative to SGD')
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------ CPU peak memory
def reset_peak_rss() -> None:
    """Linux: set this process's peak RSS (VmHWM) to its current RSS, where permitted."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def rss_mib(field: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process in MiB, from /proc (Linux).

    Not ``getrusage``: Linux carries ``ru_maxrss`` over exec, so a child started by a big
    parent would report the parent's peak.
    """
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 2**10  # kB
    raise RuntimeError(f'{field} not in /proc/self/status')


def cpu_peak_mib(name: str, args) -> Optional[float]:
    """Peak RSS growth of a fresh process that builds and warms up ``name`` alone (CPU).

    ``None`` where /proc is missing (not Linux): the table then shows '-'.
    """
    if args.no_cpu_peak or not os.path.exists('/proc/self/status'):
        return None
    command = [sys.executable, __file__, '--peak-of', name, '--device', 'cpu', '--batch-size', args.batch_size,
               '--warmup', args.warmup, '--sam-share', args.sam_share, '--depth', args.depth]
    command += ['--lsq-bits', args.lsq_bits] if args.lsq_bits else []
    command += ['--channels-last'] * args.channels_last + ['--amp'] * args.amp
    out = subprocess.run([str(c) for c in command], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])['peak_mib']


def _outside_version() -> str:
    from importlib.metadata import version
    return version('pytorch_optimizer')


# ------------------------------------------------------------------------ main
def parse_args(argv=None):
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if cuda else 'cpu')
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--depth', type=int, choices=[18, 20], default=18,
                   help='CIFAR ResNet depth (20: a small network for quick runs)')
    p.add_argument('--warmup', type=int, default=None, help='warm-up iterations (3 on cpu, 10 on cuda)')
    p.add_argument('--iters', type=int, default=None, help='timed iterations per repeat (5 on cpu, 50 on cuda)')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--optimizers', nargs='+', choices=OPTIMIZERS, default=DEFAULT_OPTIMIZERS)
    p.add_argument('--sam-share', type=float, default=0.5,
                   help='SAM share of VSAM-fixed and RandomScheduleSAM, in (0, 1]')
    p.add_argument('--lsq-bits', type=int, choices=range(2, 9), metavar='{2..8}',
                   help='LSQ-quantize the network to W<b>A<b> (first and last layer 8 bits)')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--amp', action='store_true', help='bf16 autocast')
    p.add_argument('--json', type=Path, help='write results, configuration and environment here')
    p.add_argument('--markdown', type=Path, help='write the table here')
    p.add_argument('--plot', type=Path, help='write a PNG of images/s relative to SGD here')
    p.add_argument('--no-cpu-peak', action='store_true',
                   help='CPU: skip the peak-RSS measurement (a fresh process per optimizer)')
    p.add_argument('--peak-of', choices=OPTIMIZERS, help=argparse.SUPPRESS)  # child: one CPU peak
    args = p.parse_args(argv)
    gpu = args.device == 'cuda'
    args.warmup = (10 if gpu else 3) if args.warmup is None else args.warmup
    args.iters = (50 if gpu else 5) if args.iters is None else args.iters
    if gpu and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device is available')
    if args.batch_size < 2 or args.iters < 1 or args.repeats < 1 or args.warmup < 1:
        p.error('need --batch-size >= 2, --iters >= 1, --repeats >= 1, --warmup >= 1')
    if not 0 < args.sam_share <= 1:
        p.error(f'--sam-share must lie in (0, 1], got {args.sam_share}')
    args.device = torch.device(args.device)
    return args


def main(argv=None):
    args = parse_args(argv)
    device, batch, half = args.device, args.batch_size, args.batch_size // 2
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=gen).to(device, memory_format=fmt)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    ids = torch.arange(batch)  # stable sample ids, on the CPU like a data loader's
    half_index = torch.randperm(batch, generator=gen)[:half].to(device)

    def make_model():
        torch.manual_seed(0)
        return make_network(args.lsq_bits, args.depth).to(device, memory_format=fmt).train()

    def make_closure(model, counts):
        """Forward pass returning the loss (per sample for a subset); counts its rows."""
        def closure(index=None):
            xb, yb = (x, y) if index is None else (x[index], y[index])
            counts[yb.shape[0]] += 1
            with torch.autocast(device.type, torch.bfloat16) if args.amp else nullcontext():
                return F.cross_entropy(model(xb), yb, reduction='mean' if index is None else 'none')
        return closure

    def setup(name, rows=None):
        """Build one entry (a reference pass on ``rows`` rows, or an optimizer) and warm it up.

        Peak CUDA memory is measured here: over construction and warm-up, minus what the
        other entries already hold.
        """
        gc.collect()
        if device.type == 'cuda':
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device) if device.type == 'cuda' else 0
        bar.set_description(f'warm-up {name}')
        model, counts = make_model(), collections.Counter()
        closure = make_closure(model, counts)
        opt = None if rows is not None else build_optimizer(name, model.parameters(), args)
        if rows is not None:
            index = None if rows == batch else half_index
            def step():
                model.zero_grad(set_to_none=True)
                closure(index).mean().backward()
        elif name == 'SGD':
            def step():
                opt.zero_grad(set_to_none=True)
                closure().backward()
                opt.step()
        elif name == OUTSIDE_SAM:  # its documented loop: backward, then step(closure) runs pass 2
            def step():
                opt.zero_grad(set_to_none=True)
                closure().backward()
                opt.step(lambda: closure().backward())
        else:
            sample_ids = dict(sample_ids=ids) if opt.uses_sample_ids else {}
            def step():
                opt.step(closure, model=model, **sample_ids)
        for _ in range(args.warmup):
            step()
            bar.update()
        peak = (torch.cuda.max_memory_allocated(device) - baseline) / 2**20 if device.type == 'cuda' else None
        return dict(step=step, counts=counts, opt=opt, model=model, peak=peak, runs=[])

    # Build and warm up every entry, then time them round-robin: repeat r of every
    # optimizer runs next to repeat r of the reference passes, so load drifts on a
    # shared machine hit all of them alike, and each repeat's overhead uses the pass
    # times of its own round.
    if args.peak_of:  # a child of cpu_peak_mib: build and warm up one optimizer, report the RSS growth
        bar, before = tqdm(disable=True), rss_mib('VmRSS')
        reset_peak_rss()
        entry, steps = setup(args.peak_of), args.warmup
        # schedule-based ones: go on until a SAM step (two passes) has run and built its buffers
        while args.peak_of != 'SGD' and sum(entry['counts'].values()) == steps and steps < 100:
            entry['step']()
            steps += 1
        print(json.dumps(dict(peak_mib=rss_mib('VmHWM') - before)))
        return
    bar = tqdm(total=(args.warmup + args.repeats * args.iters) * (2 + len(args.optimizers)),
               unit='it', dynamic_ncols=True)
    passes = {rows: setup(f'fwd+bwd {rows} rows', rows) for rows in (batch, half)}
    entries = {name: setup(name) for name in args.optimizers}
    for r in range(args.repeats):
        for name, e in [(f'fwd+bwd {rows} rows', e) for rows, e in passes.items()] + list(entries.items()):
            bar.set_description(f'{name} ({r + 1}/{args.repeats})')
            e['counts'].clear()
            e['runs'].append((timed(e['step'], args.iters, device) / args.iters, collections.Counter(e['counts'])))
            bar.update(args.iters)
    bar.close()
    pass_s = {rows: [t for t, _ in e['runs']] for rows, e in passes.items()}

    def passes_seconds(counts, r):
        """Time that the passes in ``counts`` take in round ``r`` (linear in the rows)."""
        full, part = pass_s[batch][r], pass_s[half][r]
        return sum(n * (part + (rows - half) * (full - part) / (batch - half)) for rows, n in counts.items())

    results, steps = {}, args.iters * args.repeats
    cpu_peaks = tqdm(entries.items(), desc='peak memory (fresh processes)',
                     disable=device.type == 'cuda' or args.no_cpu_peak)
    for name, e in cpu_peaks:
        step_s = [t for t, _ in e['runs']]
        imgs = [batch / t for t in step_s]
        overhead = [t - passes_seconds(c, r) / args.iters for r, (t, c) in enumerate(e['runs'])]
        total = sum((c for _, c in e['runs']), collections.Counter())
        results[name] = dict(
            images_per_s=imgs, median=statistics.median(imgs), min=min(imgs), max=max(imgs),
            step_ms=[1e3 * t for t in step_s],
            sample_passes_per_step=sum(r * n for r, n in total.items()) / batch / steps,
            calls_per_step=sum(total.values()) / steps, rows_histogram={str(r): n for r, n in total.items()},
            overhead_ms=1e3 * statistics.median(overhead),
            overhead_pct=statistics.median(100 * o / t for o, t in zip(overhead, step_s)),
            peak_memory_mib=e['peak'] if device.type == 'cuda' else cpu_peak_mib(name, args),
            state_mib=state_mib(e['opt'], list(e['model'].parameters())),
            statistics=getattr(e['opt'], 'statistics', dict)())

    if 'SGD' in results:  # per round, so that load drifts between rounds cancel
        for r in results.values():
            r['vs_sgd'] = statistics.median(a / b for a, b in zip(r['images_per_s'], results['SGD']['images_per_s']))

    def ms(seconds):
        return f'{1e3 * seconds:.1f}'

    def mib(value):
        return '-' if value is None else f'{value:.0f}'

    cuda = device.type == 'cuda'
    lines = ['| optimizer | images/s (median) | min-max | vs SGD (median) | sample-passes/step | overhead '
             '| optimizer state MiB | ' + ('peak CUDA MiB (own) |' if cuda else 'peak RSS growth MiB (alone) |'),
             '|---|---:|---:|---:|---:|---:|---:|---:|']
    for name, r in results.items():
        ratio = f'{r["vs_sgd"]:.2f}x' if 'vs_sgd' in r else '-'
        lines.append(f'| {label(name, args)} | {r["median"]:.1f} | {r["min"]:.1f}-{r["max"]:.1f} | {ratio} | '
                     f'{r["sample_passes_per_step"]:.2f} | {r["overhead_ms"]:.1f} ms ({r["overhead_pct"]:.1f}%) '
                     f'| {r["state_mib"]:.1f} | {mib(r["peak_memory_mib"])} |')
    device_name = torch.cuda.get_device_name(device) if cuda else cpu_name()
    model = f'ResNet-{args.depth} (CIFAR{", LSQ W%dA%d" % (args.lsq_bits, args.lsq_bits) if args.lsq_bits else ""})'
    lines += ['', f'{model}, batch {batch}, {device_name}, {torch.get_num_threads()} torch threads, amp={args.amp}, '
              f'channels_last={args.channels_last}, {args.repeats} x {args.iters} timed iterations after '
              f'{args.warmup} warm-up, round-robin. Plain fwd+bwd, median (min-max): full batch '
              f'{ms(statistics.median(pass_s[batch]))} ms ({ms(min(pass_s[batch]))}-{ms(max(pass_s[batch]))}), '
              f'half batch {ms(statistics.median(pass_s[half]))} ms ({ms(min(pass_s[half]))}-{ms(max(pass_s[half]))}). '
              'Overhead = step time - passes run x pass time (same round), as % of the step time. '
              'Optimizer state: every tensor the optimizer holds besides the parameters (SGD: momentum). '
              + ('Peak CUDA: over building and warm-up, minus what the other entries hold.' if cuda else
                 'Peak RSS growth: a fresh process building the model and optimizer and warming up '
                 '(schedule-based ones until their first SAM step).')]
    if OUTSIDE_SAM in results:
        lines[-1] += (f' {OUTSIDE_SAM} {_outside_version()} runs its documented loop (backward, then '
                      'step(closure)); it does not freeze BatchNorm statistics in its second pass, '
                      'leansam restores every buffer.')
    table = '\n'.join(lines)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + '\n')
    if args.plot and 'SGD' in results:
        plot_vs_sgd(results, args, f'{model}, batch {batch}, {device_name}', args.plot)
    if args.json:
        config = {k: str(v) if isinstance(v, (Path, torch.device)) else v for k, v in vars(args).items()}
        env = dict(torch=torch.__version__, cuda=torch.version.cuda, device=device_name,
                   cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
                   python=platform.python_version(), platform=platform.platform(),
                   date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'))
        args.json.write_text(json.dumps(dict(config=config, environment=env,
                                             pass_ms={str(k): [1e3 * t for t in v] for k, v in pass_s.items()},
                                             results=results), indent=2) + '\n')


if __name__ == '__main__':
    main()
