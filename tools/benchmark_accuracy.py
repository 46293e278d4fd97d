#!/usr/bin/env python3
"""Accuracy versus cost of SGD and the SAM family on the embedded digits, float and LSQ QAT.

Every optimizer trains the project's own recipes through MMEngine's Runner, for the same
number of epochs, on scikit-learn's handwritten digits with symmetric label noise on the
training labels (the test split stays clean), for several seeds; QAT starts from the float
SGD checkpoint of the same noise rate and seed. One command reproduces everything:

    python tools/benchmark_accuracy.py          # the default grid: 126 runs, 30-60 min on 2 cores
    python tools/benchmark_accuracy.py --precision float w4a4 w2a2 --seeds 0 1 2 3 4

and writes to ``--out-dir`` (default ``work_dirs/benchmark/accuracy``, as ``tools/benchmark.py``):

* ``runs/<run>/result.json``: one file per run (the cache: a re-run skips finished runs,
  ``--force`` redoes them), next to the run's MMEngine work dir and ``behaviour.json``;
* ``results.json``: every run, the summaries, the claims, the configuration and the
  environment (versions, CPU, date, command line);
* ``results.md``: the summary table and the claims table;
* ``accuracy_vs_cost.png``, ``ausam_behaviour.png``, ``vsam_behaviour.png``.

Recipes: ``configs/qat/digits/smallcnn_1xb64-12e_digits.py`` (float),
``lsq-w4a4_smallcnn_1xb64-10e_digits.py`` and ``lsq-w2a2_...`` (QAT), each with its own
SGD; the SAM family wraps that same SGD through ``SAMOptimWrapper``. Overridden per run:
epochs (the cosine schedule's ``T_max`` follows), noise rate, seed (training seed and the
seed of the label noise), work dir; validation during training is off and the clean test
split is evaluated once at the end. Optimizer settings: one ``--rho`` for all; AUSAM and
UniformSubsetSAM ``alpha`` 0.5 with the f_max ramp over 15% of the epochs; vSAM's all-SAM
warm-up over 10% of the epochs; LookSAM k=5, alpha=0.7; RandomScheduleSAM at the overall
SAM share vSAM ended with in the same (precision, noise, seed) run, so both cost the same.

Cost: ``sample_passes`` from ``throughput.json`` (forward/backward passes counted per
sample: SGD 1 per image, SAM 2, AUSAM 2 on its subset): exact and independent of the
machine's load. Wall time (train steps only) is reported too, relative to SGD's run of the
same seed, but on a shared machine it is only indicative.

Chosen defaults and why. The issue asks for a setting in which SAM beats SGD beyond the
seed spread ("if it does not, change the setting until it does"); rho was chosen on that
criterion alone (SAM vs SGD), never on how AUSAM or vSAM fared. Exploration, SmallCNN,
seeds 0-2, top-1 mean +- std and SAM - SGD (mean per-seed difference), float / W4A4:

    noise 0.4, 12 float epochs: SGD 94.70+-0.65 / 93.83+-0.31; SAM rho 0.05 +0.94 / +0.80,
        rho 0.1 +0.87 / +1.07, rho 0.2 +0.00 / +1.74: at most about one seed-std, because
        12 epochs stop before SGD memorises the wrong labels (the recipe's length);
    noise 0.4, 24 float epochs: SGD 87.59+-1.01 / 84.98+-1.01; SAM rho 0.05 +3.82 / +1.61,
        rho 0.1 +6.77 / +2.88, rho 0.2 +8.38 / +5.37 (SAM std 0.2-0.6);
    noise 0.2, 24 epochs: SGD 93.29+-0.81 / 92.09+-0.51; rho 0.1 +3.62 / +1.34,
        rho 0.2 +4.23 / +3.02;
    noise 0, 24 epochs: SGD 99.06+-0.12 / 99.13+-0.46; rho 0.1 and 0.2 +0.34 / +0.27.

Hence 24 float epochs (twice the recipe's 12: SGD then fits the noisy labels and loses
7 points at 40% noise, as STACK.md saw at 60 epochs), QAT 10 epochs as in the recipe (it
starts from the float SGD checkpoint, noise memorised included), rho 0.2 (largest gain at
every noise rate on both precisions; equal to 0.1 without noise), noise 0 / 0.2 / 0.4
(no noise is the control where SAM is not expected to help much). vSAM's warm-up: 10% of
the epochs (2.4 float epochs, about one window of 50 SAM iterations to fill its statistics
buffers; the paper uses 1.5% of 200 epochs, the W4A4 recipe 20% of 10, which alone would
put vSAM at about 61% of SAM's sample-passes). AUSAM's ramp: 15% of the epochs, as
docs/algorithms.md suggests for short schedules.

Runs execute in this process, one Runner after another (experiment names are unique,
logger handlers are closed and MMEngine's named instances dropped after each run; each
run's MMEngine log goes to ``runs/<run>/console.log``). ``--isolate`` runs each in a
subprocess of this script instead. Both give the same top-1 bit for bit; eight 6-epoch
float runs took 44-49 s in-process and 114-131 s isolated on this 2-core machine (each
fresh process pays its imports and first-iteration warm-up, longer than a short run).
Torch uses ``--threads`` (default 1) threads: on this 2-core machine, shared with other
jobs, two threads slowed a 12-epoch SGD run from about 5 s to 30-100 s whenever another
process was busy; one thread did not.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import os.path as osp
import platform
import shutil
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import matplotlib  # noqa: E402

matplotlib.use('Agg')  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import mmengine  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.logging import MessageHub, MMLogger  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.visualization import Visualizer  # noqa: E402
from tqdm import tqdm  # noqa: E402

from common.engine import use_sam  # noqa: E402
from common.engine.entry import import_project_modules  # noqa: E402
from common.optim import OPTIMIZERS  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from machine_info import cpu_model  # noqa: E402

DIGITS = osp.join(ROOT, 'configs', 'qat', 'digits')
CIFAR10 = osp.join(ROOT, 'configs', 'qat', 'cifar10')
RECIPES = {
    'digits': {
        'float': osp.join(DIGITS, 'smallcnn_1xb64-12e_digits.py'),
        'w4a4': osp.join(DIGITS, 'lsq-w4a4_smallcnn_1xb64-10e_digits.py'),
        'w2a2': osp.join(DIGITS, 'lsq-w2a2_smallcnn_1xb64-10e_digits.py'),
    },
    'cifar10': {
        'float': osp.join(CIFAR10, 'resnet8_1xb32-12e_cifar10-5k.py'),
        'w4a4': osp.join(CIFAR10, 'lsq-w4a4_resnet8_1xb32-4e_cifar10-5k.py'),
    },
}
PRECISIONS = ['float', 'w4a4', 'w2a2']
#: Execution order: VSAM before RandomScheduleSAM (which takes vSAM's share), SGD first.
OPTIMIZER_ORDER = ['SGD', 'SAM', 'AUSAM', 'UniformSubsetSAM', 'VSAM', 'RandomScheduleSAM', 'LookSAM']
assert set(OPTIMIZER_ORDER) == {'SGD', *OPTIMIZERS}, 'a SAM-family optimizer is missing from the benchmark'
#: AUSAM's own options as ablation rows (run with label noise only, float): name -> (class, options).
ABLATIONS = {'AUSAM-IW': ('AUSAM', dict(importance_weighted=True)),
             'AUSAM-EMA': ('AUSAM', dict(dlp_momentum=0.9))}
ORDER = OPTIMIZER_ORDER + list(ABLATIONS)

DEFAULTS = {
    'digits': dict(noise=[0.0, 0.2, 0.4], seeds=[0, 1, 2], precision=['float', 'w4a4'], optimizers=OPTIMIZER_ORDER,
                   epochs_float=24, epochs_qat=10, rho=0.2, alpha=0.5, ausam_ramp=0.15, vsam_warmup=0.1,
                   vsam_window=None, qat_noise=None),
    'cifar10': dict(noise=[0.0, 0.4], seeds=[0, 1, 2], precision=['float', 'w4a4'], optimizers=ORDER,
                    epochs_float=12, epochs_qat=4, rho=0.1, alpha=0.5, ausam_ramp=0.15, vsam_warmup=0.1,
                    vsam_window=None, qat_noise=[0.4]),
}


# ------------------------------------------------------------------------ runs
@dataclasses.dataclass
class RunSpec:
    """One training run: everything that determines its result (and its cache key).

    Attributes:
        precision: ``'float'``, ``'w4a4'`` or ``'w2a2'``.
        optimizer: ``'SGD'`` (plain ``OptimWrapper``) or a name of ``common.optim.OPTIMIZERS``.
        noise: Symmetric label-noise rate of the training labels.
        seed: Training seed and seed of the label noise.
        epochs: Training epochs (the cosine schedule spans them).
        sam: ``sam=dict(...)`` of ``SAMOptimWrapper`` (``None`` for SGD).
        start_from: QAT only: key of the float SGD run whose checkpoint QAT starts from.
        dataset: ``'digits'`` or ``'cifar10'`` (left out of the digits keys, which predate it).
    """

    precision: str
    optimizer: str
    noise: float
    seed: int
    epochs: int
    sam: Optional[dict] = None
    start_from: Optional[str] = None
    dataset: str = 'digits'

    def as_dict(self) -> dict:
        spec = dataclasses.asdict(self)
        if self.dataset == 'digits':
            del spec['dataset']
        return spec

    @property
    def key(self) -> str:
        """Readable name plus a hash of the whole spec, so changed settings never reuse a result."""
        digest = hashlib.sha1(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:8]
        prefix = '' if self.dataset == 'digits' else f'{self.dataset}-'
        return (f'{prefix}{self.precision}-{self.optimizer}-noise{self.noise:g}-seed{self.seed}-e{self.epochs}'
                f'-{digest}')


def sam_options(name: str, epochs: int, args, sam_prob: Optional[float] = None) -> Optional[dict]:
    """The ``sam=dict(...)`` of optimizer ``name`` (``None`` for SGD)."""
    if name == 'SGD':
        return None
    cls, extra = ABLATIONS.get(name, (name, {}))
    options = dict(type=cls, rho=args.rho)
    if cls in ('AUSAM', 'UniformSubsetSAM'):
        options.update(alpha=args.alpha, ramp_epochs=round(args.ausam_ramp * epochs, 6), **extra)
    elif name == 'VSAM':
        options.update(warmup_epochs=round(args.vsam_warmup * epochs, 6))
        if args.vsam_window is not None:
            options.update(window=args.vsam_window)
    elif name == 'RandomScheduleSAM':
        if sam_prob is None:
            raise ValueError('RandomScheduleSAM needs the SAM share of the vSAM run it is matched to.')
        options.update(sam_prob=round(sam_prob, 6))
    return options


def with_dependencies(optimizers: List[str], precisions: List[str]):
    """Optimizers and precisions to run: RandomScheduleSAM needs VSAM, QAT needs float SGD."""
    optimizers = set(optimizers)
    if 'RandomScheduleSAM' in optimizers:
        optimizers.add('VSAM')
    ordered = [name for name in ORDER if name in optimizers]
    return ordered, ['float'] + [p for p in precisions if p != 'float']


def planned_runs(args) -> List[tuple]:
    """(precision, optimizer, noise, seed) in execution order, dependencies first."""
    optimizers, precisions = with_dependencies(args.optimizers, args.precision)
    runs = []
    qat_noise = args.noise if args.qat_noise is None else args.qat_noise
    for noise in args.noise:
        for seed in args.seeds:
            for precision in precisions:
                if precision != 'float' and noise not in qat_noise:
                    continue
                names = optimizers if precision in args.precision else ['SGD']
                if precision == 'float' and 'SGD' not in names:
                    names = ['SGD'] + names
                names = [n for n in names if n not in ABLATIONS or (noise > 0 and precision == 'float')]
                runs += [(precision, name, noise, seed) for name in names]
    return runs


def make_spec(precision: str, optimizer: str, noise: float, seed: int, args, done: Dict[tuple, dict]) -> RunSpec:
    """The spec of a planned run; ``done`` maps (precision, optimizer, noise, seed) to results."""
    epochs = args.epochs_float if precision == 'float' else args.epochs_qat
    sam_prob = None
    if optimizer == 'RandomScheduleSAM':
        sam_prob = done[(precision, 'VSAM', noise, seed)]['sam_share']
    start_from = None if precision == 'float' else done[('float', 'SGD', noise, seed)]['key']
    return RunSpec(precision, optimizer, noise, seed, epochs, sam_options(optimizer, epochs, args, sam_prob),
                   start_from, args.dataset)


# ------------------------------------------------------------- one MMEngine run
def build_config(spec: RunSpec, run_dir: str, start_checkpoint: Optional[str], name: str,
                 data_root: Optional[str] = None) -> Config:
    """The recipe of ``spec.precision`` with the run's overrides (see the module docstring)."""
    cfg = Config.fromfile(RECIPES[spec.dataset][spec.precision])
    epochs = spec.epochs
    if data_root is not None:
        cfg.merge_from_dict({'train_dataloader.dataset.data_root': data_root,
                             'test_dataloader.dataset.data_root': data_root})
    cfg.merge_from_dict({
        'work_dir': run_dir, 'experiment_name': name, 'randomness': dict(seed=spec.seed),
        'train_dataloader.dataset.noise_rate': spec.noise, 'train_dataloader.dataset.seed': spec.seed,
        'train_cfg.max_epochs': epochs, 'default_hooks.logger.interval': 50})
    for scheduler in cfg.param_scheduler:
        if 'T_max' in scheduler:
            scheduler['T_max'] = epochs
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg.pop('val_interval', None)
    keep_checkpoint = spec.precision == 'float' and spec.optimizer == 'SGD'
    cfg.default_hooks.checkpoint = (dict(type='CheckpointHook', interval=epochs, max_keep_ckpts=1)
                                    if keep_checkpoint else None)
    if start_checkpoint is not None:
        cfg.model.float_checkpoint = start_checkpoint
    if spec.sam is not None:  # vSAM's warm-up (kept in the spec: cache keys) is a loop option
        sam = dict(spec.sam)
        use_sam(cfg, sam, **({'warmup_epochs': sam.pop('warmup_epochs')} if 'warmup_epochs' in sam else {}))
    return cfg


