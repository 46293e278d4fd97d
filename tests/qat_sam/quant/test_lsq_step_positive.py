"""Issue 11: the LSQ step used in forward is always positive and still learns.

The learned parameter s may reach 0 or go negative (SAM's ascent step, large learning rates).
The quantizer uses ``s_used = max(|s|, 2^-24)`` with gradient ``sign(s)`` (``sign(0) := +1``).
Expected values come from an independent float64 evaluation of LSQ (Esser et al., ICLR 2020):

    y = round(clip(v / s_used, -Q_N, Q_P)) * s_used
    dy/ds_used = round(v/s_used) - v/s_used inside the range, -Q_N / Q_P clipped (before rounding)
    d loss/ds = g * sum(upstream * dy/ds_used) * sign(s),     g = 1 / sqrt(N * Q_P)

Before the fix (same inputs, ``x = randn(16, 8)`` with seed 0): a 4-bit ReLU quantizer at s = 0
gave 61/128 NaN outputs and a NaN step gradient; at s = -0.05 every output was 0 and the step
gradient exactly 0 (a dead layer, nothing raised).
"""
import math

import pytest
import torch
from torch import nn

import qat_sam.quant.lsq as lsq
from qat_sam.quant import lsq_conv2d, lsq_linear, lsq_quantizers, lsq_relu

FLOOR = 2.0 ** -24  # documented floor of the step used in forward (float16's smallest subnormal)
Q4_UNSIGNED = (0, 15)
Q4_SIGNED = (8, 7)


def the_step(module):
    (q,) = lsq_quantizers(module).values()
    return q


def set_step(q, value):
    with torch.no_grad():
        q.step.copy_(torch.as_tensor(value, dtype=q.step.dtype).reshape(q.step.shape))


def issue_x():
    torch.manual_seed(0)
    return torch.randn(16, 8)


def used64(s):
    """The step the fix must use, in float64: max(|s|, 2^-24) of the float32 parameter."""
    return torch.as_tensor(s, dtype=torch.float32).double().abs().clamp_min(FLOOR)


def sign64(s):
    s = torch.as_tensor(s, dtype=torch.float32).double()
    return torch.where(s < 0, -1.0, 1.0).double()


def lsq_reference(v, s_used, q_n, q_p, upstream):
    """Float64 LSQ: output, integer codes and d(sum(upstream * y))/d s_used, summed to s's shape."""
    v, s_used, upstream = v.double(), s_used.double(), upstream.double()
    u = v / s_used
    codes = torch.round(torch.clamp(u, -q_n, q_p))
    y = codes * s_used
    d = torch.where(u < -q_n, torch.full_like(u, -q_n),
                    torch.where(u > q_p, torch.full_like(u, q_p), torch.round(u) - u))
    contrib = upstream * d
    if s_used.dim() == 0 or s_used.numel() == 1:
        grad = contrib.sum().reshape(s_used.shape)
    else:
        dims = [i for i, n in enumerate(s_used.shape) if n == 1]
        grad = contrib.sum(dim=dims, keepdim=True)
    return y, codes, grad


def grad_atol(g, q_p, upstream):
    """float32 error of a sum of terms of size up to Q_P (as in test_lsq_quantizer.py)."""
    return 1e-6 * g * (q_p + 2) * upstream.abs().sum().item() + 1e-12


def check_quantized(y, step_grad, v, s, q_n, q_p, g, upstream):
    """y and the step gradient equal float64 LSQ at s_used = max(|s|, floor), times sign(s)."""
    s_used = used64(s).reshape(step_grad.shape)
    y_ref, codes, grad_ref = lsq_reference(v, s_used, q_n, q_p, upstream)
    assert torch.isfinite(y).all() and torch.isfinite(step_grad).all()
    assert torch.equal(torch.round(y.double() / s_used), codes)
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-7, atol=0)
    expected = g * grad_ref * sign64(s).reshape(step_grad.shape)
    torch.testing.assert_close(step_grad.double(), expected, rtol=0,
                               atol=grad_atol(g, q_p, upstream))
    return expected


