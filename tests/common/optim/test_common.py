"""Properties every optimizer of the registry must have (a new optimizer is tested by registering it)."""

import pytest
import torch
import torch.nn.functional as F

from common.optim import OPTIMIZERS, SAM, build_sam_optimizer
from optim_reference import batch, tiny_mlp
from registry_helpers import build, step

NAMES = sorted(OPTIMIZERS)


def batches(n_steps, n=12):
    for i in range(n_steps):
        x, y = batch(n, seed=i)
        yield x, y, torch.arange(n) + (i % 4) * n


# LookSAM at rho = 0 divides 0 by 0 (g_v = 0 and ||g_v|| = 0): it is not the base optimizer.
@pytest.mark.parametrize('name', [n for n in NAMES if n != 'LookSAM'])
@pytest.mark.parametrize('base,kwargs', [('SGD', dict(lr=0.1, momentum=0.9, weight_decay=1e-3)),
                                         ('AdamW', dict(lr=1e-2))])
def test_rho_zero_is_exactly_the_base_optimizer(name, base, kwargs):
    model, plain = tiny_mlp(), tiny_mlp()
    opt = build(name, model.parameters(), base_optimizer=base, rho=0.0, **kwargs)
    ref = getattr(torch.optim, base)(plain.parameters(), **kwargs)
    for x, y, ids in batches(8):
        step(opt, model, x, y, ids)  # AUSAM stays in epoch 0: the whole batch, in order
        ref.zero_grad()
        F.cross_entropy(plain(x), y).backward()
        ref.step()
    for p, q in zip(model.parameters(), plain.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize('name', NAMES)
def test_resume_continues_bitwise(name, tmp_path):
    def fresh():
        model = tiny_mlp(batchnorm=True)
        return model, build(name, model.parameters(), rho=0.1, lr=0.05, momentum=0.9)

    def run(model, opt, steps):
        for i, (x, y, ids) in enumerate(steps):
            if opt.uses_sample_ids:
                opt.set_epoch(i // 4)
            step(opt, model, x, y, ids)

    all_steps = list(batches(14))
    model, opt = fresh()
    torch.manual_seed(123)
    run(model, opt, all_steps)

    model_a, opt_a = fresh()
    run(model_a, opt_a, all_steps[:6])
    torch.save(dict(model=model_a.state_dict(), opt=opt_a.state_dict()), tmp_path / 'ckpt.pth')
    model_b, opt_b = fresh()
    ckpt = torch.load(tmp_path / 'ckpt.pth', weights_only=False)
    model_b.load_state_dict(ckpt['model'])
    opt_b.load_state_dict(ckpt['opt'])
    if opt_b.uses_sample_ids:
        opt_b.set_epoch(1)
    torch.manual_seed(123)
    for i, (x, y, ids) in enumerate(all_steps[6:], start=6):
        if opt_b.uses_sample_ids:
            opt_b.set_epoch(i // 4)
        step(opt_b, model_b, x, y, ids)
    for p, q in zip(model.state_dict().values(), model_b.state_dict().values()):
        assert torch.equal(p, q)


@pytest.mark.parametrize('name', NAMES)
def test_state_dict_holds_base_state_and_shares_param_groups(name):
    model = tiny_mlp()
    opt = build(name, model.parameters(), rho=0.1, lr=0.05, momentum=0.9)
    x, y, ids = next(batches(1))
    step(opt, model, x, y, ids)
    assert opt.param_groups is opt.base_optimizer.param_groups
    state = opt.state_dict()
    assert all('momentum_buffer' in s for s in state['state'].values()) and state['state']
    assert state['param_groups'][0]['rho'] == 0.1
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    step(opt, model, x, y, ids)
    sched.step()
    assert opt.base_optimizer.param_groups[0]['lr'] == pytest.approx(0.025)
    other = build(name, tiny_mlp().parameters(), rho=0.3, lr=0.05, momentum=0.9)
    other.load_state_dict(opt.state_dict())
    assert other.param_groups is other.base_optimizer.param_groups
    assert other.param_groups[0]['rho'] == 0.1 and other.param_groups[0]['lr'] == pytest.approx(0.025)


@pytest.mark.parametrize('name', NAMES)
def test_rejects_negative_rho(name):
    with pytest.raises(ValueError, match='rho must be >= 0'):
        build(name, tiny_mlp().parameters(), rho=-0.1, lr=0.1)


def test_bad_closures_get_clear_errors():
    model = tiny_mlp()
    x, y = batch()
    opt = SAM(model.parameters(), 'SGD', rho=0.05, lr=0.1)
    with pytest.raises(TypeError, match='needs a closure'):
        opt.step(model=model)
    with pytest.raises(TypeError, match='return the loss as a tensor'):
        opt.step(lambda: None, model=model)

    def calls_backward():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss
    with pytest.raises(RuntimeError, match='called backward'):
        SAM(model.parameters(), 'SGD', lr=0.1).step(calls_backward, model=model)
    with pytest.raises(RuntimeError, match='has no gradient'):
        opt.step(lambda: F.cross_entropy(model(x), y).detach(), model=model)
    with pytest.raises(RuntimeError, match='no parameter received a gradient'):
        SAM(tiny_mlp().parameters(), 'SGD', lr=0.1).step(lambda: F.cross_entropy(model(x), y), model=model)


def test_non_finite_loss_raises_when_checked():
    model = tiny_mlp()
    x, y = batch()
    opt = SAM(model.parameters(), 'SGD', lr=0.1, check_finite=True)
    with pytest.raises(FloatingPointError, match='not finite'):
        opt.step(lambda: F.cross_entropy(model(x), y) * float('inf'), model=model)


def test_base_optimizer_by_name_or_class_and_unknown_name():
    params = list(tiny_mlp().parameters())
    assert isinstance(SAM(params, torch.optim.AdamW, lr=1e-3).base_optimizer, torch.optim.AdamW)
    assert isinstance(SAM(params, 'Adam', lr=1e-3).base_optimizer, torch.optim.Adam)
    with pytest.raises(ValueError, match="Unknown base_optimizer 'Sgd'"):
        SAM(params, 'Sgd', lr=0.1)
    with pytest.raises(KeyError, match='choose one of'):
        build_sam_optimizer('FastSAM', params, lr=0.1)


@pytest.mark.parametrize('name', NAMES)
def test_rho_is_schedulable_per_group(name):
    """Setting a group's rho to 0 mid-run removes the perturbation (SAM gradient = g)."""
    model, plain = tiny_mlp(), tiny_mlp()
    opt = build(name, model.parameters(), rho=0.5, lr=0.1)
    for group in opt.param_groups:
        group['rho'] = 0.0
    ref = torch.optim.SGD(plain.parameters(), lr=0.1)
    x, y, ids = next(batches(1))
    step(opt, model, x, y, ids)
    ref.zero_grad()
    F.cross_entropy(plain(x), y).backward()
    ref.step()
    for p, q in zip(model.parameters(), plain.parameters()):
        assert torch.equal(p, q)