class ProbeHook(Hook):
    """Records what each iteration did: SAM or not, vSAM's rate, AUSAM's draws per sample.

    Priority ``LOWEST``: runs outside ``ThroughputHook``'s timing.
    """

    priority = 'LOWEST'

    def before_train(self, runner) -> None:
        optimizer = runner.optim_wrapper.optimizer
        size = len(runner.train_dataloader.dataset)
        self.sam_flags: List[int] = []
        self.vsam_rate: List[float] = []
        self.subset = getattr(optimizer, 'uses_sample_ids', False)
        self.draws = torch.zeros(size, dtype=torch.long)
        self.appearances = torch.zeros(size, dtype=torch.long)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        optimizer = runner.optim_wrapper.optimizer
        iteration = getattr(optimizer, 'last_iteration', None)
        self.sam_flags.append(int(bool(iteration is not None and iteration.sam)))
        if hasattr(optimizer, 'rate_history'):
            self.vsam_rate.append(optimizer.statistics()['sam_rate'])
        if self.subset and runner.epoch >= 1:  # epoch 0 trains on whole batches
            ids = torch.as_tensor([int(s.metainfo['sample_idx']) for s in data_batch['data_samples']])
            self.appearances[ids] += 1
            self.draws[ids[iteration.index.cpu()]] += 1

    def behaviour(self, runner) -> dict:
        """What the run did, for the behaviour plots (lists, JSON-ready)."""
        optimizer = runner.optim_wrapper.optimizer
        out = dict(sam_flags=self.sam_flags, iters_per_epoch=len(runner.train_dataloader))
        if hasattr(optimizer, 'rate_history'):
            out.update(vsam_rate=self.vsam_rate, window=optimizer.window, warmup_steps=optimizer.warmup_steps,
                       rate_history=list(optimizer.rate_history), statistics=optimizer.statistics())
        if self.subset:
            dataset = runner.train_dataloader.dataset
            out.update(adlp=optimizer.adlp.cpu().tolist(), dlp_count=optimizer.dlp_count.cpu().tolist(),
                       draws=self.draws.tolist(), appearances=self.appearances.tolist(),
                       mislabelled=(dataset.labels != dataset.clean_labels).int().tolist())
        return out


