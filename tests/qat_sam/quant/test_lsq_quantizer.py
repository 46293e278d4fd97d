"""LSQ quantizers (qat_sam.quant) against independent references.

References: PyTorch's ``torch._fake_quantize_learnable_per_{tensor,channel}_affine`` (same forward,
step-size gradient times ``grad_factor``; it decides "clipped" after rounding), and LSQ's closed
form (Esser et al., ICLR 2020) for the half-step bands where the two definitions differ.
"""
import math

import pytest
import torch
from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU
from torch import nn

from qat_sam.quant import (LSQActQuant, LSQWeightQuant, lsq_conv2d, lsq_identity, lsq_linear,
                           lsq_quantizers, lsq_relu)

BITS = [2, 3, 4, 8]


def the_step(module):
    (q,) = lsq_quantizers(module).values()
    return q


def signed_range(b):
    return 2 ** (b - 1), 2 ** (b - 1) - 1


def unsigned_range(b):
    return 0, 2 ** b - 1


def grid_coords(shape, q_n, q_p, gen):
    """v/s values: integers k in [-Q_N - 2, Q_P + 2] plus a fraction in [-0.4, 0.4], moved out of
    the half-step bands (Q_P, Q_P + 0.5) and (-Q_N - 0.5, -Q_N) where PyTorch and LSQ differ."""
    k = torch.randint(-q_n - 2, q_p + 3, shape, generator=gen).float()
    f = (torch.rand(shape, generator=gen) - 0.5) * 0.8
    k = torch.where((k == q_p) & (f > 0), k + 1, k)
    k = torch.where((k == -q_n) & (f < 0), k - 1, k)
    return k + f


def reference_per_tensor(x, s, q_n, q_p, g):
    return torch._fake_quantize_learnable_per_tensor_affine(
        x, s.reshape(1), torch.zeros(1), -q_n, q_p, g)


def reference_per_channel(x, s, q_n, q_p, g):
    return torch._fake_quantize_learnable_per_channel_affine(
        x, s, torch.zeros_like(s), 0, -q_n, q_p, g)


def set_step(q, value):
    with torch.no_grad():
        q.step.copy_(torch.as_tensor(value).reshape(q.step.shape))


# ----------------------------------------------------------------- forward and gradients
@pytest.mark.parametrize('bits', BITS)
@pytest.mark.parametrize('per_channel', [False, True])
def test_weight_quant_matches_pytorch_reference(bits, per_channel):
    gen = torch.Generator().manual_seed(bits)
    q_n, q_p = signed_range(bits)
    conv = QuantConv2d(3, 5, 3, weight_quant=LSQWeightQuant, weight_bit_width=bits,
                       weight_scaling_per_output_channel=per_channel)
    q = the_step(conv)
    s = torch.rand(5 if per_channel else 1, generator=gen) * 0.1 + 0.02
    u = grid_coords(conv.weight.shape, q_n, q_p, gen)
    with torch.no_grad():
        conv.weight.copy_(u * s.reshape(-1, 1, 1, 1))
    set_step(q, s)
    r = torch.randn(conv.weight.shape, generator=gen)

    wq = conv.quant_weight().value
    (wq * r).sum().backward()

    w_ref = conv.weight.detach().clone().requires_grad_()
    s_ref = s.clone().requires_grad_()
    n = conv.weight[0].numel() if per_channel else conv.weight.numel()  # weights per step
    g = 1.0 / math.sqrt(n * q_p)
    ref = reference_per_channel if per_channel else reference_per_tensor
    y_ref = ref(w_ref, s_ref, q_n, q_p, g)
    (y_ref * r).sum().backward()

    torch.testing.assert_close(wq, y_ref, rtol=0, atol=0)
    torch.testing.assert_close(conv.weight.grad, w_ref.grad, rtol=1e-6, atol=1e-7)
    # a sum of many terms of size up to Q_P: float32 error ~ eps * sum |term|
    torch.testing.assert_close(q.step.grad.flatten(), s_ref.grad.flatten(), rtol=0,
                               atol=1e-6 * g * (q_p + 2) * r.abs().sum().item())