# ----------------------------------------------------------------- the floor itself
def test_floor_is_documented_and_survives_half_precision():
    assert lsq.LSQ_MIN_STEP == FLOOR
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        assert torch.tensor(FLOOR, dtype=dtype).item() == FLOOR  # exact (a power of two)
    # why not lower: half of it already rounds to 0 in float16, where 0 / 0 is NaN again
    assert torch.tensor(FLOOR / 2, dtype=torch.float16).item() == 0.0
    assert the_step(lsq_relu(4)).min_step == FLOOR
    assert the_step(lsq_conv2d(nn.Conv2d(2, 2, 1), 4)).min_step == FLOOR


@pytest.mark.parametrize('s', [0.5, 0.05, 1e-4, 1e-6, FLOOR, -0.05, 0.0, -0.0, -1e-30, 1e-30,
                               float(-FLOOR)])
def test_positive_step_value_and_gradient(s):
    """positive_step: value max(|s|, floor) exactly; gradient sign(s), sign(+-0) = +1."""
    p = torch.tensor(s, requires_grad=True)
    out = lsq.positive_step(p)
    out.backward(torch.tensor(3.0))
    assert out.item() == max(abs(torch.tensor(s).item()), FLOOR)
    assert p.grad.item() == (-3.0 if s < 0 else 3.0)
    if s >= FLOOR:  # healthy step: bit-identical to the parameter
        assert torch.equal(out.detach(), p.detach())


def test_positive_step_per_channel_mixed_signs():
    s = torch.tensor([0.1, 0.0, -0.2, 1e-30, -1e-30, FLOOR, 3e-3], requires_grad=True)
    out = lsq.positive_step(s.reshape(-1, 1))
    out.backward(torch.arange(1.0, 8.0).reshape(-1, 1))
    expected = torch.tensor([0.1, FLOOR, 0.2, FLOOR, FLOOR, FLOOR, 3e-3])
    assert torch.equal(out.detach().flatten(), expected)
    assert torch.equal(s.grad, torch.arange(1.0, 8.0) * torch.tensor([1, 1, -1, 1, -1, 1, 1.0]))


def test_min_step_is_configurable_and_validated():
    from brevitas.nn import QuantReLU
    act = QuantReLU(act_quant=lsq.LSQActQuant.let(lsq_min_step=1e-3), bit_width=4)
    q = the_step(act)
    assert q.min_step == 1e-3
    act(torch.rand(4, 8) + 0.1)
    set_step(q, 1e-5)
    torch.testing.assert_close(q.used_step, torch.tensor(1e-3), rtol=0, atol=0)
    with pytest.raises(ValueError, match='lsq_min_step'):
        lsq.LSQStepSize(4, False, (), lsq_activation=True, lsq_min_step=0.0)


# ----------------------------------------------------------------- the issue's two inputs
@pytest.mark.parametrize('s', [0.0, -0.05], ids=['zero', 'negative'])
def test_issue_inputs_activation(s):
    """Issue inputs 1 and 2: 4-bit unsigned ReLU quantizer initialised on |x| + 0.1.

    Before the fix: s = 0 -> 61/128 NaN outputs, NaN step gradient; s = -0.05 -> all 128
    outputs 0, step gradient exactly 0."""
    x = issue_x()
    act = lsq_relu(4)
    q = the_step(act)
    act(x.abs() + 0.1)
    set_step(q, s)
    xr = x.clone().requires_grad_()
    y = act(xr)
    y.sum().backward()

    assert int(torch.isnan(y).sum()) == 0
    q_n, q_p = Q4_UNSIGNED
    g = 1.0 / math.sqrt(8 * q_p)  # 8 features per sample
    expected = check_quantized(y, q.step.grad, torch.relu(x), s, q_n, q_p, g,
                               torch.ones_like(x))
    assert q.step.grad.item() != 0.0
    assert torch.isfinite(xr.grad).all()
    if s == 0.0:  # every positive input clipped at the floor: grad = g * Q_P * #positive
        assert expected.item() == pytest.approx(g * q_p * int((x > 0).sum()), rel=1e-12)
        assert int((y > 0).sum()) == int((x > 0).sum()) == 67
    else:  # s = -0.05 behaves as +0.05 (same output, gradient mirrored)
        twin = lsq_relu(4)
        twin(x.abs() + 0.1)
        set_step(the_step(twin), 0.05)
        y_twin = twin(x)
        y_twin.sum().backward()
        assert torch.equal(y, y_twin)
        assert q.step.grad.item() == -the_step(twin).step.grad.item()
        assert int((y > 0).sum()) > 0


