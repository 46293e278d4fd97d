"""Summaries over seeds and the claims, each with an honest verdict.

"Beyond the seed spread": the mean per-seed (paired) difference exceeds the larger of the
two optimizers' sample standard deviations over seeds. Costs are exact sample-passes
(forward/backward passes counted per sample), relative to the same seed's run.
"""
import statistics
from typing import Dict, List, Optional

import torch

from .accuracy_plan import ORDER, PRECISIONS
from .records import behaviour_runs

#: Optimizers that draw a subset of each batch (their draws per sample are recorded).
SUBSET_OPTIMIZERS = ('AUSAM', 'UniformSubsetSAM', 'AUSAM-IW', 'AUSAM-EMA')


def mean_std(values: List[float]):
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(results: List[dict]) -> List[dict]:
    """Per (noise, precision, optimizer): top-1 mean/std over seeds, costs relative to SGD and SAM."""
    by_run = {(r['spec']['precision'], r['spec']['optimizer'], r['spec']['noise'], r['spec']['seed']): r
              for r in results}
    groups = sorted({(k[2], k[0], k[1]) for k in by_run},
                    key=lambda g: (g[0], PRECISIONS.index(g[1]), ORDER.index(g[2])))
    rows = []
    for noise, precision, optimizer in groups:
        seeds = sorted(k[3] for k in by_run if k[:3] == (precision, optimizer, noise))
        runs = [by_run[(precision, optimizer, noise, s)] for s in seeds]
        top1, std = mean_std([r['top1'] for r in runs])
        row = dict(noise=noise, precision=precision, optimizer=optimizer, seeds=seeds,
                   top1=[r['top1'] for r in runs], top1_mean=top1, top1_std=std,
                   sam_share=statistics.mean(r['sam_share'] for r in runs),
                   sample_passes=statistics.mean(r['sample_passes'] for r in runs))
        for ref in ('SGD', 'SAM'):
            refs = [by_run.get((precision, ref, noise, s)) for s in seeds]
            row[f'passes_vs_{ref}'] = mean_ratio(runs, refs, 'sample_passes')
            row[f'time_vs_{ref}'] = mean_ratio(runs, refs, 'train_seconds')
        rows.append(row)
    return rows


def mean_ratio(runs: List[dict], refs: List[Optional[dict]], key: str) -> Optional[float]:
    """Mean over seeds of ``run[key] / ref[key]`` (same seed), ``None`` without a reference."""
    ratios = [r[key] / ref[key] for r, ref in zip(runs, refs) if ref is not None]
    return statistics.mean(ratios) if ratios else None


def paired_gain(rows: Dict[str, dict], a: str, b: str) -> Optional[dict]:
    """Mean top-1 of ``a`` minus ``b`` over their common seeds, the spread and per-seed wins."""
    if a not in rows or b not in rows:
        return None
    ra, rb = rows[a], rows[b]
    common = [s for s in ra['seeds'] if s in rb['seeds']]
    diffs = [round(ra['top1'][ra['seeds'].index(s)] - rb['top1'][rb['seeds'].index(s)], 9) for s in common]
    spread = max(ra['top1_std'], rb['top1_std'])
    gain = statistics.mean(diffs)
    return dict(gain=gain, spread=spread, wins=sum(d > 0 for d in diffs), n=len(diffs),
                beyond=len(diffs) > 1 and gain > spread)


TOLERANCE = 1e-9


