"""LSQ models: ONNX (QCDQ) export round trip in onnxruntime, calibration, the enabled switch,
state-dict round trip."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from qat_sam.quant import (calibrate_lsq, lsq_conv2d, lsq_linear, lsq_quantizers, lsq_relu,
                           set_lsq_enabled)


def float_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 5))


def lsq_model(fp):
    return nn.Sequential(lsq_conv2d(fp[0], 4, per_channel=True), lsq_relu(4), nn.MaxPool2d(2),
                         nn.Flatten(), lsq_linear(fp[4], 8, per_channel=True))


def images(seed, n=8):
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def trained_lsq_model():
    model = lsq_model(float_model())
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for seed in range(3):
        opt.zero_grad()
        model(images(seed)).square().mean().backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize('dynamo', [True, False], ids=['dynamo', 'torchscript'])
def test_qcdq_export_runs_in_onnxruntime_like_pytorch(tmp_path, dynamo):
    ort = pytest.importorskip('onnxruntime')
    onnx = pytest.importorskip('onnx')
    from brevitas.export import export_onnx_qcdq

    model = trained_lsq_model()
    x = images(100)
    path = tmp_path / 'lsq.onnx'
    export_onnx_qcdq(model, args=x, export_path=str(path), dynamo=dynamo)

    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count('DequantizeLinear') >= 3  # conv weight, relu output, linear weight
    assert 'QuantizeLinear' in ops
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(out - expected).max() < 1e-5


def test_calibrate_sets_act_steps_from_one_batch_without_moving_batchnorm():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
    model = nn.Sequential(lsq_conv2d(conv, 4), bn, lsq_relu(4)).train()
    stats = bn.running_mean.clone()
    x = images(1)
    steps = calibrate_lsq(model, x)
    assert model.training and bn.training and model[2].training  # modes restored
    (q,) = steps.values()
    model.eval()
    with torch.no_grad():
        a = torch.relu(bn(model[0](x)))  # what the quantizer saw: eval-mode BatchNorm
    torch.testing.assert_close(q.step.detach(), 2 * a.mean() / math.sqrt(15), rtol=1e-6, atol=0)
    assert torch.equal(bn.running_mean, stats)
    model.train()
    model(images(2))  # training goes on without re-initialising
    torch.testing.assert_close(q.step.detach(), 2 * a.mean() / math.sqrt(15), rtol=1e-6, atol=0)


def test_enabled_switch_bypasses_quantization():
    fp = float_model()
    model = lsq_model(fp).eval()
    fp.eval()
    x = images(3)
    with torch.no_grad():
        quantized = model(x)
        set_lsq_enabled(model, False)
        torch.testing.assert_close(model(x), fp(x), rtol=1e-6, atol=1e-6)
        set_lsq_enabled(model, True)
        assert torch.equal(model(x), quantized)
        assert not torch.allclose(quantized, fp(x), atol=1e-4)
        set_lsq_enabled(model[0].weight_quant, False)  # one quantizer
        assert model[0].weight_quant.disable_quant and not model[1].act_quant.disable_quant


def test_disabled_act_quantizer_initialises_when_switched_on():
    act = lsq_relu(4)
    (q,) = lsq_quantizers(act).values()
    set_lsq_enabled(act, False)
    act(images(4))
    assert not bool(q.initialized)
    set_lsq_enabled(act, True)
    x = images(5)
    act(x)
    torch.testing.assert_close(q.step.detach(), 2 * torch.relu(x).mean() / math.sqrt(15),
                               rtol=1e-6, atol=0)


def test_state_dict_round_trip_keeps_steps_and_flags():
    model = trained_lsq_model()
    x = images(6)
    fresh = lsq_model(float_model())
    fresh.load_state_dict(model.state_dict())
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    for (name, q), (_, p) in zip(lsq_quantizers(fresh).items(), lsq_quantizers(model).items()):
        assert torch.equal(q.step, p.step) and bool(q.initialized), name
    act_step = lsq_quantizers(fresh[1])
    (q,) = act_step.values()
    before = q.step.detach().clone()
    fresh.train()(images(7))  # loaded as initialised: no re-initialisation
    assert torch.equal(q.step.detach(), before)


def test_optimizer_built_before_checkpoint_load_keeps_training_the_steps():
    """brevitas rebuilds quantizers on load_state_dict; the steps must stay the optimizer's."""
    checkpoint = trained_lsq_model().state_dict()
    model = lsq_model(float_model())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.load_state_dict(checkpoint)  # as MMEngine's resume does, after building the optimizer
    held = {id(p) for p in opt.param_groups[0]['params']}
    steps = lsq_quantizers(model)
    assert all(id(q.step) in held for q in steps.values())
    before = {n: q.step.detach().clone() for n, q in steps.items()}
    opt.zero_grad()
    model.train()(images(8)).square().mean().backward()
    opt.step()
    assert all(not torch.equal(q.step.detach(), before[n]) for n, q in steps.items())


def test_loading_float_weights_reinitialises_weight_steps():
    fp = float_model()
    with torch.no_grad():
        for p in fp.parameters():
            p.mul_(2.0)
    model = lsq_model(float_model())
    missing, _ = model.load_state_dict(fp.state_dict(), strict=False)
    assert all('scaling_impl' in k for k in missing)
    (w_conv,) = lsq_quantizers(model[0]).values()
    expected = 2 * fp[0].weight.detach().abs().mean(dim=(1, 2, 3)) / math.sqrt(7)
    torch.testing.assert_close(w_conv.step.detach().flatten(), expected, rtol=1e-6, atol=0)
    (act,) = lsq_quantizers(model[1]).values()
    assert not bool(act.initialized)  # still waits for its first batch
