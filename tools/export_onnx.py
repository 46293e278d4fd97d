#!/usr/bin/env python3
"""Export a trained classifier to ONNX (QCDQ for LSQ models) and check it in onnxruntime.

    python tools/export_onnx.py CONFIG CHECKPOINT [--out FILE.onnx] [--verify]
                                [--tolerance 0.5] [--cfg-options k=v ...]

The graph takes raw images (normalisation inside). With ``--verify`` the test split of
the config is classified by PyTorch and by onnxruntime; the script fails when their
top-1 accuracies differ by more than ``--tolerance`` percentage points.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import MODELS  # noqa: E402
from mmengine.runner import Runner, load_checkpoint  # noqa: E402

from common.engine.entry import import_project_modules  # noqa: E402
from qat_sam.export import deployable, export_onnx, top1_torch_and_onnx  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Export a classifier checkpoint to ONNX')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--out', help='ONNX file (default: the checkpoint path with .onnx)')
    parser.add_argument('--verify', action='store_true',
                        help='compare PyTorch and onnxruntime top-1 on the test split')
    parser.add_argument('--tolerance', type=float, default=0.5,
                        help='allowed top-1 difference in percentage points (with --verify)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def test_split_batches(cfg):
    """``(images, labels)`` of the config's test split, images as the data set yields them."""
    import torch
    loader = Runner.build_dataloader(cfg.test_dataloader)
    for batch in loader:
        inputs = batch['inputs']
        images = inputs if isinstance(inputs, torch.Tensor) else torch.stack(list(inputs))
        labels = torch.stack([s.gt_label for s in batch['data_samples']])
        yield images.float(), labels


def main():
    args = parse_args()
    import_project_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    network = deployable(model)
    example, _ = next(test_split_batches(cfg))
    out = args.out or osp.splitext(args.checkpoint)[0] + '.onnx'
    kind = export_onnx(network, example[:1], out)
    print(f'wrote {out} ({kind})')
    if args.verify:
        torch_top1, onnx_top1, diff = top1_torch_and_onnx(network, out, test_split_batches(cfg))
        print(f'top-1 on the test split: PyTorch {torch_top1:.2f}%, onnxruntime {onnx_top1:.2f}% '
              f'(max |logit difference| {diff:.2e})')
        if abs(torch_top1 - onnx_top1) > args.tolerance:
            sys.exit(f'onnxruntime top-1 differs from PyTorch by more than {args.tolerance} points')


if __name__ == '__main__':
    main()
