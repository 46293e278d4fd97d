import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.optim import AUSAM, UniformSubsetSAM
from optim_reference import SGD, Reference, assert_close_to_reference, batch, sam_gradient, tiny_mlp


def make(num_samples=12, **kwargs):
    model = tiny_mlp()
    kwargs.setdefault('lr', 0.1)
    return model, AUSAM(model.parameters(), 'SGD', num_samples=num_samples, seed=0, **kwargs)


class Recorder:
    """Closure that records the rows it was asked for and the per-sample losses it returned."""

    def __init__(self, model, x, y):
        self.model, self.x, self.y, self.calls = model, x, y, []

    def __call__(self, index):
        losses = F.cross_entropy(self.model(self.x[index]), self.y[index], reduction='none')
        self.calls.append((index.clone(), losses.detach().clone()))
        return losses


def test_epoch_zero_trains_on_the_whole_batch_then_subsets():
    model, opt = make(alpha=0.5)
    x, y = batch(12)
    rec = Recorder(model, x, y)
    opt.step(rec, model=model, sample_ids=torch.arange(12))
    assert [c[0].tolist() for c in rec.calls] == [list(range(12))] * 2
    opt.set_epoch(1)
    rec.calls.clear()
    opt.step(rec, model=model, sample_ids=torch.arange(12))
    (i0, _), (i1, _) = rec.calls
    assert torch.equal(i0, i1) and i0.numel() == 6 and i0.unique().numel() == 6


def test_single_step_matches_float64_reference_on_the_drawn_subset():
    model, opt = make(alpha=0.5, rho=0.1, momentum=0.9, lr=0.1)
    ref, sgd = Reference(model), SGD(lr=0.1, momentum=0.9)
    w = ref.weights()
    for epoch in range(3):
        opt.set_epoch(epoch)
        x, y = batch(12, seed=epoch)
        rec = Recorder(model, x, y)
        opt.step(rec, model=model, sample_ids=torch.arange(12))
        index = rec.calls[0][0]
        _, gs, _, _ = sam_gradient(ref, w, x, y, 0.1, index=index)
        w = sgd.step(w, gs)
    assert_close_to_reference(model, w)


def test_dlp_and_adlp_follow_the_running_mean():
    model, opt = make(alpha=0.5, rho=0.5)
    expected_sum, expected_count = np.zeros(12), np.zeros(12)
    for epoch in range(4):
        opt.set_epoch(epoch)
        x, y = batch(12, seed=epoch)
        rec = Recorder(model, x, y)
        opt.step(rec, model=model, sample_ids=torch.arange(12))
        (index, before), (_, after) = rec.calls
        dlp = (after - before).abs().double().numpy()
        expected_sum[index.numpy()] += dlp
        expected_count[index.numpy()] += 1
        seen = expected_count > 0
        expected = np.where(seen, expected_sum / np.maximum(expected_count, 1), 1.0)
        np.testing.assert_allclose(opt.adlp.numpy(), expected, rtol=1e-5, atol=1e-7)
        if epoch == 0:  # epoch 0 sets ADLP = DLP for every sample
            np.testing.assert_allclose(opt.adlp.numpy(), dlp, rtol=1e-5, atol=1e-7)


def test_dlp_ema_option():
    model, opt = make(alpha=1.0, rho=0.5, dlp_momentum=0.9)
    x, y = batch(12)
    values = []
    for epoch in range(2):
        opt.set_epoch(epoch)
        rec = Recorder(model, x, y)
        opt.step(rec, model=model, sample_ids=torch.arange(12))
        (index, before), (_, after) = rec.calls
        dlp = torch.zeros(12)
        dlp[index] = (after - before).abs()
        values.append(dlp)
    torch.testing.assert_close(opt.adlp, 0.9 * values[0] + 0.1 * values[1])


def test_probabilities_follow_the_linear_map_and_ramp():
    _, opt = make(num_samples=4, f_min=0.1, f_max=0.5, ramp_epochs=10)
    opt.adlp.copy_(torch.tensor([0.2, 0.4, 0.6, 1.0]))
    ids = torch.arange(4)
    opt.set_epoch(0)  # f_max(0) = f_min: uniform
    torch.testing.assert_close(opt.probabilities(ids), torch.full((4,), 0.25))
    opt.set_epoch(5)  # f_max(5) = 0.3
    q = np.array([0.0, 0.25, 0.5, 1.0]) * (0.3 - 0.1) + 0.1
    torch.testing.assert_close(opt.probabilities(ids), torch.tensor(q / q.sum(), dtype=torch.float32))
    opt.set_epoch(50)  # ramp done: f_max
    q = np.array([0.0, 0.25, 0.5, 1.0]) * (0.5 - 0.1) + 0.1
    torch.testing.assert_close(opt.probabilities(ids), torch.tensor(q / q.sum(), dtype=torch.float32))
    opt.adlp.fill_(0.7)  # all equal: uniform, not NaN
    torch.testing.assert_close(opt.probabilities(ids), torch.full((4,), 0.25))


