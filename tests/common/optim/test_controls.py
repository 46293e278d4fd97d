"""The comparison controls: LookSAM and random-schedule SAM."""
import pytest
import torch.nn.functional as F

from common.optim import LookSAM, RandomScheduleSAM
from optim_reference import Reference, assert_close_to_reference, batch, global_norm, sam_gradient, tiny_mlp


def test_looksam_matches_float64_reference():
    model = tiny_mlp()
    ref = Reference(model)
    w = ref.weights()
    rho, lr, k, alpha = 0.1, 0.05, 3, 0.7
    opt = LookSAM(model.parameters(), 'SGD', rho=rho, k=k, alpha=alpha, lr=lr)
    gv = None
    for i in range(7):
        x, y = batch(seed=i)
        opt.step(lambda: F.cross_entropy(model(x), y), model=model)
        if i % k == 0:
            g, gs, _, _ = sam_gradient(ref, w, x, y, rho)
            dot = sum((a * b).sum() for a, b in zip(g, gs))
            gv = [b - dot / global_norm(g) ** 2 * a for a, b in zip(g, gs)]
            d = gs
        else:
            _, g = ref.grad(w, x, y)
            d = [gi + alpha * global_norm(g) / global_norm(gv) * vi for gi, vi in zip(g, gv)]
        w = [wi - lr * di for wi, di in zip(w, d)]
    assert_close_to_reference(model, w, atol=1e-5)


def test_random_schedule_share_matches_probability():
    model = tiny_mlp()
    opt = RandomScheduleSAM(model.parameters(), 'SGD', rho=0.05, sam_prob=0.3, lr=0.01, seed=0)
    calls = []
    x, y = batch()

    def closure():
        calls[-1] += 1
        return F.cross_entropy(model(x), y)
    n = 400
    for _ in range(n):
        calls.append(0)
        opt.step(closure, model=model)
    share = sum(c == 2 for c in calls) / n
    sd = (0.3 * 0.7 / n) ** 0.5
    assert abs(share - 0.3) < 4 * sd and set(calls) == {1, 2}


@pytest.mark.parametrize('bad', [0.0, 1.2])
def test_random_schedule_rejects_bad_probability(bad):
    with pytest.raises(ValueError, match=r'sam_prob must be in \(0, 1\]'):
        RandomScheduleSAM(tiny_mlp().parameters(), 'SGD', sam_prob=bad, lr=0.1)