def release(runner) -> None:
    """Close the run's log files and drop MMEngine's named instances of this experiment."""
    for handler in list(runner.logger.handlers):
        handler.close()
        runner.logger.removeHandler(handler)
    for cls in (MMLogger, MessageHub, Visualizer, DefaultScope):
        cls._instance_dict.pop(runner.experiment_name, None)


def execute_run(spec: RunSpec, run_dir: str, start_checkpoint: Optional[str] = None,
                data_root: Optional[str] = None) -> dict:
    """Train and test one run in this process; write and return its ``result.json``."""
    import_project_modules()
    os.makedirs(run_dir, exist_ok=True)
    cfg = build_config(spec, run_dir, start_checkpoint, name=spec.key, data_root=data_root)  # the Runner appends a timestamp
    probe = ProbeHook()
    runner = None
    with open(osp.join(run_dir, 'console.log'), 'w') as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            start = time.perf_counter()
            runner = Runner.from_cfg(cfg)
            runner.register_hook(probe)
            runner.train()
            metrics = runner.test()
            wall = time.perf_counter() - start
            with open(osp.join(runner.log_dir, 'throughput.json')) as f:
                throughput = json.load(f)
            behaviour = probe.behaviour(runner)
        finally:
            if runner is not None:
                release(runner)
    with open(osp.join(run_dir, 'behaviour.json'), 'w') as f:
        json.dump(behaviour, f)
    flags = behaviour['sam_flags']
    result = dict(
        key=spec.key, spec=spec.as_dict(), top1=float(metrics['accuracy/top1']),
        top5=float(metrics['accuracy/top5']), train_seconds=throughput['seconds'],
        images=throughput['images'], images_per_s=throughput['images_per_s'],
        sample_passes=throughput['sample_passes'], sam_share=sum(flags) / len(flags), iterations=len(flags),
        wall_seconds=wall, threads=torch.get_num_threads(), log_dir=osp.relpath(runner.log_dir, run_dir),
        checkpoint=checkpoint_path(spec, run_dir), config=config_summary(cfg))
    write_json(osp.join(run_dir, 'result.json'), result)
    return result


