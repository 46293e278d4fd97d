"""Figures: accuracy against cost, AUSAM's sampling, vSAM's schedule; speed relative to SGD."""
from typing import List

import matplotlib

matplotlib.use('Agg')  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .accuracy_plan import PRECISIONS  # noqa: E402
from .records import behaviour_runs  # noqa: E402


COLOURS = {'SGD': 'tab:gray', 'SAM': 'tab:red', 'AUSAM': 'tab:blue', 'UniformSubsetSAM': 'tab:cyan',
           'VSAM': 'tab:green', 'RandomScheduleSAM': 'tab:olive', 'LookSAM': 'tab:purple',
           'AUSAM-IW': 'tab:brown', 'AUSAM-EMA': 'tab:pink'}


def _panels(rows: int, cols: int, width: float = 4.2, height: float = 3.4):
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    return fig, axes


def plot_accuracy_vs_cost(summary: List[dict], path: str) -> None:
    """x: sample-passes relative to SGD, y: top-1 ± std; one panel per (noise, precision)."""
    precisions = [p for p in PRECISIONS if any(r['precision'] == p for r in summary)]
    noises = sorted({r['noise'] for r in summary})
    fig, axes = _panels(len(precisions), len(noises))
    for i, precision in enumerate(precisions):
        for j, noise in enumerate(noises):
            ax = axes[i][j]
            if not any(r['precision'] == precision and r['noise'] == noise for r in summary):
                ax.axis('off')  # e.g. QAT only at some noise rates
                continue
            for r in summary:
                if r['precision'] != precision or r['noise'] != noise or r['passes_vs_SGD'] is None:
                    continue
                ax.errorbar(r['passes_vs_SGD'], r['top1_mean'], yerr=r['top1_std'], fmt='o', capsize=3,
                            color=COLOURS[r['optimizer']], label=r['optimizer'])
            ax.set_title(f'{precision}, noise {noise:g}')
            ax.set_xlabel('sample-passes vs SGD')
            ax.set_ylabel('test top-1 (%)')
            ax.grid(alpha=0.3)
    handles = {h.get_label(): h for ax in axes.flat for h in ax.get_legend_handles_labels()[0]}
    fig.legend(handles.values(), handles.keys(), loc='lower center', ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ausam(results: List[dict], out_dir: str, path: str) -> None:
    """Per (precision, noise), first seed: end-of-training ADLP histogram, clean vs mislabelled,
    and how often each sample was drawn (share of its appearances after epoch 0) vs its ADLP."""
    runs = behaviour_runs(results, 'AUSAM', out_dir)
    firsts = {}
    for r, b in runs:
        firsts.setdefault((r['spec']['precision'], r['spec']['noise']), (r, b))
    if not firsts:
        return
    fig, axes = _panels(len(firsts), 2, width=5.0)
    for i, ((precision, noise), (r, b)) in enumerate(sorted(firsts.items(), key=_panel_order)):
        adlp, noisy = torch.tensor(b['adlp']), torch.tensor(b['mislabelled']).bool()
        seen = torch.tensor(b['dlp_count']) > 0
        freq = torch.tensor(b['draws']).float() / torch.tensor(b['appearances']).clamp_min(1)
        bins = torch.linspace(0, float(adlp[seen].max()) if seen.any() else 1.0, 41).tolist()
        title = f'{precision}, noise {noise:g}, seed {r["spec"]["seed"]}'
        groups = [(m, label, colour) for m, label, colour in
                  ((~noisy & seen, 'clean', 'tab:blue'), (noisy & seen, 'mislabelled', 'tab:red')) if m.any()]
        ax = axes[i][0]
        for mask, label, colour in groups:
            ax.hist(adlp[mask].tolist(), bins=bins, alpha=0.6, color=colour, label=f'{label} ({int(mask.sum())})')
        ax.set(title=f'ADLP at the end, {title}', xlabel='ADLP', ylabel='training samples')
        ax.legend()
        ax = axes[i][1]
        for mask, label, colour in groups:
            ax.scatter(adlp[mask].tolist(), freq[mask].tolist(), s=6, alpha=0.5, color=colour, label=label)
        ax.axhline(r['spec']['sam']['alpha'], color='k', lw=0.8, ls='--', label='uniform (alpha)')
        ax.set(title=f'sampling frequency, {title}', xlabel='ADLP at the end',
               ylabel='drawn / appearances (epochs >= 1)')
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_vsam(results: List[dict], out_dir: str, path: str) -> None:
    """Per (precision, noise): vSAM's realised SAM share per window and its rate base_sr/K, per seed."""
    panels = {}
    for r, b in behaviour_runs(results, 'VSAM', out_dir):
        panels.setdefault((r['spec']['precision'], r['spec']['noise']), []).append((r, b))
    if not panels:
        return
    precisions = [p for p in PRECISIONS if any(k[0] == p for k in panels)]
    noises = sorted({k[1] for k in panels})
    fig, axes = _panels(len(precisions), len(noises), width=4.8)
    for i, precision in enumerate(precisions):
        for j, noise in enumerate(noises):
            ax = axes[i][j]
            if (precision, noise) not in panels:
                ax.axis('off')
                continue
            for k, (r, b) in enumerate(panels[(precision, noise)]):
                colour = f'C{k}'
                xs, shares = window_shares(b['sam_flags'], b['warmup_steps'], b['window'])
                ax.step(xs, shares, where='post', color=colour, label=f'seed {r["spec"]["seed"]} share per window')
                ax.plot(range(len(b['vsam_rate'])), b['vsam_rate'], color=colour, ls='--', lw=0.8)
                ax.axvline(b['warmup_steps'], color='k', lw=0.6, ls=':')
            ax.set_yscale('symlog', linthresh=0.01)  # the warm-up's 1.0 and the windows' few % both show
            ax.set(title=f'vSAM, {precision}, noise {noise:g}', xlabel='iteration', ylabel='SAM share',
                   ylim=(0, 1.2))
            ax.legend(fontsize=7, title='solid: realised, dashed: base_sr/K', title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def window_shares(flags: List[int], warmup: int, window: int):
    """Step-plot points: the warm-up as one block, then the SAM share of each window."""
    edges = [0] + list(range(warmup, len(flags), window)) + [len(flags)]
    edges = sorted(set(edges))
    xs, shares = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        xs.append(lo)
        shares.append(sum(flags[lo:hi]) / (hi - lo))
    return xs + [len(flags)], shares + shares[-1:]


def _panel_order(item):
    (precision, noise), _ = item
    return PRECISIONS.index(precision), noise


SPEED_COLOURS = {'SGD': '0.6', 'SAM': 'C3', 'AUSAM': 'C0', 'VSAM': 'C0', 'VSAM-fixed': 'C0'}


def plot_vs_sgd(results: dict, args, title: str, path: str) -> None:
    """Bar chart: images/s relative to SGD (median, min-max over repeats), sample-passes on top."""
    from .speed import label
    names = list(results)
    sgd = results['SGD']['images_per_s']
    ratios = [[a / b for a, b in zip(results[n]['images_per_s'], sgd)] for n in names]
    med = [results[n]['vs_sgd'] for n in names]
    err = [[m - min(r) for m, r in zip(med, ratios)], [max(r) - m for m, r in zip(med, ratios)]]
    fig, ax = plt.subplots(figsize=(10, 3.8))
    bars = ax.bar(range(len(names)), med, yerr=err, capsize=3,
                  color=[SPEED_COLOURS.get(n, 'C1') for n in names])  # controls in orange
    for bar, n in zip(bars, names):
        ax.annotate(f'{results[n]["sample_passes_per_step"]:.2f} passes', (bar.get_x() + bar.get_width() / 2, 0.02),
                    ha='center', va='bottom', fontsize=7, rotation=90, color='white')
    ax.axhline(1.0, color='k', lw=0.8, ls='--')
    ax.set_xticks(range(len(names)), [label(n, args).replace(' (', '\n(') for n in names], fontsize=7)
    ax.set_ylabel('images/s relative to SGD')
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
