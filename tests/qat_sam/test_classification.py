"""Digits data, the classifier's per-sample loss protocol, top-k accuracy and prepare/to_float."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS

import qat_sam.registration  # noqa: F401
from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU
from qat_sam.data import DigitsDataset, symmetric_noise
from qat_sam.metrics import TopKAccuracy
from qat_sam.quant import lsq_quantizers, prepare, to_float


def test_digits_split_ids_and_noise():
    train, test = DigitsDataset('train', image_size=16), DigitsDataset('test', image_size=16)
    assert len(train) == 1300 and len(test) == 497
    item = train[7]
    assert item['inputs'].shape == (1, 16, 16) and item['data_samples'].metainfo['sample_idx'] == 7
    noisy = DigitsDataset('train', noise_rate=0.4, seed=3)
    changed = (noisy.labels != noisy.clean_labels).float().mean().item()
    assert abs(changed - 0.4) < 0.05  # every flipped label is a different class
    assert torch.equal(DigitsDataset('train', noise_rate=0.4, seed=3).labels, noisy.labels)
    with pytest.raises(ValueError, match='noise_rate'):
        symmetric_noise(torch.zeros(3, dtype=torch.long), 1.0, 10, 0)


def test_classifier_reports_per_sample_label_smoothed_losses():
    model = MODELS.build(dict(type='ImageClassifier', label_smoothing=0.1,
                              network=dict(type='SmallCNN', num_classes=10, in_channels=1)))
    batch = [DigitsDataset('train')[i] for i in range(6)]
    x = torch.stack([b['inputs'] for b in batch])
    samples = [b['data_samples'] for b in batch]
    losses = model(x, samples, mode='loss')['loss']
    labels = torch.stack([s.gt_label for s in samples])
    expected = F.cross_entropy(model.network(x), labels, reduction='none', label_smoothing=0.1)
    assert losses.shape == (6,)
    torch.testing.assert_close(losses, expected)


def test_topk_accuracy_closed_form():
    metric = TopKAccuracy(topk=(1, 2))
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    metric.process(None, [dict(pred_score=s, gt_label=torch.tensor(t)) for s, t in zip(scores, [1, 1, 0])])
    result = metric.compute_metrics(metric.results)
    assert result['top1'] == pytest.approx(100 / 3) and result['top2'] == pytest.approx(200 / 3)


def test_prepare_keeps_first_and_last_layer_at_8_bits_and_to_float_reverses():
    net = MODELS.build(dict(type='CifarResNet', depth=20, num_classes=10, in_channels=3))
    q = prepare(net, weight_bits=4, act_bits=4)
    convs = [m for m in q.modules() if isinstance(m, (QuantConv2d, QuantLinear))]
    bits = [int(m.quant_weight().bit_width) for m in convs]
    assert bits[0] == 8 and bits[-1] == 8 and set(bits[1:-1]) == {4}
    relus = sum(isinstance(m, torch.nn.ReLU) for m in net.modules())
    assert sum(isinstance(m, QuantReLU) for m in q.modules()) == relus == 19
    steps = lsq_quantizers(q)
    assert all(s.step.requires_grad for s in steps.values())
    q.train()
    q(torch.randn(8, 3, 32, 32))  # initialises activation steps
    f = to_float(q)
    assert not any(isinstance(m, (QuantConv2d, QuantLinear, QuantReLU)) for m in f.modules())
    w = f.stem[0].weight
    qw = q.stem[0].quant_weight()
    torch.testing.assert_close(w, qw.value.detach())
