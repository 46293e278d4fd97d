"""Annotation-id sample ids, the adapter registry and AUSAM steps on an MMPose estimator."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.dataset import BaseDataset, ConcatDataset, RepeatDataset
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData, PixelData
from mmpose.models import PoseDataPreprocessor, TopdownPoseEstimator
from mmpose.models.losses.heatmap_loss import KeypointMSELoss
from mmpose.structures import PoseDataSample

from common.engine import SAMOptimWrapper, sam_train_step
from common.engine.sam_loops import SAMEpochBasedTrainLoop
from common.optim import build_sam_optimizer
from common.engine import model_adapters
from pose_sam.per_sample_losses import PerSampleKeypointMSELoss, PerSampleKLDiscretLoss
from pose_sam.sam_adapter import mmpose_adapter
from pose_sam.sample_ids import AnnotationIdTable

K = 4


@pytest.fixture(autouse=True)
def mmpose_scope():
    """Build heads and losses from MMPose's registry whatever scope earlier tests left."""
    with DefaultScope.overwrite_default_scope('mmpose'):
        yield
IDS = [1000 + 7 * i for i in range(10)]


class Annotations(BaseDataset):
    """Top-down data info only: one annotation id per sample."""

    def __init__(self, ids, name='toy', **kwargs):
        self.ids = ids
        super().__init__(metainfo=dict(dataset_name=name), **kwargs)

    def load_data_list(self):
        return [dict(id=i, img_path=f'{i}.jpg') for i in self.ids]


def _samples(ids, name='toy'):
    return [PoseDataSample(metainfo=dict(id=i, dataset_name=name)) for i in ids]


@pytest.mark.parametrize('serialize_data', [True, False])
def test_annotation_ids_map_to_dataset_positions(serialize_data):
    table = AnnotationIdTable(Annotations(IDS, serialize_data=serialize_data, lazy_init=True))
    assert table.size == len(table) == 10
    assert table.dense_ids(_samples([IDS[3], IDS[0], IDS[9]])).tolist() == [3, 0, 9]
    # A batch without dataset_name still resolves when the training set has one name.
    assert table.dense_ids([PoseDataSample(metainfo=dict(id=IDS[5]))]).tolist() == [5]
    with pytest.raises(KeyError, match='annotation id 5 .* not in the training set'):
        table.dense_ids(_samples([5]))
    with pytest.raises(KeyError, match="no 'id'.*PackPoseInputs"):
        table.dense_ids([PoseDataSample(metainfo=dict(dataset_name='toy'))])


def test_wrapped_datasets_give_ids_inside_their_length():
    a, b = Annotations(IDS[:4], name='a'), Annotations([IDS[0], 1, 2], name='b')  # colliding id
    concat = ConcatDataset([a, b], ignore_keys=['dataset_name'])
    table = AnnotationIdTable(concat)
    assert table.dense_ids(_samples([IDS[0]], 'a') + _samples([IDS[0], 2], 'b')).tolist() == [0, 4, 6]
    repeat = RepeatDataset(Annotations(IDS), times=3)
    table = AnnotationIdTable(repeat)
    assert table.size == 30 and table.dense_ids(_samples(IDS)).tolist() == list(range(10))


def test_bad_annotation_ids_fail_clearly():
    with pytest.raises(ValueError, match='occurs twice'):
        AnnotationIdTable(Annotations([1, 2, 1]))
    with pytest.raises(ValueError, match='bottom-up'):
        AnnotationIdTable(Annotations([[1, 2], [3]]))
    with pytest.raises(TypeError, match='cannot list the samples of a list'):
        AnnotationIdTable([dict(id=1)])


def test_at_most_one_adapter_may_supply_sample_ids(monkeypatch):
    def claims(runner, optimizer):
        return lambda data: torch.zeros(1, dtype=torch.long)

    def declines(runner, optimizer):
        return None

    monkeypatch.setattr(model_adapters, '_ADAPTERS', [])
    assert model_adapters.apply_sam_model_adapters(None, None) is None
    model_adapters.register_sam_model_adapter(declines)
    model_adapters.register_sam_model_adapter(claims)
    model_adapters.register_sam_model_adapter(claims)  # twice: once
    assert model_adapters.registered_sam_model_adapters() == [declines, claims]
    assert model_adapters.apply_sam_model_adapters(None, None)(None).tolist() == [0]
    model_adapters.register_sam_model_adapter(lambda runner, optimizer: claims(runner, optimizer))
    with pytest.raises(RuntimeError, match='several SAM model adapters'):
        model_adapters.apply_sam_model_adapters(None, None)