@pytest.mark.parametrize('s', [1e-30, FLOOR, 2 * FLOOR, 1e-6, 1e-4, -1e-30, float(-FLOOR),
                               -1e-4, -0.0])
def test_tiny_and_negative_steps_activation(s):
    """Neighbours: tiny positive steps (below, at, above the floor) and tiny negative ones."""
    x = issue_x()
    act = lsq_relu(4)
    q = the_step(act)
    act(x.abs() + 0.1)
    set_step(q, s)
    r = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    y = act(x)
    (y * r).sum().backward()
    q_n, q_p = Q4_UNSIGNED
    check_quantized(y, q.step.grad, torch.relu(x), s, q_n, q_p, 1.0 / math.sqrt(8 * q_p), r)
    assert q.step.grad.item() != 0.0
    torch.testing.assert_close(q.used_step.double(), used64(s), rtol=0, atol=0)


# ----------------------------------------------------------------- weight-quantizer twins
def weight_layer(kind, per_channel):
    """The issue's x as the weight of a QuantLinear(8, 16) / QuantConv2d(8, 16, 1), built by
    qat_sam.quant.layers (4-bit signed LSQ weights)."""
    x = issue_x()
    if kind == 'linear':
        fp = nn.Linear(8, 16)
        with torch.no_grad():
            fp.weight.copy_(x)
        return lsq_linear(fp, 4, per_channel=per_channel)
    fp = nn.Conv2d(8, 16, 1)
    with torch.no_grad():
        fp.weight.copy_(x.reshape(16, 8, 1, 1))
    return lsq_conv2d(fp, 4, per_channel=per_channel)


@pytest.mark.parametrize('kind', ['linear', 'conv'])
@pytest.mark.parametrize('per_channel', [False, True], ids=['per_tensor', 'per_channel'])
@pytest.mark.parametrize('s', [0.0, -0.05, -1e-30, 1e-30], ids=['zero', 'negative',
                                                                 'tiny_negative', 'tiny'])
def test_weight_quantizer_twins(kind, per_channel, s):
    """Signed 4-bit weights at s <= 0 (or below the floor), every channel the same step.

    Before the fix: s = 0 gave all-zero weights and NaN step/weight gradients; s = -0.05 gave
    a mirrored grid (clipped at [-7, 8] steps instead of [-8, 7]) and a mirrored gradient."""
    layer = weight_layer(kind, per_channel)
    q = the_step(layer)
    set_step(q, torch.full(q.step.shape, s))
    r = torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(2))
    wq = layer.quant_weight().value
    (wq * r).sum().backward()

    q_n, q_p = Q4_SIGNED
    n = 8 if per_channel else 128  # weights per step
    g = 1.0 / math.sqrt(n * q_p)
    check_quantized(wq, q.step.grad, layer.weight.detach(), torch.full(q.step.shape, s),
                    q_n, q_p, g, r)
    assert (q.step.grad != 0).all()
    assert torch.isfinite(layer.weight.grad).all()
    out = layer(torch.randn(2, 8, 3, 3) if kind == 'conv' else torch.randn(2, 8))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize('kind', ['linear', 'conv'])