@pytest.mark.parametrize('bits', BITS)
@pytest.mark.parametrize('signed', [False, True])
def test_act_quant_matches_pytorch_reference(bits, signed):
    gen = torch.Generator().manual_seed(10 + bits)
    q_n, q_p = signed_range(bits) if signed else unsigned_range(bits)
    act = lsq_identity(bits, signed=signed)
    q = the_step(act)
    x0 = torch.randn(4, 3, 5, 5, generator=gen)
    act(x0)  # first training batch initialises the step; then pick it
    s = torch.tensor(0.07)
    set_step(q, s)
    x = (grid_coords(x0.shape, q_n, q_p, gen) * s).requires_grad_()
    r = torch.randn(x.shape, generator=gen)

    y = act(x)
    (y * r).sum().backward()

    x_ref = x.detach().clone().requires_grad_()
    s_ref = s.clone().requires_grad_()
    g = 1.0 / math.sqrt(3 * 5 * 5 * q_p)  # features of one sample
    y_ref = reference_per_tensor(x_ref, s_ref, q_n, q_p, g)
    (y_ref * r).sum().backward()

    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(q.step.grad.reshape(1), s_ref.grad.reshape(1), rtol=0,
                               atol=1e-6 * g * (q_p + 2) * r.abs().sum().item())


@pytest.mark.parametrize('bits', [2, 4])
def test_relu_quant_matches_reference_on_relu(bits):
    gen = torch.Generator().manual_seed(20 + bits)
    q_n, q_p = unsigned_range(bits)
    act = lsq_relu(bits)
    q = the_step(act)
    act(torch.randn(2, 8, generator=gen))
    s = torch.tensor(0.05)
    set_step(q, s)
    x = (grid_coords((6, 8), q_n, q_p, gen) * s).requires_grad_()
    (act(x) * 2.0).sum().backward()

    x_ref = x.detach().clone().requires_grad_()
    s_ref = s.clone().requires_grad_()
    y_ref = reference_per_tensor(torch.relu(x_ref), s_ref, q_n, q_p, 1.0 / math.sqrt(8 * q_p))
    (y_ref * 2.0).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(q.step.grad.reshape(1), s_ref.grad.reshape(1), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('bits', [2, 4, 8])
def test_half_step_bands_follow_lsq_closed_form(bits):
    """v/s in (Q_P, Q_P + 1/2) and (-Q_N - 1/2, -Q_N) is clipped for LSQ: d/dv = 0 and
    d/ds = Q_P or -Q_N, times g (PyTorch's reference counts these values as inside)."""
    gen = torch.Generator().manual_seed(30 + bits)
    q_n, q_p = signed_range(bits)
    lin = QuantLinear(16, 2, bias=False, weight_quant=LSQWeightQuant, weight_bit_width=bits)
    q = the_step(lin)
    s = 0.03
    set_step(q, s)
    f = torch.rand(2, 16, generator=gen) * 0.4 + 0.05  # inside (0, 1/2), away from the edges
    u = torch.cat([q_p + f[:1], -q_n - f[1:]])
    with torch.no_grad():
        lin.weight.copy_(u * s)
    wq = lin.quant_weight().value
    wq.sum().backward()

    g = 1.0 / math.sqrt(lin.weight.numel() * q_p)
    expected_w = torch.cat([torch.full((1, 16), q_p * s), torch.full((1, 16), -q_n * s)])
    torch.testing.assert_close(wq, expected_w, rtol=0, atol=1e-7)
    assert torch.equal(lin.weight.grad, torch.zeros_like(lin.weight))
    torch.testing.assert_close(q.step.grad, torch.tensor(16 * (q_p - q_n) * g), rtol=1e-6, atol=0)

    # The reference really does differ there (so this band needs its own test).
    w_ref = lin.weight.detach().clone().requires_grad_()
    reference_per_tensor(w_ref, torch.tensor(s), q_n, q_p, g).sum().backward()
    assert torch.equal(w_ref.grad, torch.ones_like(w_ref))


def test_unsigned_band_below_zero_is_clipped():
    """Unsigned: v/s in (-1/2, 0) is clipped (Q_N = 0): output 0, d/dv = 0, d/ds = -Q_N = 0."""
    act = lsq_identity(4, signed=False)
    q = the_step(act)
    act(torch.rand(2, 10) + 0.1)
    set_step(q, 0.1)
    x = (-torch.linspace(0.05, 0.45, 10) * 0.1).reshape(1, 10).requires_grad_()
    y = act(x)
    y.sum().backward()
    assert torch.equal(y, torch.zeros_like(y))
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert q.step.grad.item() == 0.0


# ----------------------------------------------------------------- initialisation
@pytest.mark.parametrize('per_channel', [False, True])
def test_weight_step_initialised_from_pretrained_weights(per_channel):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, bias=True)
    with torch.no_grad():
        conv.weight.mul_(torch.linspace(0.5, 3.0, 6).reshape(6, 1, 1, 1))  # distinct channels
    qconv = lsq_conv2d(conv, bit_width=4, per_channel=per_channel)
    q = the_step(qconv)
    w = conv.weight.detach()
    if per_channel:
        expected = 2 * w.abs().mean(dim=(1, 2, 3)) / math.sqrt(7)
    else:
        expected = (2 * w.abs().mean() / math.sqrt(7)).reshape(1)
    torch.testing.assert_close(q.step.detach().flatten(), expected, rtol=1e-6, atol=0)
    assert bool(q.initialized)
    assert torch.equal(qconv.weight, conv.weight) and torch.equal(qconv.bias, conv.bias)
    assert qconv.weight.data_ptr() != conv.weight.data_ptr()  # a copy, not shared