HEADS = {
    'heatmap': dict(type='HeatmapHead', in_channels=8, out_channels=K, deconv_out_channels=(8,),
                    deconv_kernel_sizes=(4,), loss=dict(type='KeypointMSELoss', use_target_weight=True)),
    'simcc': dict(type='SimCCHead', in_channels=8, out_channels=K, input_size=(32, 32),
                  in_featuremap_size=(8, 8), deconv_out_channels=None),
}


def _estimator(head):
    torch.manual_seed(0)
    return TopdownPoseEstimator(
        # One ResNet-18 stage, 8 channels: 32x32 input -> 8x8 features.
        backbone=dict(type='ResNet', depth=18, num_stages=1, strides=(1,), dilations=(1,), out_indices=(0,),
                      stem_channels=8, base_channels=8),
        head=HEADS[head],
        data_preprocessor=PoseDataPreprocessor(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]))


def _batch(positions):
    g = torch.Generator().manual_seed(0)
    samples = []
    for pos in positions:
        s = PoseDataSample(metainfo=dict(id=IDS[pos], dataset_name='toy'))
        s.gt_fields = PixelData(heatmaps=torch.rand(K, 16, 16, generator=g))
        s.gt_instance_labels = InstanceData(
            keypoint_weights=torch.ones(1, K),
            keypoint_x_labels=torch.softmax(torch.randn(1, K, 64, generator=g), -1),
            keypoint_y_labels=torch.softmax(torch.randn(1, K, 64, generator=g), -1))
        samples.append(s)
    inputs = [torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g) for _ in positions]
    return dict(inputs=inputs, data_samples=samples)


class _Loader:
    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return 3


def _hooked_runner(head, sam):
    """What the SAM train loop does when it starts (sizes the table, runs the adapters), on a
    stand-in runner; ``runner.train_step(batch)`` is then the loop's iteration."""
    model = _estimator(head)
    sam = dict(sam)
    name = sam.pop('type')
    optimizer = build_sam_optimizer(name, model.parameters(), base_optimizer='SGD', lr=0.01, momentum=0.9,
                                    **sam, **(dict(num_samples=None) if 'AUSAM' in name else {}))
    loader = _Loader(Annotations(IDS))
    runner = SimpleNamespace(model=model, optim_wrapper=SAMOptimWrapper(optimizer), train_dataloader=loader)
    loop = SimpleNamespace(runner=runner, dataloader=loader, warmup_epochs=None)
    SAMEpochBasedTrainLoop._prepare_sam(loop)
    runner.train_step = lambda batch: sam_train_step(model, batch, runner.optim_wrapper,
                                                     sample_ids_fn=loop.sample_ids_fn)
    return runner


def test_ausam_step_on_a_topdown_estimator_updates_the_table_at_the_dense_ids():
    assert mmpose_adapter in model_adapters.registered_sam_model_adapters()
    runner = _hooked_runner('heatmap', dict(type='AUSAM', rho=0.05, alpha=0.5, seed=0))
    assert isinstance(runner.model.head.loss_module, PerSampleKeypointMSELoss)
    optimizer = runner.optim_wrapper.optimizer
    assert optimizer.num_samples == len(IDS)
    before = [p.detach().clone() for p in runner.model.parameters()]
    positions = [7, 2, 9, 4]
    log = runner.train_step(_batch(positions))
    assert set(log) >= {'loss', 'loss_kpt', 'acc_pose'}
    assert any(not torch.equal(a, b) for a, b in zip(before, runner.model.parameters()))
    seen = torch.zeros(len(IDS))
    seen[positions] = 1
    assert torch.equal(optimizer.dlp_count, seen)  # epoch 0: the whole batch, at the dense ids
    assert (optimizer.adlp[positions] != 1).all()


def test_ausam_subset_step_with_simcc_uses_the_whole_batch_size():
    runner = _hooked_runner('simcc', dict(type='AUSAM', rho=0.05, alpha=0.5, seed=0))
    loss = runner.model.head.loss_module
    assert isinstance(loss, PerSampleKLDiscretLoss)
    optimizer = runner.optim_wrapper.optimizer
    optimizer.set_epoch(1)
    runner.train_step(_batch([0, 3, 5, 8]))
    assert optimizer.last_subset_size == 2 and loss.batch_size == 4
    assert optimizer.dlp_count.sum() == 2 and optimizer.dlp_count[[1, 2, 4, 6, 7, 9]].sum() == 0


def test_sam_keeps_mmpose_scalar_losses():
    runner = _hooked_runner('heatmap', dict(type='SAM', rho=0.05))
    assert type(runner.model.head.loss_module) is KeypointMSELoss
    log = runner.train_step(_batch([1, 2, 3]))
    assert log['loss'].dim() == 0