def checkpoint_path(spec: RunSpec, run_dir: str) -> Optional[str]:
    """Where the float SGD run leaves its checkpoint (``None`` for other runs)."""
    if spec.precision == 'float' and spec.optimizer == 'SGD':
        return osp.join(run_dir, f'epoch_{spec.epochs}.pth')
    return None


def config_summary(cfg: Config) -> dict:
    """The parts of the final config that differ between runs."""
    data = cfg.train_dataloader
    return dict(recipe=osp.relpath(cfg.filename, ROOT), optim_wrapper=cfg.optim_wrapper.to_dict(),
                param_scheduler=[dict(s) for s in cfg.param_scheduler], train_cfg=cfg.train_cfg.to_dict(),
                dataset=data.dataset.to_dict(), batch_size=data.batch_size, randomness=dict(cfg.randomness),
                quantization=cfg.model.get('quantization'), float_checkpoint=cfg.model.get('float_checkpoint'))


def execute_isolated(spec: RunSpec, run_dir: str, start_checkpoint: Optional[str], threads: int,
                     data_root: Optional[str] = None) -> dict:
    """``execute_run`` in a subprocess of this script (``--isolate``)."""
    os.makedirs(run_dir, exist_ok=True)
    job = osp.join(run_dir, 'job.json')
    write_json(job, dict(spec=dataclasses.asdict(spec), run_dir=run_dir, start_checkpoint=start_checkpoint,
                         data_root=data_root))
    command = [sys.executable, osp.abspath(__file__), '--worker', job, '--threads', str(threads)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f'run {spec.key} failed (exit {done.returncode}); see '
                           f'{osp.join(run_dir, "console.log")}\n{done.stderr[-3000:]}')
    return read_json(osp.join(run_dir, 'result.json'))


def worker(job_path: str) -> None:
    """The ``--worker`` entry of ``--isolate``: one run from a job file."""
    job = read_json(job_path)
    execute_run(RunSpec(**job['spec']), job['run_dir'], job['start_checkpoint'], job.get('data_root'))


# ------------------------------------------------------------ the benchmark loop
def run_groups(plan: List[tuple]) -> List[List[tuple]]:
    """The plan split by (noise, seed): groups with no dependency between them, largest first."""
    groups: Dict[tuple, List[tuple]] = {}
    for run in plan:
        groups.setdefault((run[2], run[3]), []).append(run)
    return sorted(groups.values(), key=len, reverse=True)


