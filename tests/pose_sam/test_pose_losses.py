"""Per-sample MMPose losses: the batch mean equals MMPose's own loss, shape [B], clear errors."""
import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData, PixelData
from mmpose.models.heads import HeatmapHead, RegressionHead, RTMCCHead, SimCCHead
from mmpose.models.losses.classification_loss import KLDiscretLoss
from mmpose.models.losses.heatmap_loss import (AdaptiveWingLoss, CombinedTargetMSELoss, FocalHeatmapLoss,
                                               KeypointMSELoss, KeypointOHKMMSELoss)
from mmpose.structures import PoseDataSample
from torch import nn

from pose_sam.per_sample_losses import (PerSampleKLDiscretLoss, PerSampleLoss, per_sample_loss,
                                        use_per_sample_losses)

B, K, H, W = 6, 5, 8, 6


@pytest.fixture(autouse=True)
def mmpose_scope():
    """Build heads and losses from MMPose's registry whatever scope earlier tests left."""
    with DefaultScope.overwrite_default_scope('mmpose'):
        yield


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _heatmaps(g, empty_channels=True):
    target = torch.rand(B, K, H, W, generator=g, dtype=torch.float64)
    if empty_channels:  # some channels without any visible keypoint
        target[0, 1] = 0
        target[3, :2] = 0
    return torch.rand(B, K, H, W, generator=g, dtype=torch.float64), target


def _keypoint_weights(g):
    w = torch.rand(B, K, generator=g, dtype=torch.float64)
    w[1, 2] = w[4, 0] = 0  # invisible keypoints
    return w


