#!/usr/bin/env python3
"""Train with an MMEngine config, as MMPose's ``tools/train.py`` does.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher pytorch]

A thin MMPose-style entry point: configs carry everything SAM needs (``custom_imports``,
the SAM optimizer-wrapper constructor and train loop), so they run as well under MMPose's
own ``tools/train.py`` or ``Runner.from_cfg``. Several processes: ``torchrun --nproc_per_node=N tools/train.py CONFIG --launcher pytorch``
(on GPUs with NCCL; on CPU with gloo).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from common.engine.entry import (apply_common_args, distributed_session, enable_amp,  # noqa: E402
                                 import_project_modules, setup_launcher)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model with an MMEngine config')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir if no '
                             'path is given')
    parser.add_argument('--amp', action='store_true', help='enable automatic mixed precision (fp16)')
    parser.add_argument('--no-validate', action='store_true', help='skip validation during training')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale the LR with the batch size')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value pairs')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg, args):
    apply_common_args(cfg, args)
    if args.amp:
        enable_amp(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', {})['enable'] = True
    setup_launcher(cfg, args.launcher)
    return cfg


def main():
    args = parse_args()
    import_project_modules()
    # The group is shut down on every rank when this block ends (see distributed_session);
    # no name holds the Runner, so its DDP wrapper (and the group it holds) can be freed.
    with distributed_session():
        cfg = merge_args(Config.fromfile(args.config), args)
        Runner.from_cfg(cfg).train()


if __name__ == '__main__':
    main()