def test_weight_step_initialised_at_construction_and_on_request():
    lin = QuantLinear(12, 3, bias=False, weight_quant=LSQWeightQuant, weight_bit_width=8,
                      weight_scaling_per_output_channel=True)
    q = the_step(lin)
    expected = 2 * lin.weight.detach().abs().mean(dim=1) / math.sqrt(127)
    torch.testing.assert_close(q.step.detach().flatten(), expected, rtol=1e-6, atol=0)
    with torch.no_grad():
        lin.weight.mul_(3.0)
    q.init_from_weight()
    torch.testing.assert_close(q.step.detach().flatten(), 3 * expected, rtol=1e-6, atol=0)

    fc = nn.Linear(12, 3)
    qfc = lsq_linear(fc, bit_width=8, per_channel=False)
    expected = 2 * fc.weight.detach().abs().mean() / math.sqrt(127)
    torch.testing.assert_close(the_step(qfc).step.detach(), expected, rtol=1e-6, atol=0)


def test_act_step_initialised_once_from_first_training_batch():
    act = lsq_relu(4)
    q = the_step(act)
    assert not bool(q.initialized)
    x1, x2 = torch.randn(8, 20), 3 * torch.randn(8, 20)

    act.eval()
    act(x1)  # eval mode never initialises
    assert not bool(q.initialized) and q.step.item() == 1.0

    act.train()
    act(x1)
    expected = 2 * torch.relu(x1).mean() / math.sqrt(15)
    torch.testing.assert_close(q.step.detach(), expected, rtol=1e-6, atol=0)
    assert bool(q.initialized)

    act(x2)  # second training batch: no re-initialisation
    act.eval()
    act(x2)
    torch.testing.assert_close(q.step.detach(), expected, rtol=1e-6, atol=0)


