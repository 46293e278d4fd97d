#!/usr/bin/env python3
"""The demo ``make demo`` runs: the project's recipes on its embedded data, on CPU or GPU.

Each stage is a plain ``python tools/train.py CONFIG`` (its log streams as usual); at the
end a table gives each stage's final validation metric, training images/s and wall time.

    python tools/demo.py [--only qat|pose]

Stages:
  1. float SmallCNN on scikit-learn's digits (40% label noise on the training labels),
  2. LSQ W4A4 QAT of it with AUSAM (the float checkpoint of stage 1 is its start),
  3. a small SimpleBaseline (MMPose) with AUSAM on a generated COCO-format keypoint data
     set (``tools/make_pose_demo_data.py`` writes it first), COCO AP by MMPose's CocoMetric.
"""
import argparse
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import List

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)  # the repository root, for `common`
from common.benchmark.records import run_metric  # noqa: E402


POSE_DEMO = 'configs/pose/demo/td-hm_res18_ausam-1xb32-12e_posedemo-96x64.py'


@dataclass
class Stage:
    group: str
    title: str
    config: str
    metric: str
    prepare: List[str] = field(default_factory=list)  # a script run first (e.g. data)


STAGES = [
    Stage('qat', 'float SmallCNN, digits', 'configs/qat/digits/smallcnn_1xb64-12e_digits.py', 'accuracy/top1'),
    Stage('qat', 'LSQ W4A4 + AUSAM, digits', 'configs/qat/digits/lsq-w4a4_smallcnn_1xb64-10e_digits_ausam.py',
          'accuracy/top1'),
    Stage('pose', 'SimpleBaseline R18 + AUSAM, generated COCO keypoints', POSE_DEMO, 'coco/AP',
          prepare=['tools/make_pose_demo_data.py']),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', choices=sorted({s.group for s in STAGES}), help='run one group of stages')
    args = parser.parse_args()
    rows = []
    for stage in STAGES:
        if args.only and stage.group != args.only:
            continue
        command = [sys.executable, 'tools/train.py', stage.config]
        print(f'\n=== {stage.title}: {" ".join(command[1:])}', flush=True)
        start = time.perf_counter()
        if stage.prepare:
            subprocess.run([sys.executable] + stage.prepare, cwd=ROOT, check=True)
        subprocess.run(command, cwd=ROOT, check=True)
        seconds = time.perf_counter() - start
        name = osp.splitext(osp.basename(stage.config))[0]
        value, throughput = run_metric(osp.join(ROOT, 'work_dirs', name), stage.metric)
        rows.append((stage.title, stage.metric, value, throughput['images_per_s'], seconds))
    print('\n| stage | metric | value | train images/s | wall time |')
    print('|---|---|---:|---:|---:|')
    for title, metric, value, images_per_s, seconds in rows:
        shown = f'{value:.3f}' if abs(value) <= 1 else f'{value:.2f}'  # AP in [0, 1], accuracy in %
        print(f'| {title} | {metric} | {shown} | {images_per_s:.0f} | {seconds:.0f} s |')


if __name__ == '__main__':
    main()
