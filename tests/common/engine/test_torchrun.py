"""tools/train.py under torchrun with 2 CPU processes (gloo) equals the single-process maths."""
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent

CONFIG = """
custom_imports = dict(imports=['toy_registered'], allow_failed_imports=False)
default_scope = 'mmengine'
model = dict(type='ToyMLP')
train_dataloader = dict(dataset=dict(type='ToyData'), batch_size=4, num_workers=0,
                        sampler=dict(type='DefaultSampler', shuffle=False),
                        collate_fn=dict(type='default_collate'))
train_cfg = dict(type='SAMIterBasedTrainLoop', max_iters={iters})
optim_wrapper = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                     optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
                     sam={sam})
custom_hooks = [dict(type='DumpRankState')]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1000))
randomness = dict(seed=0)
"""


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_torchrun(tmp_path, sam, iters):
    cfg = tmp_path / 'toy_cfg.py'
    cfg.write_text(CONFIG.format(sam=repr(sam), iters=iters))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]), OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
           str(ROOT / 'tools' / 'train.py'), str(cfg), '--launcher', 'pytorch',
           '--work-dir', str(tmp_path / 'work')]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.terminate()  # torchrun stops its workers (they run in sessions of their own)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail('torchrun did not finish in 240 s (a rank waiting in a collective?):\n' + out[-3000:])
    # torchrun exits 0 only when every rank exited 0: a rank that finished training and then
    # aborted at interpreter exit (e.g. "terminate called without an active exception", -6)
    # fails the job, and torchrun's summary names the rank and its exit code.
    assert proc.returncode == 0, out[-6000:]
    assert 'terminate called' not in out, out[-6000:]
    return [torch.load(tmp_path / 'work' / f'rank{r}.pth', weights_only=False) for r in range(2)]


def reference_sam(iters, rho=0.1, lr=0.1, momentum=0.9):
    """float64, one process: per-rank perturbation, averaged second-pass gradient."""
    import toy_registered
    model = toy_registered.ToyMLP().double()
    data = toy_registered.ToyData()
    params = list(model.net.parameters())
    bufs = None

    def grad(xs, ys):
        loss = F.cross_entropy(model.net(xs.double()), ys)
        return torch.autograd.grad(loss, params)
    for it in range(iters):
        start = (it * 8) % 32
        shards = [list(range(start + r, start + 8, 2)) for r in range(2)]  # DefaultSampler: rank::2
        g_s = []
        for idx in shards:
            x, y = data.x[idx], data.y[idx]
            g = grad(x, y)
            n = torch.sqrt(sum((t ** 2).sum() for t in g))
            with torch.no_grad():
                for p, gi in zip(params, g):
                    p.add_(rho * gi / n)
            g_s.append(grad(x, y))
            with torch.no_grad():
                for p, gi in zip(params, g):
                    p.sub_(rho * gi / n)
        d = [(a + b) / 2 for a, b in zip(*g_s)]
        bufs = d if bufs is None else [momentum * b + di for b, di in zip(bufs, d)]
        with torch.no_grad():
            for p, b in zip(params, bufs):
                p.sub_(lr * b)
    return model.state_dict()


@pytest.mark.timeout(300)
def test_sam_two_processes_equal_single_process_reference(tmp_path):
    sys.path.insert(0, str(HERE))
    ranks = run_torchrun(tmp_path, dict(type='SAM', rho=0.1), iters=3)
    ref = reference_sam(3)
    for key, value in ref.items():
        for state in ranks:
            torch.testing.assert_close(state['model'][key].double(), value, rtol=1e-5, atol=1e-6)


@pytest.mark.timeout(300)
@pytest.mark.parametrize('sam', [dict(type='VSAM', rho=0.1, window=3, fixed_rate=0.34),
                                 dict(type='AUSAM', rho=0.1, alpha=0.5, ramp_epochs=1)])
def test_schedules_and_tables_stay_identical_across_ranks(tmp_path, sam):
    ranks = run_torchrun(tmp_path, sam, iters=10)  # 10 iterations: epoch 0 and part of epoch 1
    for key in ranks[0]['model']:
        assert torch.equal(ranks[0]['model'][key], ranks[1]['model'][key]), key
    for key in ('adlp', 'dlp_count'):
        if key in ranks[0]['sam']:
            assert torch.equal(ranks[0]['sam'][key], ranks[1]['sam'][key])
            assert ranks[0]['sam']['dlp_count'].sum() > 32  # epoch 1 subsets were recorded too