def test_second_pass_after_buffer_restore_does_not_reinitialise():
    """SAM restores buffers around its second pass; even a restore to "uninitialised"
    must not make the second pass initialise again."""
    torch.manual_seed(0)
    model = nn.Sequential(lsq_conv2d(nn.Conv2d(3, 4, 3), 4), lsq_relu(4))
    q = the_step(model[1])
    snapshot = [b.clone() for b in model.buffers()]  # before the first pass: flag unset
    x = torch.randn(2, 3, 6, 6)
    model(x)
    s0 = q.step.detach().clone()
    torch._foreach_copy_(list(model.buffers()), snapshot)
    with torch.no_grad():
        model[0].weight.mul_(2.0)  # the perturbed weights of the second pass
    model(x)
    assert torch.equal(q.step.detach(), s0)
    assert model.state_dict()['1.act_quant.fused_activation_quant_proxy.tensor_quant.'
                              'scaling_impl.initialized'].item() is True


def test_sam_step_initialises_act_step_once():
    from common.optim import SAM
    torch.manual_seed(0)
    model = nn.Sequential(lsq_conv2d(nn.Conv2d(3, 4, 3), 4), lsq_relu(4), nn.Flatten(),
                          lsq_linear(nn.Linear(4 * 4 * 4, 3), 8))
    q = the_step(model[1])
    calls = []
    original = q.init_from
    q.init_from = lambda v: (calls.append(1), original(v))
    opt = SAM(model.parameters(), 'SGD', rho=0.05, lr=0.1)
    x, y = torch.randn(4, 3, 6, 6), torch.tensor([0, 1, 2, 0])
    for _ in range(2):
        opt.step(lambda: nn.functional.cross_entropy(model(x), y), model=model)
    assert len(calls) == 1


# ----------------------------------------------------------------- grid, ranges, parameters
@pytest.mark.parametrize('bits', BITS)
def test_quantized_weights_lie_on_their_grid(bits):
    torch.manual_seed(bits)
    q_n, q_p = signed_range(bits)
    qconv = lsq_conv2d(nn.Conv2d(3, 6, 3), bits, per_channel=True)
    step = the_step(qconv).step.detach()
    k = qconv.quant_weight().value.detach() / step
    torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-4)
    k = k.round()
    assert k.min() >= -q_n and k.max() <= q_p
    assert len(k.unique()) > 2  # not collapsed to a few levels


@pytest.mark.parametrize('bits', BITS)
def test_quantized_activations_lie_on_their_grid(bits):
    act = lsq_relu(bits)
    x = torch.randn(4, 32) * 3
    y = act(x).detach()
    k = y / the_step(act).step.detach()
    torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-4)
    assert k.min() >= 0 and k.round().max() <= 2 ** bits - 1


def test_two_bit_ranges():
    w = the_step(lsq_conv2d(nn.Conv2d(2, 2, 1), 2))
    a = the_step(lsq_relu(2))
    s = the_step(lsq_identity(2, signed=True))
    assert (w.q_n, w.q_p) == (2, 1)
    assert (a.q_n, a.q_p) == (0, 3)
    assert (s.q_n, s.q_p) == (2, 1)


@pytest.mark.parametrize('bits', [1, 9])
def test_unsupported_bit_widths_raise(bits):
    with pytest.raises(Exception, match='bit_width'):
        lsq_relu(bits)
    with pytest.raises(Exception, match='bit_width'):
        lsq_conv2d(nn.Conv2d(2, 2, 1), bits)


def test_steps_are_parameters_from_construction():
    model = nn.Sequential(lsq_conv2d(nn.Conv2d(3, 4, 3), 4), QuantReLU(act_quant=LSQActQuant,
                                                                       bit_width=4))
    params = list(model.parameters())
    steps = lsq_quantizers(model)
    assert len(steps) == 2
    for q in steps.values():
        assert isinstance(q.step, nn.Parameter) and q.step.requires_grad
        assert any(p is q.step for p in params)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(2, 3, 5, 5)).sum().backward()
    opt.step()  # the act step the optimizer holds is the one that got a gradient
    assert all(q.step.grad is not None for q in steps.values())
    assert all(any(p is q.step for p in opt.param_groups[0]['params']) for q in steps.values())
