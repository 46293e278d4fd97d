"""SAM, vSAM, AUSAM and the random schedule under DistributedDataParallel (2 CPU ranks, gloo).

The tests share one spawn of two processes (a DDP worker's start-up costs seconds) that
run every scenario on a tiny DDP-wrapped model and save what they saw (parameters,
branch sequences, ADLP tables) with ``torch.save``; the assertions run here, in the
parent. A scenario that raises on a rank is reported by its test with that rank's
traceback; a rank desync (ranks disagreeing on a collective) hits the 60 s gloo
timeout instead of hanging, and a crashed worker makes ``mp.spawn`` raise.

The float64 references below are written from docs/algorithms.md and the DDP
convention of the optimizer core: the first pass of a SAM iteration is rank-local
(g_r, e_r = rho g_r / ||g_r||), the second pass is all-reduced
(g_s = mean_r grad L_r(w + e_r)); vSAM's PSF is g_s - mean_r g_r; non-SAM passes are
all-reduced (global g). They use a hand-written forward pass, not the code under test.
"""
import datetime
import os
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

WORLD = 2
SHARD = 8                     # samples per rank; global batch 16
LR, MOMENTUM = 0.1, 0.9

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                 reason='needs torch.distributed with the gloo backend')]


# ----------------------------------------------------------------- shared set-up
def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def global_batch(step: int):
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(WORLD * SHARD, 5, generator=g), torch.randint(0, 3, (WORLD * SHARD,), generator=g)


def shard(x, y, rank):
    return x[rank * SHARD:(rank + 1) * SHARD], y[rank * SHARD:(rank + 1) * SHARD]


