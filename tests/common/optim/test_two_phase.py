"""The two-phase form (begin / first_step / second_step) for loops that own backward.

It must take bitwise the same trajectory as ``step(closure)`` for every optimizer, with SGD
and AdamW, with and without a GradScaler, and with BatchNorm (frozen in the second pass
through the context manager the caller uses).
"""
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F

from common.optim import AUSAM, OPTIMIZERS, SAM, VSAM
from optim_reference import batch, tiny_mlp
from registry_helpers import build, step

BASES = {'SGD': dict(lr=0.05, momentum=0.9, weight_decay=1e-3), 'AdamW': dict(lr=1e-2)}


def two_phase_step(opt, model, x, y, ids, scaler=None, call_begin=True):
    """A training loop that owns backward, as Lightning's manual optimisation or Accelerate."""
    if opt.uses_sample_ids or call_begin:
        it = opt.begin(sample_ids=ids)
    opt.zero_grad(set_to_none=True)
    with opt.first_pass(model):
        it = opt.last_iteration
        rows = slice(None) if it.index is None else it.index
        losses = F.cross_entropy(model(x[rows]), y[rows], reduction='none')
        objective = it.objective(losses)
        (scaler.scale(objective) if scaler is not None else objective).backward()
    if opt.first_step(scaler=scaler, loss=losses.detach()):
        with opt.second_pass(model):
            losses_after = F.cross_entropy(model(x[rows]), y[rows], reduction='none')
            objective = it.objective(losses_after)
            (scaler.scale(objective) if scaler is not None else objective).backward()
        opt.second_step(loss=losses_after.detach())
    else:
        opt.second_step()
    return it


def scaler_or_none(scaled):
    return torch.amp.GradScaler('cpu', init_scale=2.0 ** 10) if scaled else None


@pytest.mark.parametrize('scaled', [False, True], ids=['fp32', 'grad_scaler'])
@pytest.mark.parametrize('base', sorted(BASES))
@pytest.mark.parametrize('name', sorted(OPTIMIZERS))
def test_two_phase_is_bitwise_the_closure_trajectory(name, base, scaled):
    models = tiny_mlp(batchnorm=True), tiny_mlp(batchnorm=True)
    kwargs = dict(base_optimizer=base, rho=0.1, **BASES[base])
    if name == 'VSAM':
        kwargs.update(fixed_rate=0.5)
    if name == 'LookSAM':
        kwargs.update(k=3)
    opts = [build(name, m.parameters(), **kwargs) for m in models]
    scalers = scaler_or_none(scaled), scaler_or_none(scaled)
    seen = set()
    for i in range(10):
        x, y = batch(seed=i)
        ids = torch.arange(12) + 12 * (i % 3)
        if opts[0].uses_sample_ids:
            for opt in opts:
                opt.set_epoch(i // 3)
        step(opts[0], models[0], x, y, ids, scaler=scalers[0])
        it = two_phase_step(opts[1], models[1], x, y, ids, scalers[1], call_begin=i % 2 == 0)
        seen.add(it.sam)
        assert it.sam == opts[0].last_iteration.sam
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        assert torch.equal(a, b)
    if scaled:
        assert scalers[0].get_scale() == scalers[1].get_scale()
    state_a, state_b = opts[0].state_dict(), opts[1].state_dict()
    for key, value in state_a['state'].items():
        for k, v in value.items():
            assert torch.equal(v, state_b['state'][key][k])
    if name in ('VSAM', 'LookSAM', 'RandomScheduleSAM'):
        assert seen == {True, False}, 'first_step must say when no second pass is wanted'


def test_first_step_says_whether_a_second_pass_is_wanted():
    model = tiny_mlp()
    opt = VSAM(model.parameters(), 'SGD', rho=0.1, lr=0.1, fixed_rate=0.25, window=4, seed=0)
    x, y = batch()
    passes = []
    for _ in range(8):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        wanted = opt.first_step()
        passes.append(wanted)
        if wanted:
            F.cross_entropy(model(x), y).backward()
        opt.second_step()
    assert sum(passes) == 2, 'fixed share 1/4 over two windows of 4: exactly 2 SAM iterations'
    assert opt.sam_iterations == 2


def test_ausam_needs_begin_and_both_per_sample_losses():
    model = tiny_mlp()
    opt = AUSAM(model.parameters(), 'SGD', rho=0.1, lr=0.1, num_samples=12, seed=0)
    x, y = batch()
    with pytest.raises(RuntimeError, match=r'begin\(sample_ids=ids\)'):
        opt.first_step()
    it = opt.begin(sample_ids=torch.arange(12))
    F.cross_entropy(model(x[it.index]), y[it.index]).backward()
    with pytest.raises(ValueError, match='per-sample losses'):
        opt.first_step(loss=torch.zeros(()))
    # a failed first_step drops the iteration: begin again
    it = opt.begin(sample_ids=torch.arange(12))
    opt.zero_grad()
    losses = F.cross_entropy(model(x[it.index]), y[it.index], reduction='none')
    losses.mean().backward()
    assert opt.first_step(loss=losses.detach()) is True


def test_misordered_calls_get_clear_errors_and_leave_weights_restored():
    model = tiny_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model.parameters(), 'SGD', rho=0.5, lr=0.1)
    x, y = batch()
    with pytest.raises(RuntimeError, match='needs first_step'):
        opt.second_step()
    F.cross_entropy(model(x), y).backward()
    opt.first_step()
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before)), 'w + e'
    with pytest.raises(RuntimeError, match='called twice'):
        opt.first_step()
    with pytest.raises(RuntimeError, match='no parameter received a gradient'):
        opt.second_step()  # the second backward was forgotten
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q), 'the weights must be restored from the backup'
    with pytest.raises(RuntimeError, match='has not been finished'):
        opt.begin()
        opt.step(lambda: F.cross_entropy(model(x), y), model=model)