def _check(per_sample, reference):
    assert per_sample.shape == (B,)
    torch.testing.assert_close(per_sample.mean(), reference, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize('use_target_weight', [False, True])
@pytest.mark.parametrize('skip_empty_channel', [False, True])
@pytest.mark.parametrize('weights', [None, 'keypoint', 'pixel'])
@pytest.mark.parametrize('with_mask', [False, True])
def test_keypoint_mse_loss(use_target_weight, skip_empty_channel, weights, with_mask):
    g = _gen()
    output, target = _heatmaps(g)
    target_weights = {None: None, 'keypoint': _keypoint_weights(g),
                      'pixel': torch.rand(B, K, H, W, generator=g, dtype=torch.float64)}[weights]
    mask = (torch.rand(B, 1, H, W, generator=g) > 0.3).double() if with_mask else None
    base = KeypointMSELoss(use_target_weight, skip_empty_channel, loss_weight=0.7)
    _check(per_sample_loss(base, nn.Module())(output, target, target_weights, mask),
           base(output, target, target_weights, mask))


SIMCC_LOSSES = {
    'simcc': dict(use_target_weight=True),  # SimCC configs
    'rtmpose': dict(use_target_weight=True, beta=10., label_softmax=True),  # RTMPose configs
    'no_weights': dict(use_target_weight=False, beta=2., label_softmax=True, label_beta=3.),
    'mask': dict(use_target_weight=True, beta=10., label_softmax=True, mask=[0, 3], mask_weight=0.5),
}


def _simcc(g, bins=(12, 16)):
    pred = tuple(torch.randn(B, K, n, generator=g, dtype=torch.float64) for n in bins)
    target = tuple(torch.softmax(torch.randn(B, K, n, generator=g, dtype=torch.float64) * 3, -1) for n in bins)
    return pred, target


@pytest.mark.parametrize('cfg', sorted(SIMCC_LOSSES))
def test_kl_discret_loss_sums_over_the_batch(cfg):
    g = _gen(1)
    pred, target = _simcc(g)
    weights = _keypoint_weights(g)
    base = KLDiscretLoss(**SIMCC_LOSSES[cfg])
    wrapper = per_sample_loss(base, nn.Module())
    _check(wrapper(pred, target, weights), base(pred, target, weights))

    # With the iteration's batch size set, a row's loss does not depend on the rows evaluated
    # with it: AUSAM's subset mean estimates the whole batch's loss.
    full = wrapper(pred, target, weights)
    wrapper.batch_size = B
    rows = torch.tensor([4, 1, 2])
    subset = wrapper(tuple(p[rows] for p in pred), tuple(t[rows] for t in target), weights[rows])
    torch.testing.assert_close(subset, full[rows], rtol=1e-12, atol=0)


ROWWISE = [
    (KeypointOHKMMSELoss, dict(use_target_weight=False, topk=3, loss_weight=0.5)),
    (KeypointOHKMMSELoss, dict(use_target_weight=True, topk=2)),
    (AdaptiveWingLoss, dict(use_target_weight=False)),
    (AdaptiveWingLoss, dict(use_target_weight=True, loss_weight=2.)),
    (CombinedTargetMSELoss, dict(use_target_weight=False)),
    (CombinedTargetMSELoss, dict(use_target_weight=True, loss_weight=0.3)),
]


@pytest.mark.parametrize('cls,kwargs', ROWWISE, ids=lambda v: getattr(v, '__name__', str(v)))
def test_rowwise_losses(cls, kwargs):
    g = _gen(2)
    channels = 3 * K if cls is CombinedTargetMSELoss else K
    output = torch.rand(B, channels, H, W, generator=g, dtype=torch.float64)
    target = torch.rand(B, channels, H, W, generator=g, dtype=torch.float64)
    weights = _keypoint_weights(g)
    base = cls(**kwargs)
    _check(per_sample_loss(base, nn.Module())(output, target, weights), base(output, target, weights))


def _samples(g, simcc_bins=None, heatmap_size=None):
    samples = []
    for i in range(B):
        s = PoseDataSample(metainfo=dict(id=i, dataset_name='toy'))
        s.gt_instance_labels = InstanceData(keypoint_weights=_keypoint_weights(g)[i:i + 1].float())
        if heatmap_size is not None:
            s.gt_fields = PixelData(heatmaps=torch.rand(K, *heatmap_size, generator=g))
        if simcc_bins is not None:
            s.gt_instance_labels.keypoint_x_labels = torch.softmax(torch.randn(1, K, simcc_bins[0], generator=g), -1)
            s.gt_instance_labels.keypoint_y_labels = torch.softmax(torch.randn(1, K, simcc_bins[1], generator=g), -1)
        samples.append(s)
    return samples


HEADS = {
    'heatmap': lambda: (HeatmapHead(in_channels=8, out_channels=K, deconv_out_channels=(8,),
                                    deconv_kernel_sizes=(4,),
                                    loss=dict(type='KeypointMSELoss', use_target_weight=True)),
                        dict(heatmap_size=(8, 8))),
    'simcc': lambda: (SimCCHead(in_channels=8, out_channels=K, input_size=(16, 16), in_featuremap_size=(4, 4),
                                deconv_out_channels=None),
                      dict(simcc_bins=(32, 32))),
    'rtmcc': lambda: (RTMCCHead(in_channels=8, out_channels=K, input_size=(16, 16), in_featuremap_size=(4, 4),
                                gau_cfg=dict(hidden_dims=16, s=8, expansion_factor=2, dropout_rate=0., drop_path=0.,
                                             act_fn='SiLU', use_rel_bias=False, pos_enc=False),
                                loss=dict(type='KLDiscretLoss', use_target_weight=True, beta=10.,
                                          label_softmax=True)),
                      dict(simcc_bins=(32, 32))),
}


@pytest.mark.parametrize('name', sorted(HEADS))
def test_head_losses_keep_mmpose_value_and_accuracy(name):
    torch.manual_seed(0)
    head, sample_kwargs = HEADS[name]()
    head = head.double().eval()
    feats = (torch.randn(B, 8, 4, 4, dtype=torch.float64),)
    samples = _samples(_gen(3), **sample_kwargs)
    for s in samples:
        s.gt_instance_labels.keypoint_weights = s.gt_instance_labels.keypoint_weights.double()
        for key in ('keypoint_x_labels', 'keypoint_y_labels'):
            if key in s.gt_instance_labels:
                s.gt_instance_labels.set_field(s.gt_instance_labels.get(key).double(), key)
        if 'gt_fields' in s:
            s.gt_fields.heatmaps = s.gt_fields.heatmaps.double()
    reference = head.loss(feats, samples)
    wrapped = use_per_sample_losses(head)
    assert all(isinstance(m, PerSampleLoss) for m in wrapped) and head.loss_module is wrapped[0]
    assert use_per_sample_losses(head)[0] is wrapped[0]  # idempotent
    losses = head.loss(feats, samples)
    assert losses['loss_kpt'].shape == (B,)
    torch.testing.assert_close(losses['loss_kpt'].mean(), reference['loss_kpt'], rtol=1e-10, atol=0)
    torch.testing.assert_close(losses['acc_pose'], reference['acc_pose'])
    assert not head.state_dict().keys() ^ HEADS[name]()[0].state_dict().keys()  # checkpoints unchanged


def test_multi_stage_loss_lists_are_wrapped_all_or_none():
    head = nn.Module()
    head.loss_module = nn.ModuleList([KeypointMSELoss(), KLDiscretLoss()])
    use_per_sample_losses(head)
    assert [type(m).__name__ for m in head.loss_module] == ['PerSampleKeypointMSELoss', 'PerSampleKLDiscretLoss']
    head.loss_module = nn.ModuleList([KeypointMSELoss(), FocalHeatmapLoss()])
    with pytest.raises(TypeError, match='FocalHeatmapLoss'):
        use_per_sample_losses(head)
    assert type(head.loss_module[0]) is KeypointMSELoss


def test_unsupported_losses_name_the_head_and_loss():
    head = RegressionHead(in_channels=8, num_joints=K)
    with pytest.raises(TypeError, match=r'RegressionHead\.loss_module is SmoothL1Loss.*SAM or VSAM.*'
                                        r'register_per_sample_loss\(SmoothL1Loss\)'):
        use_per_sample_losses(head)
    # FocalHeatmapLoss subclasses KeypointMSELoss but normalises by the batch's positives.
    head = HeatmapHead(in_channels=8, out_channels=K, loss=dict(type='FocalHeatmapLoss'))
    with pytest.raises(TypeError, match=r'HeatmapHead\.loss_module is FocalHeatmapLoss'):
        use_per_sample_losses(head)
    assert isinstance(per_sample_loss(KLDiscretLoss(), head), PerSampleKLDiscretLoss)
