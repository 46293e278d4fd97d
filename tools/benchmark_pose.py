#!/usr/bin/env python3
"""The pose demo with each optimizer at the same epochs: COCO AP against cost.

Trains ``configs/pose/demo/td-hm_res18_[<variant>-]1xb32-12e_posedemo-96x64.py`` (MMPose's
Adam, SAM, AUSAM, its control UniformSubsetSAM at the same alpha, vSAM) through ``tools/train.py`` on the generated data set and writes a
markdown table (COCO AP on the val split by MMPose's CocoMetric, training images/s, wall
time, forward/backward sample-passes per image) and ``results.json``::

    python tools/benchmark_pose.py [--variants adam sam ausam uniform vsam] [--seeds 0 1]
                                   [--epochs N] [--out-dir work_dirs/benchmark/pose]

Runs execute one after another; wall times are comparable only on an otherwise idle
machine, sample-passes always are.
"""
import argparse
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)  # the repository root, for `common`
from common.benchmark.environment import environment  # noqa: E402
from common.benchmark.records import run_metric, write_json  # noqa: E402
from common.benchmark.tables import pose_markdown  # noqa: E402

CONFIG = 'configs/pose/demo/td-hm_res18_{}1xb32-12e_posedemo-96x64.py'
VARIANTS = ('adam', 'sam', 'ausam', 'uniform', 'vsam')
LABELS = dict(adam='Adam', sam='SAM', ausam='AUSAM', uniform='UniformSubsetSAM', vsam='vSAM')


def run(variant: str, seed: int, out_dir: str, epochs=None) -> dict:
    config = CONFIG.format('' if variant == 'adam' else f'{variant}-')
    work_dir = osp.join(out_dir, f'{variant}_seed{seed}')
    command = [sys.executable, 'tools/train.py', config, '--work-dir', work_dir,
               '--cfg-options', f'randomness.seed={seed}']
    if epochs is not None:  # validate once, at the end; the LR schedule stays the config's
        command += [f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}']
    print('\n===', ' '.join(command[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    ap, throughput = run_metric(osp.join(ROOT, work_dir), 'coco/AP')
    return dict(variant=variant, seed=seed, ap=ap, images_per_s=throughput['images_per_s'], wall_s=wall,
                passes_per_image=throughput['sample_passes'] / throughput['images'])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--out-dir', default='work_dirs/benchmark/pose')
    parser.add_argument('--epochs', type=int, help="fewer than the config's 12 epochs (a smoke run)")
    args = parser.parse_args()
    subprocess.run([sys.executable, 'tools/make_pose_demo_data.py'], cwd=ROOT, check=True)
    runs = [run(v, s, args.out_dir, args.epochs) for s in args.seeds for v in args.variants]
    md = pose_markdown(runs, LABELS)
    print('\n' + md)
    with open(osp.join(ROOT, args.out_dir, 'results.md'), 'w') as f:
        f.write(md + '\n')
    write_json(osp.join(ROOT, args.out_dir, 'results.json'), dict(runs=runs, environment=environment(ROOT)))


if __name__ == '__main__':
    main()
