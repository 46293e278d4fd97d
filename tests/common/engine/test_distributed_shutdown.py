"""tools/train.py and tools/test.py shut torch.distributed down before they return.

Left to interpreter exit, a gloo group's worker threads can still be dropping their last
collective while Python finalizes, and the rank aborts ("terminate called without an
active exception"; see ``common.engine.entry.distributed_session``). A one-process gloo
group (``--launcher pytorch`` with torchrun's environment, no torchrun) is enough to check
that each entry point's ``main()`` returns with no group initialised and the group's
threads joined, and that a failed run also leaves no group behind.
"""
import json
import os
import socket
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
                        sampler=dict(type='DefaultSampler', shuffle=False),
                        collate_fn=dict(type='default_collate'))
test_dataloader = dict(dataset=dict(type='ToyData'), batch_size=8, num_workers=0,
                       sampler=dict(type='DefaultSampler', shuffle=False),
                       collate_fn=dict(type='default_collate'))
test_evaluator = dict(type='ToyAccuracy')
test_cfg = dict()
train_cfg = dict(type='SAMIterBasedTrainLoop', max_iters=2)
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
                     sam=dict(type='SAM', rho=0.1))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000))
custom_hooks = [dict(type='CountThreads')]
randomness = dict(seed=0)
"""

# Runs each entry point's main() in one process and reports what it left behind.
SCRIPT = r"""
import gc, importlib.util, json, os, sys, traceback
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

def threads():
    return len(os.listdir('/proc/self/task'))

running = []

@HOOKS.register_module()
class CountThreads(Hook):  # threads while the group is up (the gloo ones included)
    def after_run(self, runner):
        running.append(threads())

def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, 'tools', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

def call(module, *args):
    sys.argv = [module.__file__, *args, '--launcher', 'pytorch']
    running.clear()
    try:
        module.main()
        error = None
    except Exception:
        error = traceback.format_exc()[-2000:]
    return dict(error=error, initialized=dist.is_initialized(), running=running[:], threads=threads())

gc.disable()  # no collection by chance: what is left is what the entry point left (as at exit)
ROOT, cfg, work = sys.argv[1:4]
train, test = load('train'), load('test')
report = dict(baseline=threads())
report['train'] = call(train, cfg, '--work-dir', work)
report['test'] = call(test, cfg, os.path.join(work, 'iter_2.pth'), '--work-dir', work)
report['train_raises'] = call(train, cfg, '--work-dir', work,
                              '--cfg-options', 'optim_wrapper.optimizer.type=NoSuchOptimizer')
print('REPORT ' + json.dumps(report))
"""


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('shutdown')
    (tmp / 'toy_cfg.py').write_text(CONFIG)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]), OMP_NUM_THREADS='1',
               CUDA_VISIBLE_DEVICES='', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()),
               RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', LOCAL_WORLD_SIZE='1')
    proc = subprocess.run([sys.executable, '-c', SCRIPT, str(ROOT), str(tmp / 'toy_cfg.py'), str(tmp / 'work')],
                          env=env, capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith('REPORT '))
    return json.loads(line[len('REPORT '):]), out


@pytest.mark.timeout(300)
@pytest.mark.parametrize('entry', ['train', 'test'])
def test_entry_point_returns_with_the_group_destroyed_and_its_threads_joined(report, entry):
    report, out = report
    result = report[entry]
    assert result['error'] is None, result['error']
    assert result['running'] and result['running'][0] > report['baseline'], report  # the group's threads
    assert not result['initialized'], f'tools/{entry}.py returned with torch.distributed still initialised'
    # The gloo group's worker and transport threads (and the store's) are gone before
    # Python finalizes: nothing of the group is left for interpreter exit to tear down.
    assert result['threads'] <= report['baseline'], report


@pytest.mark.timeout(300)
def test_failed_run_leaves_no_group(report):
    report, out = report
    result = report['train_raises']
    assert result['error'] is not None and 'build_optim_wrapper' in result['error'], out[-4000:]  # in train()
    assert not result['initialized'], 'a failed tools/train.py left torch.distributed initialised'
