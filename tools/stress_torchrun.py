#!/usr/bin/env python3
"""Stress check: a finished 2-rank torchrun job exits 0 on every rank, even on a busy machine.

Claim: after a successful ``tools/train.py`` (and ``tools/test.py``) run under
``torchrun --nproc_per_node=2 ... --launcher pytorch`` (gloo on CPU), every rank exits 0,
so torchrun reports the job as succeeded. Before ``distributed_session`` (see
``common/engine/entry.py``) about 1 job in 13 on a loaded 2-core machine had a rank abort
at interpreter exit ("terminate called without an active exception", exit -6).

    python tools/stress_torchrun.py [--jobs 20] [--burners N] [--iters 10] [--no-test]
                                    [--timeout 300] [--out work_dirs/stress_torchrun/results.json]

Runs ``--jobs`` consecutive jobs while ``--burners`` busy-loop processes (default: one per
core) keep every core busy, the condition under which the abort showed up. Each job is
``torchrun --nproc_per_node=2 tools/train.py`` on the toy SAM model of
``tests/common/engine/toy_registered.py`` (the model of ``tests/common/engine/test_torchrun.py``),
then ``torchrun --nproc_per_node=2 tools/test.py`` on its last checkpoint. It measures, per
job and stage, torchrun's exit code, each rank's exit status (0 for every rank when
torchrun exits 0; otherwise what torchrun's failure summary reports, None for a rank it
did not report, e.g. one it stopped after another failed) and the wall time; it prints
a line per job and "K/N jobs exited 0", writes every result to ``--out`` (each stage's
full output next to it, in ``job_XX/``) and exits 1 unless every job exited 0. The
burners are killed at the end in every case. Not a timed CI test: 30-50 s per job
(train 17-26 s, test 14-23 s) on a 2-core CPU kept busy by the burners.
"""
import argparse
import json
import os
import os.path as osp
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)  # the repository root, for `common`
from common.benchmark.environment import cpu_name  # noqa: E402
TOY_DIR = osp.join(ROOT, 'tests', 'common', 'engine')  # toy_registered.py: ToyMLP, ToyData, ToyAccuracy
NPROC = 2

CONFIG = """
custom_imports = dict(imports=['toy_registered'], allow_failed_imports=False)
default_scope = 'mmengine'
model = dict(type='ToyMLP')
train_dataloader = dict(dataset=dict(type='ToyData'), batch_size=4, num_workers=0,
                        sampler=dict(type='DefaultSampler', shuffle=False),
                        collate_fn=dict(type='default_collate'))
train_cfg = dict(type='SAMIterBasedTrainLoop', max_iters={iters})
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
                     sam=dict(type='SAM', rho=0.1))
test_dataloader = dict(dataset=dict(type='ToyData'), batch_size=4, num_workers=0,
                       sampler=dict(type='DefaultSampler', shuffle=False),
                       collate_fn=dict(type='default_collate'))
test_evaluator = dict(type='ToyAccuracy')
test_cfg = dict()
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000))
randomness = dict(seed=0)
"""