def test_per_channel_mixed_steps(kind):
    """Per-channel steps, some <= 0 (or below the floor), others > 0: positive channels are
    bit-identical to a layer whose steps are all positive; the others use max(|s|, floor)."""
    steps = torch.tensor([0.05, 0.0, -0.05, 0.1, -1e-30, 1e-30, 0.02, -0.2,
                          0.3, -0.0, 1e-4, -1e-4, FLOOR, -FLOOR, 0.07, -0.5])
    healthy = steps >= FLOOR
    layer, ref_layer = weight_layer(kind, True), weight_layer(kind, True)
    q, q_ref = the_step(layer), the_step(ref_layer)
    set_step(q, steps)
    set_step(q_ref, torch.where(healthy, steps, torch.full_like(steps, 0.25)))
    r = torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(3))
    wq, wq_ref = layer.quant_weight().value, ref_layer.quant_weight().value
    (wq * r).sum().backward()
    (wq_ref * r).sum().backward()

    q_n, q_p = Q4_SIGNED
    g = 1.0 / math.sqrt(8 * q_p)
    check_quantized(wq, q.step.grad, layer.weight.detach(), steps.reshape(q.step.shape),
                    q_n, q_p, g, r)
    rows = healthy.nonzero().flatten()
    assert torch.equal(wq[rows], wq_ref[rows])
    assert torch.equal(q.step.grad.flatten()[rows], q_ref.step.grad.flatten()[rows])
    assert torch.equal(layer.weight.grad[rows], ref_layer.weight.grad[rows])
    assert (q.step.grad != 0).all() and torch.isfinite(layer.weight.grad).all()


def test_per_channel_activation_step_module():
    """LSQStepSize with a per-channel activation shape (1, C): the same rule per entry."""
    q = lsq.LSQStepSize(4, False, (1, 8), lsq_activation=True)
    steps = torch.tensor([[0.05, 0.0, -0.05, 1e-30, -1e-30, 0.1, -0.0, FLOOR]])
    set_step(q, steps)
    q._set_initialized(True)
    out = q(torch.randn(16, 8))
    out.backward(torch.ones_like(out))
    assert torch.equal(out.detach().double(), used64(steps))
    g = 1.0 / math.sqrt(8 * 15)
    torch.testing.assert_close(q.step.grad.double(), g * sign64(steps), rtol=1e-7, atol=0)


# ----------------------------------------------------------------- half precision
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('s', [0.0, -0.05, 1e-30, -1e-30], ids=['zero', 'negative', 'tiny',
                                                                'tiny_negative'])
def test_half_precision_input(dtype, s):
    """fp16/bf16 input: quantized in float32 and cast back, so no NaN, codes exactly on the grid
    of s_used, a finite non-zero step gradient, and -s the mirror of +s."""
    x = issue_x()
    act = lsq_relu(4)
    q = the_step(act)
    act(x.abs() + 0.1)
    set_step(q, s)
    xh = x.to(dtype)
    y = act(xh)
    y.float().sum().backward()
    assert y.dtype == dtype
    assert not torch.isnan(y).any()
    assert torch.isfinite(q.step.grad).all() and q.step.grad.item() != 0.0
    s_used = torch.tensor(max(abs(s), FLOOR), dtype=torch.float32).double()
    _, codes_ref, _ = lsq_reference(torch.relu(xh).double(), s_used, 0, 15, torch.ones(1))
    expected = (codes_ref * s_used).to(torch.float32).to(dtype)  # float32 result, cast to the input's dtype
    assert torch.equal(y, expected)
    twin = lsq_relu(4)
    twin(x.abs() + 0.1)
    set_step(the_step(twin), abs(s))
    assert torch.equal(twin(xh), y)


@pytest.mark.parametrize('s', [1e-3, FLOOR])
def test_fp16_step_gradient_for_small_steps(s):
    """fp16 inputs are quantized in float32: before, autograd computed -grad * ((v / s) / s) in fp16
    (0 * inf = NaN for clipped values) for steps below ~sqrt(max|v| / 65504)."""
    x = issue_x()
    act = lsq_relu(4)
    q = the_step(act)
    act(x.abs() + 0.1)
    set_step(q, s)
    act(x.half()).float().sum().backward()
    assert torch.isfinite(q.step.grad).all()