def test_closure_error_in_the_second_pass_restores_the_weights():
    model = tiny_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model.parameters(), 'SGD', rho=0.5, lr=0.1)
    x, y = batch()
    calls = []

    def closure():
        calls.append(None)
        if len(calls) == 2:
            raise KeyError('data loader failed')
        return F.cross_entropy(model(x), y)
    with pytest.raises(KeyError):
        opt.step(closure, model=model)
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q)
    opt.step(lambda: F.cross_entropy(model(x), y), model=model)  # the next iteration runs


def test_first_pass_is_a_no_op_outside_ddp():
    model = tiny_mlp()
    opt = SAM(model.parameters(), 'SGD', rho=0.1, lr=0.1)
    assert isinstance(opt.first_pass(model), nullcontext)


def test_a_disabled_grad_scaler_is_no_scaler():
    """GradScaler(enabled=use_amp) with use_amp False: same result as scaler=None."""
    a, b = tiny_mlp(), tiny_mlp()
    opt_a = SAM(a.parameters(), 'SGD', rho=0.1, lr=0.1)
    opt_b = SAM(b.parameters(), 'SGD', rho=0.1, lr=0.1)
    off = torch.amp.GradScaler('cpu', enabled=False)
    for i in range(3):
        x, y = batch(seed=i)
        opt_a.step(lambda: F.cross_entropy(a(x), y), model=a, scaler=off)
        opt_b.step(lambda: F.cross_entropy(b(x), y), model=b)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_abort_drops_a_failed_iteration_and_the_next_one_runs():
    model, twin = tiny_mlp(), tiny_mlp()
    opt = SAM(model.parameters(), 'SGD', rho=0.5, lr=0.1)
    ref = SAM(twin.parameters(), 'SGD', rho=0.5, lr=0.1)
    x, y = batch()
    F.cross_entropy(model(x), y).backward()
    assert opt.first_step()
    opt.abort()   # e.g. the second forward ran out of memory
    opt.zero_grad()
    two_phase_step(opt, model, x, y, None)   # the next batch trains normally
    ref.step(lambda: F.cross_entropy(twin(x), y), model=twin)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)
    opt.abort()  # nothing in progress: a no-op


def test_a_failing_first_step_never_restores_a_stale_backup():
    """Before: a first_step that failed (here: a float64 norm, or a disabled scaler) rolled w back
    to the previous iteration's backup."""
    model = tiny_mlp()
    opt = SAM(model.parameters(), 'SGD', rho=0.5, lr=0.5)
    x, y = batch()
    opt.step(lambda: F.cross_entropy(model(x), y), model=model)
    after_first = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    with pytest.raises(RuntimeError, match='no parameter received a gradient'):
        opt.first_step()   # no backward was run
    F.cross_entropy(model(x), y).backward()

    def fails(groups):
        raise MemoryError('out of memory while building the perturbation')
    opt._before_perturb = fails   # a failure after the gradients were unscaled
    with pytest.raises(MemoryError):
        opt.first_step()
    for p, q in zip(model.parameters(), after_first):
        assert torch.equal(p, q)


def test_two_phase_goes_through_step_for_hooks_and_lr_schedulers():
    import warnings
    model = tiny_mlp()
    opt = SAM(model.parameters(), 'SGD', rho=0.1, lr=0.1)
    calls = []
    opt.register_step_post_hook(lambda *args: calls.append(None))
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    x, y = batch()
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # "lr_scheduler.step() before optimizer.step()" would raise
        for _ in range(2):
            two_phase_step(opt, model, x, y, None)
            scheduler.step()
    assert len(calls) == 2 and opt.param_groups[0]['lr'] == pytest.approx(0.025)


def test_check_finite_applies_to_the_two_phase_loss():
    model = tiny_mlp()
    before = [p.detach().clone() for p in model.parameters()]
    opt = SAM(model.parameters(), 'SGD', rho=0.1, lr=0.1, check_finite=True)
    x, y = batch()
    loss = F.cross_entropy(model(x), y) * float('nan')
    loss.backward()
    with pytest.raises(FloatingPointError, match='not finite'):
        opt.first_step(loss=loss.detach())
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q)
