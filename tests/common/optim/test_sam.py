import pytest
import torch
import torch.nn.functional as F

from common.optim import SAM, frozen_running_stats
from optim_reference import SGD, Reference, assert_close_to_reference, batch, sam_gradient, tiny_mlp


@pytest.mark.parametrize('adaptive,rho', [(False, 0.05), (True, 0.5)])
def test_sam_matches_float64_reference(adaptive, rho):
    model = tiny_mlp()
    ref, sgd = Reference(model), SGD(lr=0.1, momentum=0.9, weight_decay=1e-3)
    w = ref.weights()
    opt = SAM(model.parameters(), 'SGD', rho=rho, adaptive=adaptive, lr=0.1, momentum=0.9,
              weight_decay=1e-3)
    for seed in range(3):
        x, y = batch(seed=seed)
        opt.step(lambda: F.cross_entropy(model(x), y), model=model)
        _, gs, _, _ = sam_gradient(ref, w, x, y, rho, adaptive)
        w = sgd.step(w, gs)
    assert_close_to_reference(model, w)


def test_perturbation_is_global_norm_and_uses_group_rho():
    """Two param groups with different rho: one global ||g||, each group its own rho."""
    model = tiny_mlp()
    ref = Reference(model)
    w = ref.weights()
    first, rest = list(model.parameters())[:2], list(model.parameters())[2:]
    opt = SAM([dict(params=first, rho=0.2), dict(params=rest)], 'SGD', rho=0.05, lr=0.1)
    x, y = batch()
    opt.step(lambda: F.cross_entropy(model(x), y), model=model)
    _, g = ref.grad(w, x, y)
    n = torch.sqrt(sum((t ** 2).sum() for t in g))
    e = [(0.2 if i < 2 else 0.05) * gi / n for i, gi in enumerate(g)]
    _, gs = ref.grad([wi + ei for wi, ei in zip(w, e)], x, y)
    assert_close_to_reference(model, [wi - 0.1 * gi for wi, gi in zip(w, gs)])


def test_second_pass_leaves_running_stats_as_one_forward():
    model = tiny_mlp(batchnorm=True)
    probe = tiny_mlp(batchnorm=True)
    probe.load_state_dict(model.state_dict())
    x, y = batch()
    probe(x)  # one training-mode forward at w: what the running stats must show
    opt = SAM(model.parameters(), 'SGD', rho=0.5, lr=0.0)
    opt.step(lambda: F.cross_entropy(model(x), y), model=model)
    bn, bn_probe = model[1], probe[1]
    torch.testing.assert_close(bn.running_mean, bn_probe.running_mean, rtol=0, atol=0)
    torch.testing.assert_close(bn.running_var, bn_probe.running_var, rtol=0, atol=0)
    assert int(bn.num_batches_tracked) == 1


def test_frozen_running_stats_restores_every_buffer():
    model = tiny_mlp(batchnorm=True)
    model.register_buffer('ema', torch.zeros(3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with frozen_running_stats(model):
        model(batch()[0])
        model.ema += 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