def _draw_frequencies(opt, ids, k, draws):
    first, included = torch.zeros(ids.numel()), torch.zeros(ids.numel())
    p = opt.probabilities(ids)
    for _ in range(draws):
        s = torch.multinomial(p, k, replacement=False, generator=opt.generator)
        first[s[0]] += 1
        included[s] += 1
    return p, first / draws, included / draws


def test_subset_frequencies_match_the_probabilities():
    """k = 1: inclusion frequency = p_i; k = 3: the exact inclusion probabilities of sequential draws.

    Tolerance: 4.5 binomial standard deviations per entry (a false alarm has probability
    < 1e-4 over the 8 entries), with the fixed seed of the sampler.
    """
    _, opt = make(num_samples=8, ramp_epochs=0)
    opt.adlp.copy_(torch.tensor([0.05, 0.1, 0.2, 0.3, 0.4, 0.8, 1.2, 2.0]))
    opt.set_epoch(1)
    ids, draws = torch.arange(8), 20000
    p, first, _ = _draw_frequencies(opt, ids, 1, draws)
    sd = torch.sqrt(p * (1 - p) / draws)
    assert torch.all((first - p).abs() < 4.5 * sd), (first, p)

    # Inclusion probabilities of k = 3 sequential draws without replacement, exactly, by
    # enumerating the 8 * 7 * 6 ordered draws.
    pn = p.double().numpy() / p.double().sum().item()
    exact = np.zeros(8)
    for seq in itertools.permutations(range(8), 3):
        prob, left = 1.0, 1.0
        for i in seq:
            prob *= pn[i] / left
            left -= pn[i]
        exact[list(seq)] += prob
    _, _, included = _draw_frequencies(opt, ids, 3, draws)
    sd = np.sqrt(exact * (1 - exact) / draws)
    assert np.all(np.abs(included.numpy() - exact) < 4.5 * sd), (included, exact)
    # And larger ADLP is drawn more often.
    assert included[7] > included[0]


def test_uniform_subset_control_draws_uniformly():
    model = tiny_mlp()
    opt = UniformSubsetSAM(model.parameters(), 'SGD', num_samples=8, seed=0, lr=0.1)
    opt.adlp.copy_(torch.linspace(0.1, 5, 8))
    torch.testing.assert_close(opt.probabilities(torch.arange(8)), torch.full((8,), 0.125))


def test_batch_of_one_and_small_alpha_draw_one_sample():
    model, opt = make(alpha=0.1)
    opt.set_epoch(3)
    x, y = batch(1)
    rec = Recorder(model, x, y)
    opt.step(rec, model=model, sample_ids=torch.tensor([5]))
    assert rec.calls[0][0].tolist() == [0]
    x, y = batch(6)
    rec = Recorder(model, x, y)
    opt.step(rec, model=model, sample_ids=torch.arange(6))
    assert rec.calls[0][0].numel() == 1


def test_importance_weights_make_the_objective_unbiased():
    model, opt = make(alpha=0.5, importance_weighted=True)
    opt.set_epoch(1)
    opt.adlp.copy_(torch.linspace(0.1, 2.0, 12))
    plan = opt._plan(torch.arange(12))
    p = opt.probabilities(torch.arange(12))
    torch.testing.assert_close(plan.weights, 1.0 / (12 * p[plan.index]))


def test_bad_inputs_get_clear_errors():
    model, opt = make()
    x, y = batch(12)
    closure = Recorder(model, x, y)
    with pytest.raises(ValueError, match='needs sample_ids'):
        opt.step(closure, model=model)
    with pytest.raises(IndexError, match=r'must lie in \[0, num_samples=12\)'):
        opt.step(closure, model=model, sample_ids=torch.arange(12) + 5)
    with pytest.raises(ValueError, match='needs per-sample losses'):
        opt.step(lambda idx: F.cross_entropy(model(x[idx]), y[idx]), model=model, sample_ids=torch.arange(12))
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r'alpha must be in \(0, 1\]'):
            make(alpha=bad)
    with pytest.raises(TypeError):
        AUSAM(tiny_mlp().parameters(), 'SGD', lr=0.1)  # num_samples is required
