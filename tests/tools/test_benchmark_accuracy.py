"""``tools/benchmark_accuracy.py`` end to end at tiny settings: files, exact costs, cache, errors."""
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from tool_loader import load_tool

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TOOL = osp.join(ROOT, 'tools', 'benchmark_accuracy.py')
EPOCHS, BATCH, ALPHA = 2, 64, 0.5
ARGS = ['--noise', '0.4', '--seeds', '0', '--precision', 'float', 'w4a4', '--optimizers', 'SGD', 'SAM', 'AUSAM',
        '--epochs-float', str(EPOCHS), '--epochs-qat', str(EPOCHS), '--alpha', str(ALPHA)]


@pytest.fixture(scope='module')
def out_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench')
    subprocess.run([sys.executable, TOOL, *ARGS, '--out-dir', str(out)], cwd=ROOT, check=True,
                   capture_output=True, text=True)
    return out


def runs_by_name(out_dir):
    with open(out_dir / 'results.json') as f:
        data = json.load(f)
    return data, {(r['spec']['precision'], r['spec']['optimizer']): r for r in data['runs']}


def test_writes_every_report(out_dir):
    for name in ('results.json', 'results.md', 'accuracy_vs_cost.png', 'ausam_behaviour.png'):
        assert (out_dir / name).stat().st_size > 0
    assert not (out_dir / 'vsam_behaviour.png').exists()  # no vSAM run in this grid
    data, runs = runs_by_name(out_dir)
    assert set(runs) == {(p, o) for p in ('float', 'w4a4') for o in ('SGD', 'SAM', 'AUSAM')}
    assert {'torch', 'mmengine', 'cpu', 'cpu_count', 'date', 'command'} <= set(data['environment'])
    table = (out_dir / 'results.md').read_text()
    assert '| 0.4 | float | AUSAM |' in table and 'SAM beats SGD beyond the seed spread' in table
    assert all(0 <= r['top1'] <= 100 for r in runs.values())
    # QAT starts from the float SGD checkpoint of the same noise rate and seed.
    assert runs[('w4a4', 'SAM')]['config']['float_checkpoint'] == runs[('float', 'SGD')]['checkpoint']


