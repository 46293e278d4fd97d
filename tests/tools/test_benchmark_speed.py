"""``tools/benchmark_optimizers.py`` and the ``tools/benchmark.py`` entry point at tiny settings.

Checked against closed forms: sample-passes per step (SGD 1, SAM 2, AUSAM and uniform-subset
SAM at alpha 0.5 exactly 1) and optimizer state in parameter-sized buffers (SGD momentum 1,
SAM + backup 2).
"""
import json
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TOOLS = osp.join(ROOT, 'tools')


@pytest.fixture(scope='module')
def speed_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('speed')
    subprocess.run([sys.executable, osp.join(TOOLS, 'benchmark_optimizers.py'), '--device', 'cpu',
                    '--batch-size', '4', '--warmup', '1', '--iters', '1', '--repeats', '2', '--sam-share', '0.3',
                    '--json', str(out / 'b.json'), '--markdown', str(out / 'b.md'), '--plot', str(out / 'b.png')],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    with open(out / 'b.json') as f:
        return out, json.load(f)


def test_speed_benchmark_counts_passes_and_state_exactly(speed_run):
    out, data = speed_run
    results = data['results']
    assert list(results) == ['SGD', 'SAM', 'AUSAM', 'VSAM-fixed', 'LookSAM', 'UniformSubsetSAM',
                             'RandomScheduleSAM']
    passes = {name: r['sample_passes_per_step'] for name, r in results.items()}
    assert passes['SGD'] == 1.0 and passes['SAM'] == 2.0
    assert passes['AUSAM'] == passes['UniformSubsetSAM'] == 1.0  # 2 of 4 rows, twice
    assert all(1.0 <= passes[n] <= 2.0 for n in ('VSAM-fixed', 'LookSAM', 'RandomScheduleSAM'))
    sgd_state = results['SGD']['state_mib']
    assert results['SAM']['state_mib'] == pytest.approx(2 * sgd_state, rel=1e-6)
    assert results['SGD']['vs_sgd'] == 1.0 and all(r['median'] > 0 for r in results.values())
    # CPU peak: each optimizer alone in a fresh process; it holds at least the model and its state
    assert all(r['peak_memory_mib'] > r['state_mib'] for r in results.values())
    assert data['config']['sam_share'] == 0.3
    table = (out / 'b.md').read_text()
    assert 'RandomScheduleSAM (p 0.3)' in table and 'VSAM (fixed share 0.3)' in table
    assert 'peak RSS growth MiB (alone)' in table
    assert (out / 'b.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_benchmark_rejects_a_share_outside_0_1():
    result = subprocess.run([sys.executable, osp.join(TOOLS, 'benchmark_optimizers.py'), '--sam-share', '0'],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and '--sam-share must lie in (0, 1]' in result.stderr


def test_entry_point_prices_vsams_trained_share_and_publishes(tmp_path):
    """``tools/benchmark.py --stages speed``: reads vSAM's share from the accuracy results,
    runs both precisions, writes summary.md with the commands, publishes the small files."""
    out, docs = tmp_path / 'out', tmp_path / 'docs'
    (out / 'accuracy').mkdir(parents=True)
    summary = [dict(optimizer='VSAM', sam_share=0.2), dict(optimizer='VSAM', sam_share=0.3),
               dict(optimizer='SAM', sam_share=1.0)]
    (out / 'accuracy' / 'results.json').write_text(json.dumps(dict(summary=summary)))
    (out / 'accuracy' / 'results.md').write_text('| accuracy table |')
    subprocess.run([sys.executable, osp.join(TOOLS, 'benchmark.py'), '--stages', 'speed', '--quick',
                    '--out-dir', str(out), '--publish', str(docs)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    for precision in ('float', 'w4a4'):
        with open(out / 'speed' / f'cpu_{precision}.json') as f:
            assert json.load(f)['config']['sam_share'] == 0.25  # mean over vSAM's rows
    text = (out / 'summary.md').read_text()
    assert 'python tools/benchmark_optimizers.py --device cpu --lsq-bits 4 --sam-share 0.25' in text
    assert '| accuracy table |' in text and 'LSQ W4A4' in text
    assert sorted(p.name for p in (docs / 'speed').iterdir()) == sorted(
        f'cpu_{p}.{e}' for p in ('float', 'w4a4') for e in ('json', 'md', 'png'))
    assert (docs / 'summary.md').exists() and (docs / 'accuracy' / 'results.md').exists()
    assert not (docs / 'accuracy' / 'runs').exists()