# ------------------------------------------------------------------ worker side
def _worker(rank: int, init_file: str, out_dir: str) -> None:
    """Run every scenario on this rank; a failing scenario records its traceback.

    After a failure this rank runs nothing more (its peer may be waiting in a
    collective of the failed scenario and reaches the gloo timeout on its own).
    """
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))
    results, failed = {}, None
    for name, scenario in SCENARIOS.items():
        if failed is not None:
            results[name] = dict(error=f'not run: scenario {failed!r} failed earlier on rank {rank}')
            continue
        try:
            results[name] = scenario(rank)
        except Exception:
            results[name] = dict(error=traceback.format_exc())
            failed = name
    torch.save(results, os.path.join(out_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _counting(closure):
    """Wrap a closure so that the number of calls (2 on SAM steps, 1 otherwise) is known."""
    calls = []

    def wrapped(*args):
        calls.append(args)
        return closure(*args)
    return wrapped, calls


def _run_sam(rank):
    from common.optim import SAM
    model = make_model()
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = SAM(ddp.parameters(), 'SGD', rho=0.05, lr=LR, momentum=MOMENTUM)
    init = _params(model)
    for t in range(3):
        x, y = shard(*global_batch(t), rank)
        closure, calls = _counting(lambda: F.cross_entropy(ddp(x), y))
        opt.step(closure, model=ddp)
        assert len(calls) == 2, calls
    return dict(init=init, params=_params(model))


def _run_vsam(rank):
    from common.optim import VSAM
    model = make_model()
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = VSAM(ddp.parameters(), 'SGD', rho=0.05, lr=LR, momentum=MOMENTUM,
               warmup_steps=2, window=4, fixed_rate=0.5, seed=0)
    branches = []
    for t in range(8):
        x, y = shard(*global_batch(t), rank)
        closure, calls = _counting(lambda: F.cross_entropy(ddp(x), y))
        opt.step(closure, model=ddp)
        assert len(calls) in (1, 2), calls
        branches.append(len(calls) == 2)
    return dict(params=_params(model), branches=branches,
                beta=opt.beta, reuse_steps=opt.reuse_steps)


def _run_ausam(rank):
    from common.optim import AUSAM
    model = make_model()
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = AUSAM(ddp.parameters(), 'SGD', rho=0.1, lr=LR, momentum=MOMENTUM,
                num_samples=WORLD * SHARD, alpha=0.5, seed=0)
    x, y = shard(*global_batch(0), rank)
    ids = torch.arange(rank * SHARD, (rank + 1) * SHARD)
    subsets, tables = [], []
    for t in range(4):
        if t == 1:
            opt.set_epoch(1)
        closure, calls = _counting(lambda idx: F.cross_entropy(ddp(x[idx]), y[idx], reduction='none'))
        opt.step(closure, model=ddp, sample_ids=ids)
        assert len(calls) == 2 and torch.equal(calls[0][0], calls[1][0]), calls
        subsets.append(calls[0][0].clone())
        tables.append(dict(adlp=opt.adlp.clone(), dlp_count=opt.dlp_count.clone(),
                           dlp_sum=opt.dlp_sum.clone()))
    return dict(params=_params(model), subsets=subsets, tables=tables)


def _run_seeds_differ(rank):
    """Each rank seeds its schedule differently; rank 0's seed must win everywhere."""
    from common.optim import VSAM, RandomScheduleSAM
    out = {}
    for name in ('random', 'vsam'):
        model = make_model()
        ddp = nn.parallel.DistributedDataParallel(model)
        if name == 'random':
            opt = RandomScheduleSAM(ddp.parameters(), 'SGD', rho=0.05, sam_prob=0.5, seed=rank,
                                    lr=LR, momentum=MOMENTUM)
        else:
            opt = VSAM(ddp.parameters(), 'SGD', rho=0.05, lr=LR, momentum=MOMENTUM,
                       window=4, fixed_rate=0.5, seed=1000 + rank)
        branches = []
        for t in range(12):
            x, y = shard(*global_batch(t), rank)
            closure, calls = _counting(lambda: F.cross_entropy(ddp(x), y))
            opt.step(closure, model=ddp)
            branches.append(len(calls) == 2)
        out[name] = dict(branches=branches, seed=opt.rng.seed, params=_params(model))
    return out


def _run_two_phase(rank):
    """vSAM (SAM and reuse iterations) driven by step(closure) and by a loop that owns backward."""
    from common.optim import VSAM
    out = {}
    for form in ('closure', 'two_phase'):
        model = make_model()
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = VSAM(ddp.parameters(), 'SGD', rho=0.05, lr=LR, momentum=MOMENTUM,
                   warmup_steps=1, window=4, fixed_rate=0.5, seed=0)
        branches = []
        for t in range(7):
            x, y = shard(*global_batch(t), rank)
            if form == 'closure':
                opt.step(lambda: F.cross_entropy(ddp(x), y), model=ddp)
            else:
                opt.zero_grad(set_to_none=True)
                with opt.first_pass(ddp):
                    F.cross_entropy(ddp(x), y).backward()
                if opt.first_step():
                    with opt.second_pass(ddp):
                        F.cross_entropy(ddp(x), y).backward()
                opt.second_step()
            branches.append(opt.last_iteration.sam)
        out[form] = dict(params=_params(model), branches=branches)
    return out


SCENARIOS = dict(sam=_run_sam, vsam=_run_vsam, ausam=_run_ausam, seeds_differ=_run_seeds_differ,
                 two_phase=_run_two_phase)


@pytest.fixture(scope='module')
def ddp_results(tmp_path_factory):
    """All scenarios, run once on 2 gloo ranks (one spawn: a DDP worker's start-up costs seconds)."""
    out_dir = tmp_path_factory.mktemp('ddp')
    mp.spawn(_worker, args=(str(out_dir / 'store'), str(out_dir)), nprocs=WORLD, join=True)
    return [torch.load(out_dir / f'rank{r}.pt', weights_only=False) for r in range(WORLD)]


def run_ranks(ddp_results, scenario: str):
    """The per-rank results of ``scenario``; fails with a worker's traceback if it raised."""
    errors = [f'--- rank {rank}:\n{results[scenario]["error"]}'
              for rank, results in enumerate(ddp_results) if 'error' in results[scenario]]
    if errors:
        pytest.fail(f'scenario {scenario!r} failed:\n' + '\n'.join(errors), pytrace=False)
    return [results[scenario] for results in ddp_results]


# ------------------------------------------------------- float64 reference side
def reference_weights():
    return [p.detach().double().clone() for p in make_model().parameters()]


def losses64(w, x, y):
    """Per-sample cross-entropy of Linear(5,7)-Tanh-Linear(7,3) with weights w, in float64."""
    w1, b1, w2, b2 = w
    logits = torch.tanh(x.double() @ w1.T + b1) @ w2.T + b2
    return F.cross_entropy(logits, y, reduction='none')


def grad64(w, x, y):
    w = [t.detach().clone().requires_grad_(True) for t in w]
    losses = losses64(w, x, y)
    grads = torch.autograd.grad(losses.mean(), w)
    return losses.detach(), [g.detach() for g in grads]


def norm64(ts):
    return torch.sqrt(sum((t ** 2).sum() for t in ts))


def local_sam(w, x, y, rho):
    """One rank's SAM passes: (g_r, gs_r, per-sample losses before, after)."""
    l0, g = grad64(w, x, y)
    n = norm64(g)
    e = [rho * gi / n for gi in g]
    l1, gs = grad64([wi + ei for wi, ei in zip(w, e)], x, y)
    return g, gs, l0, l1


def mean_over(lists):
    return [sum(ts) / len(ts) for ts in zip(*lists)]


class SGDMomentum:
    def __init__(self, lr, momentum):
        self.lr, self.momentum, self.buf = lr, momentum, None

    def step(self, w, d):
        self.buf = list(d) if self.buf is None else [self.momentum * b + di for b, di in zip(self.buf, d)]
        return [wi - self.lr * bi for wi, bi in zip(w, self.buf)]


def assert_ranks_identical(a, b):
    assert len(a) == len(b)
    for p, q in zip(a, b):
        assert torch.equal(p, q), (p - q).abs().max()


def assert_matches(params, w, atol=1e-5):
    for p, r in zip(params, w):
        torch.testing.assert_close(p.double(), r, atol=atol, rtol=1e-4)


# ------------------------------------------------------------------------ tests
def test_sam_ddp_matches_rank_local_perturbation_reference(ddp_results):
    """3 SAM steps on 2 ranks: e_r from the rank-local g_r, g_s averaged over ranks."""
    results = run_ranks(ddp_results, 'sam')
    assert_ranks_identical(results[0]['params'], results[1]['params'])
    w = reference_weights()
    assert_ranks_identical([t.double() for t in results[0]['init']], w)
    rho = 0.05
    sgd = SGDMomentum(LR, MOMENTUM)
    for t in range(3):
        x, y = global_batch(t)
        gs = mean_over([local_sam(w, *shard(x, y, r), rho)[1] for r in range(WORLD)])
        w = sgd.step(w, gs)
    assert_matches(results[0]['params'], w)
    # Not the single-process SAM on the global batch (one perturbation from the global g).
    w_global = reference_weights()
    sgd = SGDMomentum(LR, MOMENTUM)
    for t in range(3):
        w_global = sgd.step(w_global, local_sam(w_global, *global_batch(t), rho)[1])
    assert max((p.double() - r).abs().max() for p, r in zip(results[0]['params'], w_global)) > 1e-6


def test_vsam_ddp_same_branches_and_psf_reuse_reference(ddp_results):
    results = run_ranks(ddp_results, 'vsam')
    branches = results[0]['branches']
    assert branches == results[1]['branches']
    assert_ranks_identical(results[0]['params'], results[1]['params'])
    # Schedule: 2 warm-up SAM steps, then windows of 4 with exactly floor(0.5 * 4) = 2 SAM steps.
    assert branches[:2] == [True, True]
    assert sum(branches[2:6]) == 2
    assert any(branches[2:]) and not all(branches[2:])
    beta, reuse_steps = results[0]['beta'], results[0]['reuse_steps']
    rho = 0.05
    w = reference_weights()
    sgd = SGDMomentum(LR, MOMENTUM)
    psf, k = None, 0
    for t, sam in enumerate(branches):
        x, y = global_batch(t)
        if sam:
            passes = [local_sam(w, *shard(x, y, r), rho) for r in range(WORLD)]
            g_mean = mean_over([p[0] for p in passes])
            d = mean_over([p[1] for p in passes])
            psf = [a - b for a, b in zip(d, g_mean)]
            k = 0
        else:
            _, g = grad64(w, x, y)       # global batch mean = mean of the equal shards' means
            d = g
            if psf is not None and k < reuse_steps:
                k += 1
                d = [gi + beta ** k * pi for gi, pi in zip(g, psf)]
        w = sgd.step(w, d)
    assert_matches(results[0]['params'], w)


def test_ausam_ddp_tables_identical_on_all_ranks(ddp_results):
    results = run_ranks(ddp_results, 'ausam')
    assert_ranks_identical(results[0]['params'], results[1]['params'])
    for step in range(4):
        t0, t1 = results[0]['tables'][step], results[1]['tables'][step]
        for key in ('adlp', 'dlp_count', 'dlp_sum'):
            assert torch.equal(t0[key], t1[key]), (step, key)
    # Epoch 0: whole shards; epoch 1: k = floor(0.5 * 8) = 4 distinct rows per rank.
    for r in range(WORLD):
        subsets = results[r]['subsets']
        assert torch.equal(subsets[0], torch.arange(SHARD))
        for s in subsets[1:]:
            assert s.numel() == SHARD // 2 and s.unique().numel() == SHARD // 2
            assert int(s.min()) >= 0 and int(s.max()) < SHARD
    final = results[0]['tables'][-1]
    assert torch.equal(final['dlp_count'].sum(), torch.tensor(16.0 + 3 * WORLD * SHARD // 2))
    # float64 reference following the recorded subsets: weights and the DLP table.
    x, y = global_batch(0)
    rho = 0.1
    w = reference_weights()
    sgd = SGDMomentum(LR, MOMENTUM)
    dlp_sum = torch.zeros(WORLD * SHARD, dtype=torch.float64)
    dlp_count = torch.zeros(WORLD * SHARD, dtype=torch.float64)
    for step in range(4):
        gs_all = []
        for r in range(WORLD):
            idx = results[r]['subsets'][step]
            xs, ys = shard(x, y, r)
            _, gs, l0, l1 = local_sam(w, xs[idx], ys[idx], rho)
            gs_all.append(gs)
            ids = r * SHARD + idx
            dlp_sum[ids] += (l1 - l0).abs()
            dlp_count[ids] += 1
        w = sgd.step(w, mean_over(gs_all))
    assert_matches(results[0]['params'], w)
    assert torch.equal(final['dlp_count'].double(), dlp_count)
    torch.testing.assert_close(final['adlp'].double(), dlp_sum / dlp_count, atol=1e-5, rtol=1e-4)


def test_schedule_seed_broadcast_from_rank0(ddp_results):
    """Ranks seeded differently still agree on every branch (rank 0's seed wins)."""
    results = run_ranks(ddp_results, 'seeds_differ')
    for name, seed in (('random', 0), ('vsam', 1000)):
        a, b = results[0][name], results[1][name]
        assert a['seed'] == b['seed'] == seed, name
        assert a['branches'] == b['branches'], name
        assert any(a['branches']) and not all(a['branches']), (name, a['branches'])
        assert_ranks_identical(a['params'], b['params'])


def test_two_phase_form_is_bitwise_the_closure_form_under_ddp(ddp_results):
    results = run_ranks(ddp_results, 'two_phase')
    for rank in results:
        assert rank['closure']['branches'] == rank['two_phase']['branches']
        assert True in rank['closure']['branches'] and False in rank['closure']['branches']
        assert_ranks_identical(rank['closure']['params'], rank['two_phase']['params'])
    assert_ranks_identical(results[0]['two_phase']['params'], results[1]['two_phase']['params'])