def test_sample_passes_are_exact(out_dir):
    from qat_sam.data.digits import NUM_TRAIN
    batches = [BATCH] * (NUM_TRAIN // BATCH) + ([NUM_TRAIN % BATCH] if NUM_TRAIN % BATCH else [])
    subset_epoch = sum(2 * max(1, math.floor(ALPHA * b)) for b in batches)
    _, runs = runs_by_name(out_dir)
    for precision in ('float', 'w4a4'):
        sgd, sam, ausam = (runs[(precision, o)]['sample_passes'] for o in ('SGD', 'SAM', 'AUSAM'))
        assert sgd == NUM_TRAIN * EPOCHS
        assert sam == 2 * sgd
        assert ausam == 2 * NUM_TRAIN + (EPOCHS - 1) * subset_epoch
    data, _ = runs_by_name(out_dir)
    row = next(r for r in data['summary'] if r['optimizer'] == 'AUSAM' and r['precision'] == 'float')
    assert row['passes_vs_SGD'] == pytest.approx((2 * NUM_TRAIN + (EPOCHS - 1) * subset_epoch) / (NUM_TRAIN * EPOCHS))


def test_rerun_reuses_results(out_dir, capsys):
    results = sorted((out_dir / 'runs').glob('*/result.json'))
    before = {p: os.stat(p).st_mtime_ns for p in results}
    load_tool('benchmark_accuracy').main([*ARGS, '--out-dir', str(out_dir)])
    assert '0 runs trained, 6 reused' in capsys.readouterr().out
    assert {p: os.stat(p).st_mtime_ns for p in results} == before


def test_unknown_optimizer_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        load_tool('benchmark_accuracy').main(['--optimizers', 'SGD', 'Adam', '--out-dir', str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'Adam'" in err and 'AUSAM' in err
    assert not any(tmp_path.iterdir())


def test_parallel_workers_give_the_serial_results_bit_for_bit(tmp_path):
    args = ['--noise', '0.4', '--seeds', '0', '1', '--precision', 'float', '--optimizers', 'SGD', 'VSAM',
            'RandomScheduleSAM', '--epochs-float', '1']
    for name, extra in (('serial', []), ('parallel', ['--jobs', '2'])):
        subprocess.run([sys.executable, TOOL, *args, *extra, '--out-dir', str(tmp_path / name)], cwd=ROOT,
                       check=True, capture_output=True, text=True)
    serial, parallel = (json.loads((tmp_path / n / 'results.json').read_text())['runs'] for n in ('serial', 'parallel'))
    fields = ('key', 'top1', 'sample_passes', 'sam_share', 'iterations')
    assert [[r[f] for f in fields] for r in parallel] == [[r[f] for f in fields] for r in serial]
    assert len(serial) == 6
    assert not any((tmp_path / 'parallel' / 'claims').iterdir())  # this call's claims are cleaned up
    logs = [(tmp_path / 'parallel' / f'worker{i}.log').read_text() for i in range(2)]
    trained = [int(re.search(r'(\d+) runs trained', log).group(1)) for log in logs]
    assert sum(trained) == 6  # each group ran once; which worker took which depends on their start-up


def tiny_cifar(root):
    """A 20-image stand-in for CIFAR-10's prepared arrays (both splits)."""
    import numpy as np
    from qat_sam.data.cifar_arrays import ImageArrays, npz_path, save_npz
    root.mkdir(exist_ok=True)
    for split in ('train', 'test'):
        images = np.zeros((20, 32, 32, 3), np.uint8)
        save_npz(ImageArrays(images, np.arange(20) % 10, [f'c{i}' for i in range(10)]), npz_path(root, 10, split))
    return root


def test_full_mode_needs_a_gpu_and_cifar_needs_its_data(tmp_path, capsys, monkeypatch):
    tool = load_tool('benchmark_accuracy')
    tiny_cifar(tmp_path)
    monkeypatch.setattr(tool.torch.cuda, 'is_available', lambda: False)
    with pytest.raises(SystemExit):
        tool.parse_args(['--full'])
    assert 'needs CUDA GPUs' in capsys.readouterr().err
    monkeypatch.setattr(tool.torch.cuda, 'is_available', lambda: True)
    args = tool.parse_args(['--full', '--data-root', str(tmp_path)])
    assert (args.dataset, args.epochs_float, args.epochs_qat, args.rho) == ('cifar10-full', 200, 90, 0.05)
    assert args.out_dir.endswith(osp.join('benchmark', 'accuracy_cifar10-full'))
    cpu = tool.parse_args(['--dataset', 'cifar10', '--data-root', str(tmp_path)])
    assert (cpu.epochs_float, cpu.epochs_qat, cpu.noise, cpu.qat_noise) == (25, 8, [0.0, 0.4], [0.4])
    (tmp_path / 'runs').mkdir()
    clean = tool.parse_args(['--dataset', 'cifar10', '--data-root', str(tmp_path), '--noise', '0'])
    assert clean.qat_noise == [] and 'QAT runs at noise [0.4] by default' in capsys.readouterr().err
    for argv, message in ((['--dataset', 'cifar10', '--data-root', str(tmp_path / 'none')], 'holds no CIFAR-10'),
                          (['--data-root', str(tmp_path)], '--data-root is for --dataset cifar10'),
                          (['--full', '--dataset', 'digits'], 'drop --dataset digits'),
                          (['--dataset', 'cifar10', '--data-root', str(tmp_path), '--precision', 'w2a2'],
                           "has recipes for ['float', 'w4a4']"),
                          (['--noise', '0', '--qat-noise', '0.4'], 'must be rates of --noise'),
                          (['--dataset', 'cifar10', '--data-root', str(tmp_path / 'runs')], 'holds no CIFAR-10'),
                          (['--threads', '0'], '--threads must be >= 1')):
        with pytest.raises(SystemExit):
            tool.parse_args(argv)
        assert message in capsys.readouterr().err


def test_retabulate_rewrites_the_reports_from_results_json(out_dir):
    table = (out_dir / 'results.md').read_text()
    (out_dir / 'results.md').unlink()
    (out_dir / 'accuracy_vs_cost.png').unlink()
    load_tool('benchmark_accuracy').main(['--retabulate', '--out-dir', str(out_dir)])
    assert (out_dir / 'results.md').read_text() == table
    assert (out_dir / 'accuracy_vs_cost.png').stat().st_size > 0
    data = json.loads((out_dir / 'results.json').read_text())
    assert 'retabulated' in data['environment'] and len(data['runs']) == 6
