"""tools/gpu_check.py in its quick CPU mode (what CI can run): every part, in miniature."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def tiny_cifar(root: Path, train=12, test=4):
    rng = np.random.default_rng(0)
    for split, count in (('train', train), ('test', test)):
        for c in range(10):
            (root / split / f'class{c}').mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                    root / split / f'class{c}' / f'{i}.png')


def test_quick_mode_runs_every_part_and_writes_the_summary(tmp_path):
    tiny_cifar(tmp_path / 'cifar')
    out = tmp_path / 'out'
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / 'gpu_check.py'), '--quick', '--device', 'cpu',
                           '--out', str(out), '--cifar', str(tmp_path / 'cifar'), '--batch-size', '16'],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / 'results.json').read_text())
    correctness = results['correctness']
    assert correctness['failures'] == correctness['errors'] == 0 and correctness['passed'] >= 19
    speed = results['speed']
    assert set(speed) == {'b8_fp32', 'b8_bf16cl'}
    for config in speed.values():
        assert config['SAM']['sample_passes_per_step'] == 2.0
        assert config['AUSAM']['sample_passes_per_step'] == 1.0
        assert config['pytorch_optimizer.SAM']['sample_passes_per_step'] == 2.0
    targets = {t['target'] for t in results['speed_targets']}
    assert 'SAM >= 1.05x pytorch_optimizer.SAM' in targets and 'AUSAM >= 0.97x SGD' in targets
    cifar = results['cifar']
    assert set(cifar['runs']) == {'SGD', 'SAM', 'AUSAM', 'UniformSubsetSAM'}
    assert cifar['train_images'] == 120 and cifar['test_images'] == 40
    assert cifar['runs']['SGD']['sample_passes'] == 1.0 and cifar['runs']['SAM']['sample_passes'] == 2.0
    for name in ('speed_b8_fp32.png', 'speed_b8_bf16cl.md', 'correctness.xml', 'summary.md'):
        assert (out / name).stat().st_size > 0
    summary = (out / 'summary.md').read_text()
    assert summary in proc.stdout, 'the summary is printed last'
    assert '## CIFAR (cifar)' in summary and 'QUICK MODE' in summary


def test_refuses_cuda_without_a_gpu(tmp_path):
    import torch
    if torch.cuda.is_available():
        return
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / 'gpu_check.py'), '--out', str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and 'no CUDA device' in proc.stderr