def test_bf16_autocast_model_with_zero_and_negative_steps():
    torch.manual_seed(0)
    model = nn.Sequential(lsq_linear(nn.Linear(8, 16), 4, per_channel=True), lsq_relu(4),
                          lsq_linear(nn.Linear(16, 3), 8, per_channel=False))
    x = issue_x()
    model(x)  # initialise the activation step
    steps = list(lsq_quantizers(model).values())
    set_step(steps[0], torch.linspace(-0.1, 0.1, 16))  # includes values around 0
    set_step(steps[1], 0.0)
    set_step(steps[2], -0.01)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(x)
    out.float().square().mean().backward()
    assert torch.isfinite(out).all()
    for q in steps:
        assert torch.isfinite(q.step.grad).all()


# ----------------------------------------------------------------- training
def act_problem():
    x = issue_x()
    act = lsq_relu(4)
    act(x.abs() + 0.1)
    target = torch.relu(x)  # the float activation: the step should cover its range
    return act, x, target


def train_act(s0, iters=20, lr=1e-3):
    act, x, target = act_problem()
    q = the_step(act)
    set_step(q, s0)
    opt = torch.optim.SGD(act.parameters(), lr=lr)
    losses, trace = [], []
    for _ in range(iters):
        opt.zero_grad()
        loss = (act(x) - target).square().sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        trace.append(q.step.item())
    return losses, trace


def test_zero_step_recovers_under_sgd():
    """A step at 0 (the floor) gets the gradient LSQ gives at the floor, sign +1: it becomes
    positive at once and the loss falls to that of a healthy start."""
    losses, trace = train_act(0.0)
    assert all(math.isfinite(v) for v in losses)
    assert trace[0] > FLOOR
    assert losses[-1] < 0.05 * losses[0]
    healthy_losses, healthy = train_act(0.2)
    assert losses[-1] < 2 * healthy_losses[-1] + 1e-3
    assert abs(trace[-1] - healthy[-1]) < 0.05


@pytest.mark.parametrize('s0', [-0.05, -1e-30, -0.6])
def test_negative_step_trains_as_its_mirror(s0):
    """A negative step trains exactly as -s (documented behaviour: s_used = |s|, gradient sign(s)):
    same losses, mirrored parameter, and |s| moves towards the step a positive start reaches."""
    losses, trace = train_act(s0)
    mirror_losses, mirror = train_act(-s0)
    assert losses == mirror_losses
    assert trace == [-v for v in mirror]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    if s0 == -1e-30:
        assert abs(trace[-1]) > FLOOR  # left the floor


def test_weight_step_set_negative_keeps_learning():
    torch.manual_seed(0)
    layer = weight_layer('linear', False)
    teacher = layer.weight.detach().clone()
    q = the_step(layer)
    set_step(q, -0.01)  # far too small a grid: most weights clipped
    x = torch.randn(64, 8)
    y_target = x @ teacher.t()
    opt = torch.optim.SGD([q.step], lr=0.02)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = (nn.functional.linear(x, layer.quant_weight().value) - y_target).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0]
    assert q.used_step.item() > 0.01


# ----------------------------------------------------------------- SAM's second pass
def sam_problem():
    """Linear (LSQ weights) -> LSQ ReLU -> Linear with positive weights, target 5: the loss
    asks for a larger activation step, so SAM's ascent step e = rho * g / ||g|| lowers it."""
    torch.manual_seed(0)
    model = nn.Sequential(lsq_linear(nn.Linear(8, 16), 4, per_channel=True), lsq_relu(4),
                          nn.Linear(16, 1))
    with torch.no_grad():
        model[2].weight.fill_(0.1)
    x = issue_x()
    model(x)  # initialises the activation step
    set_step(the_step(model[1]), 1e-3)  # close to 0
    return model, x, torch.full((16, 1), 5.0)


