"""Markdown tables of the benchmarks' results."""
import statistics
from typing import List

import torch


def accuracy_markdown(summary: List[dict], claim_rows: List[dict], config: dict, draws: List[dict] = ()) -> str:
    """``results.md``: the overview, the summary table, the claims table (with how they were
    made) and, with ``draws``, the subset optimizers' draw frequencies."""
    def ratio(x):
        return '-' if x is None else f'{x:.2f}x'

    lines = [overview_markdown(summary), '',
             '| noise | precision | optimizer | top-1 mean ± std | passes vs SGD | passes vs SAM | time vs SGD '
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
    if draws:
        lines += ['', draws_markdown(draws)]
    return '\n'.join(lines) + '\n'


def overview_markdown(summary: List[dict]) -> str:
    """One row per optimizer, one column per (precision, noise): top-1 mean ± std over seeds,
    then sample-passes and train time relative to SGD (mean over the columns, per precision)."""
    from .accuracy_plan import ORDER, PRECISIONS
    columns = sorted({(r['precision'], r['noise']) for r in summary}, key=lambda c: (PRECISIONS.index(c[0]), c[1]))
    precisions = [p for p in PRECISIONS if any(c[0] == p for c in columns)]
    cells = {(r['optimizer'], r['precision'], r['noise']): r for r in summary}
    head = [f'{p}, noise {n:g}' for p, n in columns]
    lines = ['| optimizer | ' + ' | '.join(head) + f' | sample-passes vs SGD ({" / ".join(precisions)}) '
             f'| train time vs SGD ({" / ".join(precisions)}) |',
             '|---|' + '---:|' * (len(columns) + 2)]

    def relative(optimizer, precision, key):
        values = [cells[(optimizer, p, n)][key] for p, n in columns
                  if p == precision and (optimizer, p, n) in cells and cells[(optimizer, p, n)][key] is not None]
        return f'{statistics.mean(values):.2f}' if values else '-'

    for optimizer in [o for o in ORDER if any(k[0] == o for k in cells)]:
        row = [f'{cells[(optimizer, p, n)]["top1_mean"]:.2f} ± {cells[(optimizer, p, n)]["top1_std"]:.2f}'
               if (optimizer, p, n) in cells else '-' for p, n in columns]
        passes = ' / '.join(relative(optimizer, p, 'passes_vs_SGD') for p in precisions)
        times = ' / '.join(relative(optimizer, p, 'time_vs_SGD') for p in precisions)
        lines.append(f'| {optimizer} | ' + ' | '.join(row) + f' | {passes} | {times} |')
    return '\n'.join(lines)


def draws_markdown(draws: List[dict]) -> str:
    """How often the subset optimizers drew clean and mislabelled samples (:func:`claims.draw_frequencies`)."""
    lines = ['| noise | precision | optimizer | drawn: clean | drawn: mislabelled | mislabelled / clean |',
             '|---:|---|---|---:|---:|---:|']
    for d in draws:
        lines.append(f'| {d["noise"]:g} | {d["precision"]} | {d["optimizer"]} | {d["clean"]:.3f} | '
                     f'{d["mislabelled"]:.3f} | {d["ratio"]:.2f} |')
    lines += ['', 'Drawn: share of a sample\'s appearances in a batch (epochs >= 1) in which it was in the SAM '
              'subset, pooled over the samples of each kind, mean over seeds. Uniform drawing gives alpha for both.']
    return '\n'.join(lines)


def pose_markdown(runs: List[dict], labels: dict) -> str:
    """COCO AP (mean ± std over seeds), images/s, wall time and sample-passes per pose variant."""
    lines = ['| optimizer | COCO AP (mean ± std) | images/s | wall time | sample-passes / image |',
             '|---|---:|---:|---:|---:|']
    for variant in dict.fromkeys(r['variant'] for r in runs):
        rs = [r for r in runs if r['variant'] == variant]
        aps = [r['ap'] for r in rs]
        spread = f' ± {statistics.stdev(aps):.3f}' if len(aps) > 1 else ''
        lines.append(f'| {labels[variant]} | {statistics.mean(aps):.3f}{spread} '
                     f'| {statistics.mean(r["images_per_s"] for r in rs):.1f} '
                     f'| {statistics.mean(r["wall_s"] for r in rs):.0f} s '
                     f'| {statistics.mean(r["passes_per_image"] for r in rs):.2f} |')
    return '\n'.join(lines)


def speed_markdown(results: dict, pass_s: dict, args, device_name: str, model: str) -> str:
    """The speed table (one row per optimizer) and how it was measured (``speed.measure``'s output)."""
    from .speed import OUTSIDE_SAM, label, outside_version
    batch, half = args.batch_size, args.batch_size // 2
    cuda = args.device.type == 'cuda'

    def ms(seconds):
        return f'{1e3 * seconds:.1f}'

    def mib(value):
        return '-' if value is None else f'{value:.0f}'

    lines = ['| optimizer | images/s (median) | min-max | vs SGD (median) | sample-passes/step | overhead '
             '| optimizer state MiB | ' + ('peak CUDA MiB (own) |' if cuda else 'peak RSS growth MiB (alone) |'),
             '|---|---:|---:|---:|---:|---:|---:|---:|']
    for name, r in results.items():
        ratio = f'{r["vs_sgd"]:.2f}x' if 'vs_sgd' in r else '-'
        lines.append(f'| {label(name, args)} | {r["median"]:.1f} | {r["min"]:.1f}-{r["max"]:.1f} | {ratio} | '
                     f'{r["sample_passes_per_step"]:.2f} | {r["overhead_ms"]:.1f} ms ({r["overhead_pct"]:.1f}%) '
                     f'| {r["state_mib"]:.1f} | {mib(r["peak_memory_mib"])} |')
    lines += ['', f'{model}, batch {batch}, {device_name}, {torch.get_num_threads()} torch threads, amp={args.amp}, '
              f'channels_last={args.channels_last}, {args.repeats} x {args.iters} timed iterations after '
              f'{args.warmup} warm-up, round-robin. Plain fwd+bwd, median (min-max): full batch '
              f'{ms(statistics.median(pass_s[batch]))} ms ({ms(min(pass_s[batch]))}-{ms(max(pass_s[batch]))}), '
              f'half batch {ms(statistics.median(pass_s[half]))} ms ({ms(min(pass_s[half]))}-{ms(max(pass_s[half]))}). '
              'Overhead = step time - passes run x pass time (same round), as % of the step time. '
              'Optimizer state: every tensor the optimizer holds besides the parameters (SGD: momentum). '
              + ('Peak CUDA: over building and warm-up, minus what the other entries hold.' if cuda else
                 'Peak RSS growth: a fresh process building the model and optimizer and warming up '
                 '(schedule-based ones until their first SAM step).')]
    if OUTSIDE_SAM in results:
        lines[-1] += (f' {OUTSIDE_SAM} {outside_version()} runs its documented loop (backward, then '
                      'step(closure)); it does not freeze BatchNorm statistics in its second pass, '
                      'leansam restores every buffer.')
    return '\n'.join(lines)
