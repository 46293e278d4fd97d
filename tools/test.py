#!/usr/bin/env python3
"""Evaluate a checkpoint with an MMEngine config, as MMPose's ``tools/test.py`` does.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.pkl]
                         [--show-dir DIR] [--cfg-options k=v ...] [--launcher pytorch]

Checkpoints given here are trusted (loaded with ``weights_only=False``; see
``common/engine/checkpoint.py``).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from common.engine.entry import (apply_common_args, distributed_session, import_project_modules,  # noqa: E402
                                 setup_launcher)


def parse_args():
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save evaluation results and logs')
    parser.add_argument('--out', help='dump predictions to this pickle file')
    parser.add_argument('--show-dir', help='directory (under the work dir) for visualized predictions')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value pairs')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg, args):
    apply_common_args(cfg, args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir:
        vis = cfg.get('default_hooks', {}).get('visualization')
        if vis is None:
            raise ValueError('--show-dir needs a visualization hook in default_hooks (pose configs have one).')
        vis.enable = True
        vis.out_dir = args.show_dir
    if args.out:
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(cfg.test_evaluator, dict) else list(cfg.test_evaluator)
        cfg.test_evaluator.append(dict(type='DumpResults', out_file_path=args.out))
    setup_launcher(cfg, args.launcher)
    return cfg


def main():
    args = parse_args()
    import_project_modules()
    # The group is shut down on every rank when this block ends (see distributed_session);
    # no name holds the Runner, so its DDP wrapper (and the group it holds) can be freed.
    with distributed_session():
        cfg = merge_args(Config.fromfile(args.config), args)
        Runner.from_cfg(cfg).test()


if __name__ == '__main__':
    main()