def claim(claims_dir: str, group: List[tuple]) -> bool:
    """Atomically claim ``group`` for this worker process (``--jobs``); False if another has it."""
    noise, seed = group[0][2], group[0][3]
    try:
        os.close(os.open(osp.join(claims_dir, f'noise{noise:g}-seed{seed}'), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def run_parallel(args) -> None:
    """``--jobs N``: N worker processes of this script share the (noise, seed) groups.

    Each worker claims a whole group (its runs depend on each other: QAT on the float SGD
    checkpoint, RandomScheduleSAM on vSAM's share), runs it in-process with ``--threads``
    threads and caches it as usual; the caller then collects everything from the cache.
    """
    claims_dir = osp.join(args.out_dir, 'claims')
    shutil.rmtree(claims_dir, ignore_errors=True)
    os.makedirs(claims_dir)
    workers = []
    for i in range(args.jobs):
        log = open(osp.join(args.out_dir, f'worker{i}.log'), 'w')
        command = [sys.executable, osp.abspath(__file__), *args.argv, '--out-dir', args.out_dir, '--jobs', '1',
                   '--claims', claims_dir] + (['--data-root', args.data_root] if args.data_root else [])
        workers.append((subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log))
    print(f'{args.jobs} workers; progress in {osp.join(args.out_dir, "worker*.log")}')
    failed = []
    for i, (process, log) in enumerate(workers):
        if process.wait() != 0:
            failed.append(i)
        log.close()
    if failed:
        raise RuntimeError(f'workers {failed} failed; see {args.out_dir}/worker<N>.log')


def run_all(args) -> List[dict]:
    """Every planned run, from the cache where finished; returns the results in order.

    With ``args.claims`` (a worker of ``--jobs``) only the groups this process claims run,
    and nothing is returned.
    """
    runs_dir = osp.join(args.out_dir, 'runs')
    done: Dict[tuple, dict] = {}
    plan = planned_runs(args)
    groups = run_groups(plan) if args.claims is not None else [plan]
    bar = tqdm(total=len(plan), unit='run', dynamic_ncols=True)
    fresh = 0
    for precision, optimizer, noise, seed in (run for group in groups
                                              if args.claims is None or claim(args.claims, group)
                                              for run in group):
        spec = make_spec(precision, optimizer, noise, seed, args, done)
        run_dir = osp.join(runs_dir, spec.key)
        bar.set_description(spec.key.rsplit('-', 1)[0])
        result = None if args.force else cached_result(spec, run_dir)
        if result is None:
            if osp.isdir(run_dir):  # an unfinished or forced run: start clean
                shutil.rmtree(run_dir)
            start = None if spec.start_from is None else done[('float', 'SGD', noise, seed)]['checkpoint']
            if args.isolate:
                result = execute_isolated(spec, run_dir, start, args.threads, args.data_root)
            else:
                result = execute_run(spec, run_dir, start, args.data_root)
            fresh += 1
        result['checkpoint'] = checkpoint_path(spec, run_dir)
        done[(precision, optimizer, noise, seed)] = result
        bar.update()
        bar.set_postfix(top1=f'{result["top1"]:.1f}', new=fresh)
    bar.close()
    print(f'{fresh} runs trained, {bar.n - fresh} reused from {runs_dir}')
    return list(done.values())


def cached_result(spec: RunSpec, run_dir: str) -> Optional[dict]:
    """The finished result of ``spec`` in ``run_dir``, or ``None``."""
    path = osp.join(run_dir, 'result.json')
    if not osp.isfile(path):
        return None
    result = read_json(path)
    if result.get('spec') != spec.as_dict():
        return None
    checkpoint = checkpoint_path(spec, run_dir)
    if checkpoint is not None and not osp.isfile(checkpoint):
        return None  # QAT runs start from it
    return result


# ------------------------------------------------------------------- summaries
def mean_std(values: List[float]):
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(results: List[dict]) -> List[dict]:
    """Per (noise, precision, optimizer): top-1 mean/std over seeds, costs relative to SGD and SAM."""
    by_run = {(r['spec']['precision'], r['spec']['optimizer'], r['spec']['noise'], r['spec']['seed']): r
              for r in results}
    groups = sorted({(k[2], k[0], k[1]) for k in by_run},
                    key=lambda g: (g[0], PRECISIONS.index(g[1]), ORDER.index(g[2])))
    rows = []
    for noise, precision, optimizer in groups:
        seeds = sorted(k[3] for k in by_run if k[:3] == (precision, optimizer, noise))
        runs = [by_run[(precision, optimizer, noise, s)] for s in seeds]
        top1, std = mean_std([r['top1'] for r in runs])
        row = dict(noise=noise, precision=precision, optimizer=optimizer, seeds=seeds,
                   top1=[r['top1'] for r in runs], top1_mean=top1, top1_std=std,
                   sam_share=statistics.mean(r['sam_share'] for r in runs),
                   sample_passes=statistics.mean(r['sample_passes'] for r in runs))
        for ref in ('SGD', 'SAM'):
            refs = [by_run.get((precision, ref, noise, s)) for s in seeds]
            row[f'passes_vs_{ref}'] = mean_ratio(runs, refs, 'sample_passes')
            row[f'time_vs_{ref}'] = mean_ratio(runs, refs, 'train_seconds')
        rows.append(row)
    return rows


def mean_ratio(runs: List[dict], refs: List[Optional[dict]], key: str) -> Optional[float]:
    """Mean over seeds of ``run[key] / ref[key]`` (same seed), ``None`` without a reference."""
    ratios = [r[key] / ref[key] for r, ref in zip(runs, refs) if ref is not None]
    return statistics.mean(ratios) if ratios else None


def paired_gain(rows: Dict[str, dict], a: str, b: str) -> Optional[dict]:
    """Mean top-1 of ``a`` minus ``b`` over their common seeds, the spread and per-seed wins."""
    if a not in rows or b not in rows:
        return None
    ra, rb = rows[a], rows[b]
    common = [s for s in ra['seeds'] if s in rb['seeds']]
    diffs = [round(ra['top1'][ra['seeds'].index(s)] - rb['top1'][rb['seeds'].index(s)], 9) for s in common]
    spread = max(ra['top1_std'], rb['top1_std'])
    gain = statistics.mean(diffs)
    return dict(gain=gain, spread=spread, wins=sum(d > 0 for d in diffs), n=len(diffs),
                beyond=len(diffs) > 1 and gain > spread)


#: Ratios of whole test images (1 image = 100/497 points) hit the thresholds exactly; float
#: rounding must not decide them.
TOLERANCE = 1e-9


def claims(summary: List[dict], keep: float = 0.8, max_passes: float = 0.6) -> List[dict]:
    """The issue's claims per (noise, precision), each marked holds / does not hold / n/a.

    "Beyond the seed spread": the mean paired difference exceeds the larger of the two
    optimizers' standard deviations over seeds.
    """
    out = []
    for noise, precision in sorted({(r['noise'], r['precision']) for r in summary},
                                   key=lambda k: (k[0], PRECISIONS.index(k[1]))):
        rows = {r['optimizer']: r for r in summary if r['noise'] == noise and r['precision'] == precision}

        def add(claim, value, verdict):
            out.append(dict(noise=noise, precision=precision, claim=claim, value=value, verdict=verdict))

        sam = paired_gain(rows, 'SAM', 'SGD')
        if sam:
            add('SAM beats SGD beyond the seed spread', _gain_text(sam), _beyond_verdict(sam))
        for name, label in (('AUSAM', 'AUSAM'), ('VSAM', 'vSAM')):
            if name not in rows:
                continue
            own = paired_gain(rows, name, 'SGD')
            if sam and own:
                add(f'{label} keeps >= {keep:.0%} of SAM\'s gain', *_kept(own, sam, keep))
            ratio = rows[name]['passes_vs_SAM']
            if ratio is not None:
                add(f'{label} costs <= {max_passes:.0%} of SAM\'s sample-passes', f'{ratio:.0%}',
                    _verdict(ratio <= max_passes + TOLERANCE))
        for name, control, label in (('AUSAM', 'UniformSubsetSAM', 'AUSAM beats UniformSubsetSAM at equal cost'),
                                     ('VSAM', 'RandomScheduleSAM', 'vSAM beats RandomScheduleSAM at equal cost')):
            gain = paired_gain(rows, name, control)
            if gain:
                cost = rows[name]['sample_passes'] / rows[control]['sample_passes']
                add(label, f'{_gain_text(gain)}; passes ratio {cost:.2f}', _beyond_verdict(gain))
    return out


def _kept(own: dict, sam: dict, keep: float):
    """(value, verdict) of "keeps >= keep of SAM's gain"; only judged where SAM's gain is real."""
    gains = f'{own["gain"]:+.2f} of SAM\'s {sam["gain"]:+.2f} pts over SGD'
    if sam['n'] < 2:
        return gains, 'n/a (one seed)'
    if not sam['beyond']:
        return gains, 'n/a (no SAM gain beyond the spread)'
    kept = own['gain'] / sam['gain']
    return f'{kept:.0%} ({gains})', _verdict(kept >= keep - TOLERANCE)


def _gain_text(g: dict) -> str:
    return f'{g["gain"]:+.2f} pts vs spread {g["spread"]:.2f}, better in {g["wins"]}/{g["n"]} seeds'


def _beyond_verdict(g: dict) -> str:
    if g['n'] < 2:
        return 'n/a (one seed)'
    if g['gain'] < -g['spread']:
        return 'does not hold (reversed beyond the spread)'
    return _verdict(g['beyond'])


def _verdict(ok: bool) -> str:
    return 'holds' if ok else 'does not hold'


# -------------------------------------------------------------------- reports
def markdown(summary: List[dict], claim_rows: List[dict], config: dict) -> str:
    """``results.md``: the summary table, the claims table and how they were made."""
    def ratio(x):
        return '-' if x is None else f'{x:.2f}x'

    lines = ['| noise | precision | optimizer | top-1 mean ± std | passes vs SGD | passes vs SAM | time vs SGD '
             '| SAM share |', '|---:|---|---|---:|---:|---:|---:|---:|']
    for r in summary:
        lines.append(f'| {r["noise"]:g} | {r["precision"]} | {r["optimizer"]} | {r["top1_mean"]:.2f} ± '
                     f'{r["top1_std"]:.2f} | {ratio(r["passes_vs_SGD"])} | {ratio(r["passes_vs_SAM"])} | '
                     f'{ratio(r["time_vs_SGD"])} | {r["sam_share"]:.2f} |')
    qat = (f', QAT {config["epochs_qat"]} epochs from the float SGD checkpoint'
           if any(r['precision'] != 'float' for r in summary) else '')
    lines += ['', f'Top-1 (%) on the clean test split, mean ± std over seeds {config["seeds"]}; float '
              f'{config["epochs_float"]} epochs{qat}, rho {config["rho"]}. Passes: forward/backward sample-passes (exact cost); time: train-step '
              'seconds (indicative on a shared machine); both relative to the same seed\'s run, then averaged. '
              'SAM share: iterations with a second pass.', '',
              '| noise | precision | claim | value | verdict |', '|---:|---|---|---|---|']
    for c in claim_rows:
        lines.append(f'| {c["noise"]:g} | {c["precision"]} | {c["claim"]} | {c["value"]} | {c["verdict"]} |')
    lines += ['', 'Beyond the spread: the mean per-seed difference exceeds the larger of the two standard '
              'deviations over seeds.']
    return '\n'.join(lines) + '\n'


def environment() -> dict:
    """Versions, machine, date and command line of this invocation."""
    return dict(torch=torch.__version__, mmengine=mmengine.__version__, python=platform.python_version(),
                cpu=cpu_model(), cpu_count=os.cpu_count(), platform=platform.platform(),
                date=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
                command=' '.join([osp.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT)
                                  else sys.executable] + sys.argv),
                git_commit=git_commit())


def git_commit() -> Optional[str]:
    done = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or None


# ---------------------------------------------------------------------- plots
COLOURS = {'SGD': 'tab:gray', 'SAM': 'tab:red', 'AUSAM': 'tab:blue', 'UniformSubsetSAM': 'tab:cyan',
           'VSAM': 'tab:green', 'RandomScheduleSAM': 'tab:olive', 'LookSAM': 'tab:purple',
           'AUSAM-IW': 'tab:brown', 'AUSAM-EMA': 'tab:pink'}


def _panels(rows: int, cols: int, width: float = 4.2, height: float = 3.4):
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    return fig, axes


def plot_accuracy_vs_cost(summary: List[dict], path: str) -> None:
    """x: sample-passes relative to SGD, y: top-1 ± std; one panel per (noise, precision)."""
    precisions = [p for p in PRECISIONS if any(r['precision'] == p for r in summary)]
    noises = sorted({r['noise'] for r in summary})
    fig, axes = _panels(len(precisions), len(noises))
    for i, precision in enumerate(precisions):
        for j, noise in enumerate(noises):
            ax = axes[i][j]
            for r in summary:
                if r['precision'] != precision or r['noise'] != noise or r['passes_vs_SGD'] is None:
                    continue
                ax.errorbar(r['passes_vs_SGD'], r['top1_mean'], yerr=r['top1_std'], fmt='o', capsize=3,
                            color=COLOURS[r['optimizer']], label=r['optimizer'])
            ax.set_title(f'{precision}, noise {noise:g}')
            ax.set_xlabel('sample-passes vs SGD')
            ax.set_ylabel('test top-1 (%)')
            ax.grid(alpha=0.3)
    handles = {h.get_label(): h for ax in axes.flat for h in ax.get_legend_handles_labels()[0]}
    fig.legend(handles.values(), handles.keys(), loc='lower center', ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def behaviour_runs(results: List[dict], optimizer: str, out_dir: str) -> List[tuple]:
    """(result, behaviour) of every run of ``optimizer``, in result order."""
    runs = []
    for r in results:
        if r['spec']['optimizer'] == optimizer:
            with open(osp.join(out_dir, 'runs', r['key'], 'behaviour.json')) as f:
                runs.append((r, json.load(f)))
    return runs


def plot_ausam(results: List[dict], out_dir: str, path: str) -> None:
    """Per (precision, noise), first seed: end-of-training ADLP histogram, clean vs mislabelled,
    and how often each sample was drawn (share of its appearances after epoch 0) vs its ADLP."""
    runs = behaviour_runs(results, 'AUSAM', out_dir)
    firsts = {}
    for r, b in runs:
        firsts.setdefault((r['spec']['precision'], r['spec']['noise']), (r, b))
    if not firsts:
        return
    fig, axes = _panels(len(firsts), 2, width=5.0)
    for i, ((precision, noise), (r, b)) in enumerate(sorted(firsts.items(), key=_panel_order)):
        adlp, noisy = torch.tensor(b['adlp']), torch.tensor(b['mislabelled']).bool()
        seen = torch.tensor(b['dlp_count']) > 0
        freq = torch.tensor(b['draws']).float() / torch.tensor(b['appearances']).clamp_min(1)
        bins = torch.linspace(0, float(adlp[seen].max()) if seen.any() else 1.0, 41).tolist()
        title = f'{precision}, noise {noise:g}, seed {r["spec"]["seed"]}'
        groups = [(m, label, colour) for m, label, colour in
                  ((~noisy & seen, 'clean', 'tab:blue'), (noisy & seen, 'mislabelled', 'tab:red')) if m.any()]
        ax = axes[i][0]
        for mask, label, colour in groups:
            ax.hist(adlp[mask].tolist(), bins=bins, alpha=0.6, color=colour, label=f'{label} ({int(mask.sum())})')
        ax.set(title=f'ADLP at the end, {title}', xlabel='ADLP', ylabel='training samples')
        ax.legend()
        ax = axes[i][1]
        for mask, label, colour in groups:
            ax.scatter(adlp[mask].tolist(), freq[mask].tolist(), s=6, alpha=0.5, color=colour, label=label)
        ax.axhline(r['spec']['sam']['alpha'], color='k', lw=0.8, ls='--', label='uniform (alpha)')
        ax.set(title=f'sampling frequency, {title}', xlabel='ADLP at the end',
               ylabel='drawn / appearances (epochs >= 1)')
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_vsam(results: List[dict], out_dir: str, path: str) -> None:
    """Per (precision, noise): vSAM's realised SAM share per window and its rate base_sr/K, per seed."""
    panels = {}
    for r, b in behaviour_runs(results, 'VSAM', out_dir):
        panels.setdefault((r['spec']['precision'], r['spec']['noise']), []).append((r, b))
    if not panels:
        return
    precisions = [p for p in PRECISIONS if any(k[0] == p for k in panels)]
    noises = sorted({k[1] for k in panels})
    fig, axes = _panels(len(precisions), len(noises), width=4.8)
    for i, precision in enumerate(precisions):
        for j, noise in enumerate(noises):
            ax = axes[i][j]
            for k, (r, b) in enumerate(panels.get((precision, noise), [])):
                colour = f'C{k}'
                xs, shares = window_shares(b['sam_flags'], b['warmup_steps'], b['window'])
                ax.step(xs, shares, where='post', color=colour, label=f'seed {r["spec"]["seed"]} share per window')
                ax.plot(range(len(b['vsam_rate'])), b['vsam_rate'], color=colour, ls='--', lw=0.8)
                ax.axvline(b['warmup_steps'], color='k', lw=0.6, ls=':')
            ax.set_yscale('symlog', linthresh=0.01)  # the warm-up's 1.0 and the windows' few % both show
            ax.set(title=f'vSAM, {precision}, noise {noise:g}', xlabel='iteration', ylabel='SAM share',
                   ylim=(0, 1.2))
            ax.legend(fontsize=7, title='solid: realised, dashed: base_sr/K', title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def window_shares(flags: List[int], warmup: int, window: int):
    """Step-plot points: the warm-up as one block, then the SAM share of each window."""
    edges = [0] + list(range(warmup, len(flags), window)) + [len(flags)]
    edges = sorted(set(edges))
    xs, shares = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        xs.append(lo)
        shares.append(sum(flags[lo:hi]) / (hi - lo))
    return xs + [len(flags)], shares + shares[-1:]


def _panel_order(item):
    (precision, noise), _ = item
    return PRECISIONS.index(precision), noise


# ------------------------------------------------------------------------ main
def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def write_json(path: str, data) -> None:
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def parse_args(argv=None):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument('--dataset', choices=list(RECIPES), default='digits')
    dataset = pre.parse_known_args(argv)[0].dataset
    defaults = DEFAULTS[dataset]
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--dataset', choices=list(RECIPES), default='digits',
                   help='the other defaults below follow the data set (these are for --dataset %s)' % dataset)
    p.add_argument('--data-root', help='where the CIFAR data is (default: the recipe\'s data/cifar)')
    p.add_argument('--noise', type=float, nargs='+', default=defaults['noise'], help='label-noise rates')
    p.add_argument('--qat-noise', type=float, nargs='+', default=defaults['qat_noise'],
                   help='the noise rates at which QAT runs (default: all of --noise)')
    p.add_argument('--seeds', type=int, nargs='+', default=defaults['seeds'])
    p.add_argument('--precision', nargs='+', choices=PRECISIONS, default=defaults['precision'])
    p.add_argument('--optimizers', nargs='+', choices=ORDER, default=defaults['optimizers'],
                   help='RandomScheduleSAM brings VSAM along (it takes its share); AUSAM-IW / AUSAM-EMA '
                        '(AUSAM\'s importance weighting / EMA of DLP) run with label noise, float only')
    p.add_argument('--epochs-float', type=int, default=defaults['epochs_float'])
    p.add_argument('--epochs-qat', type=int, default=defaults['epochs_qat'])
    p.add_argument('--rho', type=float, default=defaults['rho'], help='rho of every SAM-family optimizer')
    p.add_argument('--alpha', type=float, default=defaults['alpha'], help='AUSAM / UniformSubsetSAM subset share')
    p.add_argument('--ausam-ramp', type=float, default=defaults['ausam_ramp'],
                   help="AUSAM's f_max ramp, as a share of the epochs")
    p.add_argument('--vsam-warmup', type=float, default=defaults['vsam_warmup'],
                   help="vSAM's all-SAM warm-up, as a share of the epochs")
    p.add_argument('--vsam-window', type=int, default=defaults['vsam_window'],
                   help="vSAM's window K in iterations (default: the class's 50)")
    p.add_argument('--out-dir', help='default work_dirs/benchmark/accuracy (digits), '
                                     'work_dirs/benchmark/accuracy_cifar10 (cifar10)')
    p.add_argument('--force', action='store_true', help='redo runs that are cached')
    p.add_argument('--isolate', action='store_true', help='one subprocess per run')
    p.add_argument('--jobs', type=int, default=1, help='worker processes sharing the (noise, seed) groups')
    p.add_argument('--threads', type=int, default=1, help='torch threads per run')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    p.add_argument('--claims', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.worker is None:
        if args.epochs_float < 1 or args.epochs_qat < 1:
            p.error('--epochs-float and --epochs-qat must be >= 1')
        if any(not 0 <= n < 1 for n in args.noise):
            p.error('--noise rates must lie in [0, 1)')
        if not 0 < args.alpha <= 1 or args.rho < 0:
            p.error('need 0 < --alpha <= 1 and --rho >= 0')
        if args.jobs < 1:
            p.error(f'--jobs must be >= 1, got {args.jobs}')
        if any(p_ not in RECIPES[args.dataset] for p_ in args.precision):
            p.error(f'--dataset {args.dataset} has recipes for {sorted(RECIPES[args.dataset])}, '
                    f'not {args.precision}')
        name = 'accuracy' if args.dataset == 'digits' else f'accuracy_{args.dataset}'
        args.out_dir = osp.abspath(args.out_dir or osp.join('work_dirs', 'benchmark', name))
        args.data_root = None if args.data_root is None else osp.abspath(args.data_root)
        args.noise, args.seeds = sorted(set(args.noise)), sorted(set(args.seeds))
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.worker is not None:
        worker(args.worker)
        return
    os.makedirs(args.out_dir, exist_ok=True)
    if args.claims is not None:
        run_all(args)
        return
    if args.jobs > 1:
        run_parallel(args)
        args.force = False  # the workers redid what --force asked for
    results = run_all(args)
    summary = summarise(results)
    claim_rows = claims(summary)
    config = {k: v for k, v in vars(args).items() if k not in ('worker', 'claims', 'argv')}
    write_json(osp.join(args.out_dir, 'results.json'),
               dict(config=config, environment=environment(), summary=summary, claims=claim_rows, runs=results))
    table = markdown(summary, claim_rows, config)
    with open(osp.join(args.out_dir, 'results.md'), 'w') as f:
        f.write(table)
    plot_accuracy_vs_cost(summary, osp.join(args.out_dir, 'accuracy_vs_cost.png'))
    plot_ausam(results, args.out_dir, osp.join(args.out_dir, 'ausam_behaviour.png'))
    plot_vsam(results, args.out_dir, osp.join(args.out_dir, 'vsam_behaviour.png'))
    print(table)


if __name__ == '__main__':
    main()