# torchrun's failure summary (torch.distributed.elastic ChildFailedError), one block per failed rank.
FAILURE = re.compile(r'rank\s*:\s*(\d+)\s*\(local_rank:\s*\d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def rank_status(returncode: int, output: str) -> dict:
    """Exit status per rank: torchrun exits 0 only when every worker exited 0."""
    if returncode == 0:
        return {r: 0 for r in range(NPROC)}
    status = {r: None for r in range(NPROC)}
    for rank, code in FAILURE.findall(output):
        status[int(rank)] = int(code)
    return status


def stop(proc: subprocess.Popen, marker: str) -> None:
    """Stop a torchrun that ran past its time, and its workers (they run in sessions of their own)."""
    proc.terminate()  # torchrun stops its workers: SIGTERM, then SIGKILL after 30 s
    try:
        proc.wait(timeout=45)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pid in [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]:
        try:  # a worker left behind: its command line names this job's own work dir
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                if marker.encode() in f.read():
                    os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def torchrun(script: str, args: list, work_dir: str, log_path: str, timeout: float) -> dict:
    """One 2-rank torchrun of ``tools/<script>``: exit code, rank statuses, seconds."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TOY_DIR, ROOT]), OMP_NUM_THREADS='1',
               CUDA_VISIBLE_DEVICES='')  # gloo on CPU, as in CI
    command = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={NPROC}',
               f'--master_port={free_port()}', osp.join(ROOT, 'tools', script), *args,
               '--work-dir', work_dir, '--launcher', 'pytorch']
    start = time.perf_counter()
    with open(log_path, 'w') as log:  # a file, not a pipe: a stray worker cannot block the read
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            stop(proc, work_dir)
        except BaseException:  # Ctrl-C or SIGTERM: take the job in flight down too
            stop(proc, work_dir)
            raise
    seconds = time.perf_counter() - start
    with open(log_path, errors='replace') as f:
        output = f.read()
    return dict(returncode=proc.returncode, ranks=rank_status(proc.returncode, output), seconds=round(seconds, 2),
                timed_out=timed_out, aborted='terminate called' in output, log=osp.relpath(log_path, ROOT))


def run_job(index: int, cfg_path: str, out_dir: str, iters: int, test: bool, timeout: float) -> dict:
    job_dir = osp.join(out_dir, f'job_{index:02d}')
    work_dir = osp.join(job_dir, 'work')
    shutil.rmtree(job_dir, ignore_errors=True)  # nothing from an earlier run counts for this one
    os.makedirs(job_dir)
    stages = dict(train=torchrun('train.py', [cfg_path], work_dir, osp.join(job_dir, 'train.log'), timeout))
    checkpoint = osp.join(work_dir, f'iter_{iters}.pth')
    if test and stages['train']['returncode'] == 0 and osp.exists(checkpoint):
        stages['test'] = torchrun('test.py', [cfg_path, checkpoint], work_dir, osp.join(job_dir, 'test.log'),
                                  timeout)
    ok = all(s['returncode'] == 0 for s in stages.values()) and (not test or 'test' in stages)
    return dict(job=index, ok=ok, checkpoint=osp.exists(checkpoint), **stages)


def start_burners(n: int) -> list:
    """``n`` busy-loop processes, one core each (while the jobs run)."""
    return [subprocess.Popen([sys.executable, '-c', 'while True: pass'], stdin=subprocess.DEVNULL)
            for _ in range(n)]


def stop_burners(burners: list) -> None:
    for p in burners:
        if p.poll() is None:
            p.kill()
    for p in burners:
        p.wait()


def describe(stage: dict) -> str:
    ranks = ' '.join(f'{r}:{c}' for r, c in stage['ranks'].items())
    extra = ' TIMEOUT' if stage['timed_out'] else ''
    extra += ' ("terminate called")' if stage['aborted'] else ''
    return f"rc {stage['returncode']} (ranks {ranks}) {stage['seconds']:.1f} s{extra}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] + ' (20 jobs take 10-17 minutes)',
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--jobs', type=int, default=20, help='consecutive 2-rank jobs')
    parser.add_argument('--burners', type=int, default=os.cpu_count() or 2,
                        help='busy-loop processes running alongside (one per core)')
    parser.add_argument('--iters', type=int, default=10, help='training iterations per job')
    parser.add_argument('--no-test', action='store_true', help='skip tools/test.py on the checkpoint')
    parser.add_argument('--timeout', type=float, default=300, help='seconds per torchrun before it is killed')
    parser.add_argument('--out', default='work_dirs/stress_torchrun/results.json')
    args = parser.parse_args()
    if args.jobs < 1 or args.iters < 1 or args.burners < 0:
        parser.error('need --jobs >= 1, --iters >= 1 and --burners >= 0')

    out = args.out if osp.isabs(args.out) else osp.join(ROOT, args.out)
    out_dir = osp.dirname(out)
    os.makedirs(out_dir, exist_ok=True)
    cfg_path = osp.join(out_dir, 'toy_cfg.py')
    with open(cfg_path, 'w') as f:
        f.write(CONFIG.format(iters=args.iters))

    # SIGTERM (a scheduler, `kill`) unwinds through the finally below like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    jobs = []
    burners = start_burners(args.burners)
    try:
        for i in range(1, args.jobs + 1):
            job = run_job(i, cfg_path, out_dir, args.iters, not args.no_test, args.timeout)
            jobs.append(job)
            line = f"job {i}/{args.jobs}: train {describe(job['train'])}"
            if 'test' in job:
                line += f", test {describe(job['test'])}"
            print(line + (' -> ok' if job['ok'] else ' -> FAILED'), flush=True)
    finally:
        stop_burners(burners)
        passed = sum(j['ok'] for j in jobs)
        with open(out, 'w') as f:
            json.dump(dict(claim='every rank of a finished 2-rank torchrun job exits 0', jobs_ok=passed,
                           jobs_run=len(jobs), jobs_requested=args.jobs, burners=args.burners,
                           iters=args.iters, test=not args.no_test, command=sys.argv, machine=cpu_name(),
                           date=time.strftime('%Y-%m-%d %H:%M'), jobs=jobs), f, indent=1)
    print(f'{passed}/{args.jobs} jobs exited 0 (results: {osp.relpath(out, ROOT)})')
    sys.exit(0 if passed == args.jobs else 1)


if __name__ == '__main__':
    main()