def test_sam_second_pass_never_sees_a_non_positive_step():
    """SAM perturbs the steps too: with a step close to 0 and the loss asking for a larger one,
    the ascent step e = rho * g / ||g|| pushes s below 0 in the second pass. The step used there
    must still be max(|s|, floor) > 0 and every output finite."""
    from common.optim import SAM
    model, x, y = sam_problem()
    steps = lsq_quantizers(model)

    seen = []  # (raw parameter, used step) per call of every LSQ step module
    hooks = [m.register_forward_hook(
        lambda m, inp, out: seen.append((m.value.detach().clone(), out.detach().clone())))
        for m in steps.values()]
    outputs = []
    hooks.append(model.register_forward_hook(lambda m, inp, out: outputs.append(out.detach())))

    opt = SAM(model.parameters(), 'SGD', rho=0.5, lr=0.01)
    for _ in range(3):
        seen.clear()
        loss = opt.step(lambda: nn.functional.mse_loss(model(x), y), model=model)
        assert math.isfinite(float(loss))
    for h in hooks:
        h.remove()

    assert len(outputs) == 6  # two passes per iteration
    for raw, used in seen:
        assert (used > 0).all()
        torch.testing.assert_close(used, raw.abs().clamp_min(FLOOR), rtol=0, atol=0)
    assert all(torch.isfinite(o).all() for o in outputs)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_sam_pushes_the_act_step_negative_in_the_second_pass():
    """The premise of the test above, checked on the first iteration alone."""
    from common.optim import SAM
    model, x, y = sam_problem()
    act_step = the_step(model[1])
    seen = []
    h = act_step.register_forward_hook(
        lambda m, inp, out: seen.append((m.value.item(), out.item())))
    outputs = []
    h2 = model.register_forward_hook(lambda m, inp, out: outputs.append(out.detach()))
    SAM(model.parameters(), 'SGD', rho=0.5, lr=0.01).step(
        lambda: nn.functional.mse_loss(model(x), y), model=model)
    h.remove()
    h2.remove()
    (raw1, used1), (raw2, used2) = seen
    assert raw1 == pytest.approx(1e-3) and used1 == raw1
    assert raw2 < 0  # perturbed below zero
    assert used2 == pytest.approx(abs(raw2), rel=1e-7) and used2 > 0
    assert torch.isfinite(outputs[1]).all() and (outputs[1] != outputs[1][0]).any()


# ----------------------------------------------------------------- export
def test_export_sees_the_positive_step(tmp_path):
    """brevitas reads the scale through the step module: the QCDQ graph carries max(|s|, floor)
    and runs in onnxruntime like the PyTorch model."""
    ort = pytest.importorskip('onnxruntime')
    onnx = pytest.importorskip('onnx')
    from onnx import numpy_helper
    from brevitas.export import export_onnx_qcdq
    import numpy as np

    torch.manual_seed(0)
    model = nn.Sequential(lsq_linear(nn.Linear(8, 4), 4, per_channel=True), lsq_relu(4),
                          lsq_linear(nn.Linear(4, 3), 8, per_channel=False))
    x = issue_x()
    model(x)
    q_w, q_a, q_w2 = lsq_quantizers(model).values()
    set_step(q_w, torch.tensor([0.1, -0.1, 0.0, -0.05]))
    set_step(q_a, -0.05)
    set_step(q_w2, -0.02)
    model.eval()
    assert (model[0].quant_weight().scale > 0).all()
    assert model[1].act_quant.scale().item() == pytest.approx(0.05)
    path = tmp_path / 'lsq.onnx'
    export_onnx_qcdq(model, args=x, export_path=str(path), dynamo=False)

    graph = onnx.load(str(path)).graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == 'Constant':
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    scales = [consts[n.input[1]] for n in graph.node
              if n.op_type in ('QuantizeLinear', 'DequantizeLinear') and n.input[1] in consts]
    assert scales and all((s > 0).all() for s in scales)
    assert any(np.allclose(np.sort(s.flatten()), [FLOOR, 0.05, 0.1, 0.1]) for s in scales)
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(out - expected).max() < 1e-5
