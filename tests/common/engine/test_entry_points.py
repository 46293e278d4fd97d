"""tools/train.py (with --amp, --cfg-options, --resume) and tools/test.py on a toy config."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent

CONFIG = """
custom_imports = dict(imports=['toy_registered'], allow_failed_imports=False)
default_scope = 'mmengine'
model = dict(type='ToyMLP')
train_dataloader = dict(dataset=dict(type='ToyData'), batch_size=8, num_workers=0,
                        sampler=dict(type='DefaultSampler', shuffle=True),
                        collate_fn=dict(type='default_collate'))
test_dataloader = dict(dataset=dict(type='ToyData'), batch_size=8, num_workers=0,
                       sampler=dict(type='DefaultSampler', shuffle=False),
                       collate_fn=dict(type='default_collate'))
test_evaluator = dict(type='ToyAccuracy')
test_cfg = dict()
train_cfg = dict(type='SAMEpochBasedTrainLoop', max_epochs=2)
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
                     sam=dict(type='AUSAM', rho=0.1, alpha=0.5))
default_hooks = dict(logger=dict(type='LoggerHook', interval=1))
randomness = dict(seed=0)
"""


def run(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.timeout(400)
def test_train_amp_resume_and_test(tmp_path):
    cfg = tmp_path / 'toy_cfg.py'
    cfg.write_text(CONFIG)
    work = tmp_path / 'work'
    log = run(str(ROOT / 'tools/train.py'), str(cfg), '--work-dir', str(work), '--amp',
              '--cfg-options', 'train_cfg.max_epochs=1')
    assert 'sam_share: 1.0000' in log  # AUSAM runs SAM (on a subset) every iteration
    assert re.search(r'rho: 0\.1000', log)
    assert (work / 'epoch_1.pth').exists()
    log = run(str(ROOT / 'tools/train.py'), str(cfg), '--work-dir', str(work), '--resume')
    assert 'resumed epoch: 1' in log and (work / 'epoch_2.pth').exists()
    assert 'subset_size: 4.0000' in log  # epoch 1 trains on half of each batch of 8
    log = run(str(ROOT / 'tools/test.py'), str(cfg), str(work / 'epoch_2.pth'), '--work-dir', str(work))
    assert re.search(r'accuracy: \d+\.\d+', log)
