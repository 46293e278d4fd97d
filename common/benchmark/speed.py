"""Side-by-side training-step speed of SGD and the SAM family: timing, passes, memory.

The measuring half of ``tools/benchmark_optimizers.py`` (its docstring says what is
measured and how): the network and optimizers under test, round-robin timing on CUDA
events or ``perf_counter``, forward/backward passes counted per step, the optimizer's own
state and the peak memory of building and warming it up.
"""
import collections
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from typing import Optional

import torch
import torch.nn.functional as F
from tqdm import tqdm

from common.optim import AUSAM, SAM, VSAM, LookSAM, RandomScheduleSAM, UniformSubsetSAM
from qat_sam.networks import CifarResNet

#: ``pytorch_optimizer.SAM``: the SAM users would otherwise install, the outside anchor.
OUTSIDE_SAM = 'pytorch_optimizer.SAM'
OPTIMIZERS = ['SGD', 'SAM', 'AUSAM', 'VSAM', 'VSAM-fixed', 'LookSAM', 'UniformSubsetSAM',
              'RandomScheduleSAM', OUTSIDE_SAM]
#: Adaptive VSAM is left out by default: a short run sees only its first windows (one SAM
#: step per 50), not the share it trains at; VSAM-fixed prices that share.
DEFAULT_OPTIMIZERS = [name for name in OPTIMIZERS if name not in ('VSAM', OUTSIDE_SAM)]


def make_network(lsq_bits, depth=18):
    """CIFAR ResNet-``depth`` (qat_sam's), float or LSQ-quantized at ``lsq_bits`` (W=A, first/last 8)."""
    network = CifarResNet(depth=depth, num_classes=10)
    if lsq_bits is None:
        return network
    from qat_sam.quant import prepare  # brevitas: only for the quantized network
    return prepare(network, weight_bits=lsq_bits, act_bits=lsq_bits)


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


def label(name: str, args) -> str:
    """Table label of an entry, with the SAM share of the fixed-share ones."""
    if name == 'VSAM-fixed':
        return f'VSAM (fixed share {args.sam_share:g})'
    return f'RandomScheduleSAM (p {args.sam_share:g})' if name == 'RandomScheduleSAM' else name


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


def cpu_peak_mib(name: str, args, script: str) -> Optional[float]:
    """Peak RSS growth of a fresh process that builds and warms up ``name`` alone (CPU).

    ``None`` where /proc is missing (not Linux): the table then shows '-'.
    """
    if args.no_cpu_peak or not os.path.exists('/proc/self/status'):
        return None
    command = [sys.executable, script, '--peak-of', name, '--device', 'cpu', '--batch-size', args.batch_size,
               '--warmup', args.warmup, '--sam-share', args.sam_share, '--depth', args.depth]
    command += ['--lsq-bits', args.lsq_bits] if args.lsq_bits else []
    command += ['--channels-last'] * args.channels_last + ['--amp'] * args.amp
    out = subprocess.run([str(c) for c in command], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])['peak_mib']


def outside_version() -> str:
    from importlib.metadata import version
    return version('pytorch_optimizer')


def measure(args, script: str):
    """Time every optimizer of ``args.optimizers`` side by side (see ``tools/benchmark_optimizers.py``).

    Returns ``(results, pass_s)``: per optimizer its images/s per repeat, median/min/max,
    ``vs_sgd``, sample-passes and calls per step, overhead, state and peak memory; and the
    plain forward+backward seconds per repeat for the full and the half batch. With
    ``args.peak_of`` (the child process of :func:`cpu_peak_mib`) it prints that optimizer's
    peak RSS growth instead and returns ``None``. ``script`` is the command line that
    :func:`cpu_peak_mib` starts for the CPU peaks.
    """
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
        return None
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
            peak_memory_mib=e['peak'] if device.type == 'cuda' else cpu_peak_mib(name, args, script),
            state_mib=state_mib(e['opt'], list(e['model'].parameters())),
            statistics=getattr(e['opt'], 'statistics', dict)())

    if 'SGD' in results:  # per round, so that load drifts between rounds cancel
        for r in results.values():
            r['vs_sgd'] = statistics.median(a / b for a, b in zip(r['images_per_s'], results['SGD']['images_per_s']))
    return results, pass_s
