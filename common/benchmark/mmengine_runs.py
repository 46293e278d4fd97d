"""One accuracy run: the recipe with the run's overrides, trained and tested by MMEngine's Runner.

Runs execute in the calling process, one Runner after another (experiment names are
unique, log handlers are closed and MMEngine's named instances dropped after each run;
the run's MMEngine log goes to ``runs/<run>/console.log``), or each in a fresh process
(:func:`execute_isolated`, ``python -m common.benchmark.mmengine_runs JOB THREADS``). Both
give the same top-1 bit for bit. A :class:`ProbeHook` records what the optimizer did each
iteration (SAM or not, vSAM's rate, AUSAM's draws per sample) into ``behaviour.json``.
"""
import contextlib
import dataclasses
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import List, Optional

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.visualization import Visualizer

from common.engine import use_sam
from common.engine.entry import import_project_modules

from .accuracy_plan import RECIPES, ROOT, RunSpec, checkpoint_path
from .records import read_json, write_json


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


def config_summary(cfg: Config) -> dict:
    """The parts of the final config that differ between runs."""
    data = cfg.train_dataloader
    return dict(recipe=osp.relpath(cfg.filename, ROOT), optim_wrapper=cfg.optim_wrapper.to_dict(),
                param_scheduler=[dict(s) for s in cfg.param_scheduler], train_cfg=cfg.train_cfg.to_dict(),
                dataset=data.dataset.to_dict(), batch_size=data.batch_size, randomness=dict(cfg.randomness),
                quantization=cfg.model.get('quantization'), float_checkpoint=cfg.model.get('float_checkpoint'))


def execute_isolated(spec: RunSpec, run_dir: str, start_checkpoint: Optional[str], threads: int,
                     data_root: Optional[str] = None) -> dict:
    """``execute_run`` in a fresh process (``--isolate``): ``python -m common.benchmark.mmengine_runs``."""
    os.makedirs(run_dir, exist_ok=True)
    job = osp.join(run_dir, 'job.json')
    write_json(job, dict(spec=dataclasses.asdict(spec), run_dir=run_dir, start_checkpoint=start_checkpoint,
                         data_root=data_root))
    command = [sys.executable, '-m', 'common.benchmark.mmengine_runs', job, str(threads)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f'run {spec.key} failed (exit {done.returncode}); see '
                           f'{osp.join(run_dir, "console.log")}\n{done.stderr[-3000:]}')
    return read_json(osp.join(run_dir, 'result.json'))


def worker(job_path: str) -> None:
    """The entry of :func:`execute_isolated`: one run from a job file."""
    job = read_json(job_path)
    execute_run(RunSpec(**job['spec']), job['run_dir'], job['start_checkpoint'], job.get('data_root'))


if __name__ == '__main__':
    torch.set_num_threads(int(sys.argv[2]))
    worker(sys.argv[1])
