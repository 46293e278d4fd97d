"""Training throughput of SGD and the SAM family, side by side, on a CIFAR ResNet-18
(float, or its LSQ-quantized version with ``--lsq-bits 4``).

What it measures, for each optimizer, on one fixed synthetic batch (random 3x32x32
images, 10 classes; the data does not matter for speed):

* images/s of full training steps (``opt.step``), median and min-max over repeats;
* the ratio to plain SGD (one forward/backward + ``torch.optim.SGD.step``), the
  median over repeats of the ratio within each repeat;
* the forward/backward work actually run: sample-passes per step in units of the
  batch (SAM 2, AUSAM at alpha 0.5 about 1, schedule-based ones in between), counted
  by a closure that records every call and the batch rows it evaluated;
* the optimizer's own overhead: step time minus the time of the passes it ran, where
  a plain forward+backward on the full batch and on half the batch (AUSAM's subset)
  is timed in the same round (other subset sizes are interpolated linearly); as % of
  the step time, SGD's own included;
* memory: the optimizer's own state (every tensor it holds that is not a parameter:
  momentum, SAM's backup, vSAM's PSF, ...), exact on any device; and the peak over
  building the model and optimizer and the warm-up steps: on CUDA the peak allocated
  minus what the other entries hold, on CPU (Linux) the growth of the peak RSS of a
  fresh process that builds and warms up that optimizer alone (until it has run a SAM
  step, for the schedule-based ones).

Every entry is built and warmed up first, then the repeats run round-robin (repeat r
of every optimizer and of the reference passes together), so load drifts on a shared
machine hit all entries alike.

All SAM-family optimizers wrap SGD (lr 0.05, momentum 0.9, weight decay 5e-4) with
their class defaults, except: AUSAM/UniformSubsetSAM alpha 0.5 (at epoch 1, epoch 0
being plain SAM), VSAM at a fixed SAM share and RandomScheduleSAM at that same share
(``--sam-share``; give it the share vSAM reached in training, as ``tools/benchmark.py``
does), LookSAM k=5. Adaptive VSAM (``--optimizers VSAM``, ``warmup_steps=0``) is not in
the default set: a short run sees only its first windows at one SAM step per 50.

Run::

    python tools/benchmark_optimizers.py                              # CUDA if available
    python tools/benchmark_optimizers.py --device cpu --iters 3 --repeats 3
    python tools/benchmark_optimizers.py --lsq-bits 4                 # W4A4 LSQ ResNet-18
    python tools/benchmark_optimizers.py --optimizers SGD SAM AUSAM VSAM-fixed --sam-share 0.12 \\
        --amp --channels-last --json bench.json --markdown bench.md --plot bench.png
"""
import argparse
import json
import os.path as osp
import sys
from pathlib import Path

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # the repository root, for `common`
from common.benchmark.environment import cpu_name, environment  # noqa: E402
from common.benchmark.plots import plot_vs_sgd  # noqa: E402
from common.benchmark.speed import DEFAULT_OPTIMIZERS, OPTIMIZERS, measure  # noqa: E402
from common.benchmark.tables import speed_markdown  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if cuda else 'cpu')
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--depth', type=int, choices=[18, 20], default=18,
                   help='CIFAR ResNet depth (20: a small network for quick runs)')
    p.add_argument('--warmup', type=int, default=None, help='warm-up iterations (3 on cpu, 10 on cuda)')
    p.add_argument('--iters', type=int, default=None, help='timed iterations per repeat (5 on cpu, 50 on cuda)')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--optimizers', nargs='+', choices=OPTIMIZERS, default=DEFAULT_OPTIMIZERS)
    p.add_argument('--sam-share', type=float, default=0.5,
                   help='SAM share of VSAM-fixed and RandomScheduleSAM, in (0, 1]')
    p.add_argument('--lsq-bits', type=int, choices=range(2, 9), metavar='{2..8}',
                   help='LSQ-quantize the network to W<b>A<b> (first and last layer 8 bits)')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--amp', action='store_true', help='bf16 autocast')
    p.add_argument('--json', type=Path, help='write results, configuration and environment here')
    p.add_argument('--markdown', type=Path, help='write the table here')
    p.add_argument('--plot', type=Path, help='write a PNG of images/s relative to SGD here')
    p.add_argument('--no-cpu-peak', action='store_true',
                   help='CPU: skip the peak-RSS measurement (a fresh process per optimizer)')
    p.add_argument('--peak-of', choices=OPTIMIZERS, help=argparse.SUPPRESS)  # child: one CPU peak
    args = p.parse_args(argv)
    gpu = args.device == 'cuda'
    args.warmup = (10 if gpu else 3) if args.warmup is None else args.warmup
    args.iters = (50 if gpu else 5) if args.iters is None else args.iters
    if gpu and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device is available')
    if args.batch_size < 2 or args.iters < 1 or args.repeats < 1 or args.warmup < 1:
        p.error('need --batch-size >= 2, --iters >= 1, --repeats >= 1, --warmup >= 1')
    if not 0 < args.sam_share <= 1:
        p.error(f'--sam-share must lie in (0, 1], got {args.sam_share}')
    args.device = torch.device(args.device)
    return args


def main(argv=None):
    args = parse_args(argv)
    measured = measure(args, osp.abspath(__file__))
    if measured is None:  # the child process of a CPU peak measurement
        return
    results, pass_s = measured
    cuda = args.device.type == 'cuda'
    device_name = torch.cuda.get_device_name(args.device) if cuda else cpu_name()
    model = f'ResNet-{args.depth} (CIFAR{", LSQ W%dA%d" % (args.lsq_bits, args.lsq_bits) if args.lsq_bits else ""})'
    table = speed_markdown(results, pass_s, args, device_name, model)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + '\n')
    if args.plot and 'SGD' in results:
        plot_vs_sgd(results, args, f'{model}, batch {args.batch_size}, {device_name}', args.plot)
    if args.json:
        config = {k: str(v) if isinstance(v, (Path, torch.device)) else v for k, v in vars(args).items()}
        env = dict(environment(ROOT), device=device_name, torch_threads=torch.get_num_threads())
        args.json.write_text(json.dumps(dict(config=config, environment=env,
                                             pass_ms={str(k): [1e3 * t for t in v] for k, v in pass_s.items()},
                                             results=results), indent=2) + '\n')


if __name__ == '__main__':
    main()