def claims(summary: List[dict], keep: float = 0.8, max_passes: float = 0.6) -> List[dict]:
    """The issue's claims per (noise, precision), each marked holds / does not hold / n/a.

    "Beyond the seed spread": the mean paired difference exceeds the larger of the two
    optimizers' standard deviations over seeds.
    """
    out = []
    for noise, precision in sorted({(r['noise'], r['precision']) for r in summary},
                                   key=lambda k: (k[0], PRECISIONS.index(k[1]))):
        rows = {r['optimizer']: r for r in summary if r['noise'] == noise and r['precision'] == precision}

        def add(claim, value, verdict):
            out.append(dict(noise=noise, precision=precision, claim=claim, value=value, verdict=verdict))

        sam = paired_gain(rows, 'SAM', 'SGD')
        if sam:
            add('SAM beats SGD beyond the seed spread', _gain_text(sam), _beyond_verdict(sam))
        for name, label in (('AUSAM', 'AUSAM'), ('VSAM', 'vSAM')):
            if name not in rows:
                continue
            own = paired_gain(rows, name, 'SGD')
            if sam and own:
                add(f'{label} keeps >= {keep:.0%} of SAM\'s gain', *_kept(own, sam, keep))
            ratio = rows[name]['passes_vs_SAM']
            if ratio is not None:
                add(f'{label} costs <= {max_passes:.0%} of SAM\'s sample-passes', f'{ratio:.0%}',
                    _verdict(ratio <= max_passes + TOLERANCE))
        for name, control, label in (('AUSAM', 'UniformSubsetSAM', 'AUSAM beats UniformSubsetSAM at equal cost'),
                                     ('AUSAM-IW', 'UniformSubsetSAM', 'AUSAM-IW beats UniformSubsetSAM at equal cost'),
                                     ('AUSAM-EMA', 'UniformSubsetSAM',
                                      'AUSAM-EMA beats UniformSubsetSAM at equal cost'),
                                     ('VSAM', 'RandomScheduleSAM', 'vSAM beats RandomScheduleSAM at equal cost')):
            gain = paired_gain(rows, name, control)
            if gain:
                cost = rows[name]['sample_passes'] / rows[control]['sample_passes']
                add(label, f'{_gain_text(gain)}; passes ratio {cost:.2f}', _beyond_verdict(gain))
    return out


def _kept(own: dict, sam: dict, keep: float):
    """(value, verdict) of "keeps >= keep of SAM's gain"; only judged where SAM's gain is real."""
    gains = f'{own["gain"]:+.2f} of SAM\'s {sam["gain"]:+.2f} pts over SGD'
    if sam['n'] < 2:
        return gains, 'n/a (one seed)'
    if not sam['beyond']:
        return gains, 'n/a (no SAM gain beyond the spread)'
    kept = own['gain'] / sam['gain']
    return f'{kept:.0%} ({gains})', _verdict(kept >= keep - TOLERANCE)


def _gain_text(g: dict) -> str:
    return f'{g["gain"]:+.2f} pts vs spread {g["spread"]:.2f}, better in {g["wins"]}/{g["n"]} seeds'


def _beyond_verdict(g: dict) -> str:
    if g['n'] < 2:
        return 'n/a (one seed)'
    if g['gain'] < -g['spread']:
        return 'does not hold (reversed beyond the spread)'
    return _verdict(g['beyond'])


def _verdict(ok: bool) -> str:
    return 'holds' if ok else 'does not hold'


def draw_frequency(behaviour: dict) -> Dict[str, float]:
    """How often clean and mislabelled samples were drawn into the SAM subset.

    A sample's frequency is its draws over its appearances in batches from epoch 1 on
    (epoch 0 trains on whole batches); pooled over the samples of each kind.
    """
    draws, seen = torch.tensor(behaviour['draws']), torch.tensor(behaviour['appearances'])
    noisy = torch.tensor(behaviour['mislabelled']).bool()
    out = {}
    for name, mask in (('clean', ~noisy), ('mislabelled', noisy)):
        appearances = int(seen[mask].sum())
        out[name] = int(draws[mask].sum()) / appearances if appearances else None  # None: never drawn from
    return out


def draw_frequencies(results: List[dict], out_dir: str) -> List[dict]:
    """Per (noise > 0, precision, subset optimizer): clean and mislabelled draw frequency,
    mean over seeds, and their ratio."""
    rows = []
    for optimizer in SUBSET_OPTIMIZERS:
        groups: Dict[tuple, List[dict]] = {}
        for r, b in behaviour_runs(results, optimizer, out_dir):
            if r['spec']['noise'] > 0:
                groups.setdefault((r['spec']['noise'], r['spec']['precision']), []).append(draw_frequency(b))
        for (noise, precision), freqs in groups.items():
            if any(f['clean'] is None or f['mislabelled'] is None for f in freqs):
                continue  # a run without subset draws (one epoch: epoch 0 trains on whole batches)
            clean = statistics.mean(f['clean'] for f in freqs)
            noisy = statistics.mean(f['mislabelled'] for f in freqs)
            rows.append(dict(noise=noise, precision=precision, optimizer=optimizer, seeds=len(freqs),
                             clean=clean, mislabelled=noisy, ratio=noisy / clean))
    return sorted(rows, key=lambda r: (r['noise'], PRECISIONS.index(r['precision']), ORDER.index(r['optimizer'])))
