"""The accuracy grid executed: every planned run, reused from the cache where finished.

``run_all`` trains what is missing, in this process (or one subprocess per run with
``args.isolate``). ``run_parallel`` starts ``args.jobs`` worker processes of the calling
script that share the (noise, seed) groups (each group's runs depend on each other:
QAT on the float SGD checkpoint, RandomScheduleSAM on vSAM's share); ``run_all`` then
only collects their results from the cache.
"""
import os
import os.path as osp
import shutil
import sys
import tempfile
from typing import Dict, List

from tqdm import tqdm

from .accuracy_plan import checkpoint_path, make_spec, planned_runs
from .mmengine_runs import execute_isolated, execute_run
from .run_cache import cached_result, groups_by
from .workers import claim, run_workers


def run_all(args) -> List[dict]:
    """Every planned run, in plan order, from the cache where finished.

    With ``args.claims`` (a worker of :func:`run_parallel`) only the groups this process
    claims run, one after another as it reaches them.
    """
    runs_dir = osp.join(args.out_dir, 'runs')
    done: Dict[tuple, dict] = {}
    plan = planned_runs(args)
    groups = groups_by(plan, key=lambda run: run[2:]) if args.claims else [plan]
    mine = (run for group in groups
            if not args.claims or claim(args.claims, 'noise{:g}-seed{}'.format(*group[0][2:]))
            for run in group)
    bar = tqdm(total=None if args.claims else len(plan), unit='run', dynamic_ncols=True)  # a worker: its groups
    fresh = 0
    for precision, optimizer, noise, seed in mine:
        spec = make_spec(precision, optimizer, noise, seed, args, done)
        run_dir = osp.join(runs_dir, spec.key)
        bar.set_description(spec.key.rsplit('-', 1)[0])
        result = None if args.force else cached_result(spec.as_dict(), run_dir, checkpoint_path(spec, run_dir))
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


def run_parallel(args, script: str, cwd: str) -> None:
    """``args.jobs`` processes of ``script`` (given ``args.argv`` plus ``--claims``) share the groups.

    Progress goes to ``out_dir/worker<i>.log``; on CUDA each worker gets its own GPU.
    """
    os.makedirs(osp.join(args.out_dir, 'claims'), exist_ok=True)
    claims_dir = tempfile.mkdtemp(prefix=f'{os.getpid()}-', dir=osp.join(args.out_dir, 'claims'))  # this call's
    command = [sys.executable, script, *args.argv, '--out-dir', args.out_dir, '--jobs', '1',
               '--claims', claims_dir] + (['--data-root', args.data_root] if args.data_root else [])
    print(f'{args.jobs} workers; progress in {osp.join(args.out_dir, "worker*.log")}', flush=True)
    try:
        run_workers([command] * args.jobs, cwd, args.out_dir)
    finally:
        shutil.rmtree(claims_dir, ignore_errors=True)
