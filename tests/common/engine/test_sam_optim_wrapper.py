"""SAMOptimWrapper, its constructor and the SAM train loops in a real MMEngine Runner."""

import pytest
import torch
import torch.nn.functional as F

from common.optim import OPTIMIZERS
from toy_runner import NUM_SAMPLES, ToyClassifier, make_runner, toy_dataset

SAM_CFGS = {
    'SAM': dict(type='SAM', rho=0.1),
    'ASAM': dict(type='SAM', rho=1.0, adaptive=True),
    'AUSAM': dict(type='AUSAM', rho=0.1, alpha=0.5, seed=0, ramp_epochs=1),
    'VSAM': dict(type='VSAM', rho=0.1, window=4, seed=0, warmup_epochs=0.25),
    'LookSAM': dict(type='LookSAM', rho=0.1, k=2),
    'UniformSubsetSAM': dict(type='UniformSubsetSAM', rho=0.1, alpha=0.5, seed=0),
    'RandomScheduleSAM': dict(type='RandomScheduleSAM', rho=0.1, sam_prob=0.5, seed=0),
}


def test_every_registered_optimizer_has_a_config():
    assert set(OPTIMIZERS) <= {c['type'] for c in SAM_CFGS.values()}


@pytest.mark.parametrize('key', sorted(SAM_CFGS))
def test_first_iteration_equals_the_plain_pytorch_core(key, tmp_path):
    runner = make_runner(tmp_path, SAM_CFGS[key], shuffle=False, max_epochs=1,
                         train_cfg=dict(by_epoch=False, max_iters=1))
    runner.train()

    torch.manual_seed(0)
    model = ToyClassifier()
    sam = dict(SAM_CFGS[key])
    name = sam.pop('type')
    sam.pop('warmup_epochs', None)
    if OPTIMIZERS[name].uses_sample_ids:
        sam['num_samples'] = NUM_SAMPLES
    if name == 'VSAM':
        sam['warmup_steps'] = 1
    opt = OPTIMIZERS[name](model.parameters(), 'SGD', lr=0.1, momentum=0.9, weight_decay=1e-3, **sam)
    data = toy_dataset()[:8]
    x = torch.stack([d['inputs'] for d in data])
    y = torch.stack([d['labels'] for d in data])
    ids = torch.tensor([d['sample_idx'] for d in data])
    model.train()
    opt.step(lambda idx=None: F.cross_entropy(model.net(x if idx is None else x[idx]),
                                              y if idx is None else y[idx], reduction='none'),
             model=model, sample_ids=ids)
    for a, b in zip(runner.model.state_dict().values(), model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('key', ['AUSAM', 'VSAM', 'SAM'])
def test_resume_equals_uninterrupted(key, tmp_path):
    full = make_runner(tmp_path / 'full', SAM_CFGS[key], max_epochs=3, name='full')
    full.train()
    make_runner(tmp_path / 'split', SAM_CFGS[key], max_epochs=2, name='first').train()
    resumed = make_runner(tmp_path / 'split', SAM_CFGS[key], max_epochs=3, resume=True, name='second')
    resumed.train()
    assert resumed.iter == full.iter == 12
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    state_a, state_b = full.optim_wrapper.state_dict()['sam'], resumed.optim_wrapper.state_dict()['sam']
    for k in ('adlp', 'dlp_count'):
        if k in state_a:
            assert torch.equal(state_a[k], state_b[k])


def test_logs_report_sam_behaviour_and_rho_is_schedulable(tmp_path):
    runner = make_runner(tmp_path, SAM_CFGS['AUSAM'], max_epochs=2,
                         param_scheduler=[dict(type='LinearParamScheduler', param_name='rho',
                                               start_factor=1.0, end_factor=0.5, by_epoch=False,
                                               begin=0, end=8)])
    runner.train()
    scalars = runner.message_hub.log_scalars
    for key in ('train/rho', 'train/sam_share', 'train/subset_size', 'train/adlp_mean', 'train/adlp_max'):
        assert key in scalars, key
    assert scalars['train/subset_size'].current() == 4  # alpha 0.5 of 8 in epoch 1
    assert scalars['train/rho'].current() == pytest.approx(0.05)
    assert runner.optim_wrapper.optimizer.param_groups[0]['rho'] == pytest.approx(0.05)


def test_bad_configs_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match='does not support gradient accumulation'):
        make_runner(tmp_path, SAM_CFGS['SAM'], optim_wrapper=dict(
            type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor', optimizer=dict(type='SGD', lr=0.1), sam=dict(type='SAM'),
            accumulative_counts=2)).train()
    with pytest.raises(KeyError, match='choose one of'):
        make_runner(tmp_path, dict(type='FastSAM')).train()
    with pytest.raises(ValueError, match=r'needs optim_wrapper.sam = dict\(type='):
        make_runner(tmp_path, dict(rho=0.1)).train()
    with pytest.raises(ValueError, match='rho must be >= 0'):
        make_runner(tmp_path, dict(type='SAM', rho=-1)).train()
    with pytest.raises(ValueError, match=r"loss 'loss' has shape \(\) instead of \[8\]"):
        make_runner(tmp_path, SAM_CFGS['AUSAM'], per_sample=False).train()
    runner = make_runner(tmp_path, SAM_CFGS['SAM'], train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=1))
    with pytest.raises(RuntimeError, match="Train with a SAM loop: train_cfg = dict\\(type='SAMEpochBasedTrainLoop'"):
        runner.train()
    with pytest.raises(TypeError, match="constructor='SAMOptimWrapperConstructor'"):
        make_runner(tmp_path, SAM_CFGS['SAM'], optim_wrapper=dict(
            type='SAMOptimWrapper', optimizer=dict(type='SGD', lr=0.1), sam=dict(type='SAM'))).train()
    with pytest.raises(TypeError, match='SAMEpochBasedTrainLoop trains with a SAM-family optimizer'):
        make_runner(tmp_path, SAM_CFGS['SAM'], train_cfg=dict(type='SAMEpochBasedTrainLoop', max_epochs=1),
                    optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))).train()
    with pytest.raises(ValueError, match='warmup_epochs is a vSAM option; SAM has no warm-up'):
        make_runner(tmp_path, dict(type='SAM', rho=0.1, warmup_epochs=1)).train()


def test_missing_sample_ids_name_the_key(tmp_path):
    data = [{k: v for k, v in d.items() if k != 'sample_idx'} for d in toy_dataset()]
    runner = make_runner(tmp_path, SAM_CFGS['AUSAM'], train_dataloader=dict(
        dataset=data, batch_size=8, sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='default_collate')))
    with pytest.raises(KeyError, match="no 'sample_idx'"):
        runner.train()


@pytest.mark.parametrize('dtype', ['bfloat16', 'float16'])
def test_mixed_precision_trains_and_checkpoints_the_scaler(dtype, tmp_path):
    runner = make_runner(tmp_path, SAM_CFGS['VSAM'], max_epochs=1, optim_wrapper=dict(
        type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor', optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
        sam={k: v for k, v in SAM_CFGS['VSAM'].items() if k != 'warmup_epochs'}, dtype=dtype))
    before = [p.detach().clone() for p in runner.model.parameters()]
    runner.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, runner.model.parameters()))
    ckpt = torch.load(tmp_path / 'epoch_1.pth', weights_only=False)
    assert ('loss_scaler' in ckpt['optimizer']) == (dtype == 'float16')


def test_gradient_clipping_applies_to_the_final_gradient(tmp_path):
    runner = make_runner(tmp_path, SAM_CFGS['SAM'], shuffle=False, train_cfg=dict(by_epoch=False, max_iters=1),
                         optim_wrapper=dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor', optimizer=dict(type='SGD', lr=0.1),
                                            sam=dict(type='SAM', rho=0.1), clip_grad=dict(max_norm=0.01)))
    runner.train()
    torch.manual_seed(0)
    model = ToyClassifier()
    opt = OPTIMIZERS['SAM'](model.parameters(), 'SGD', lr=0.1, rho=0.1)
    data = toy_dataset()[:8]
    x = torch.stack([d['inputs'] for d in data])
    y = torch.stack([d['labels'] for d in data])
    opt.step(lambda: F.cross_entropy(model.net(x), y), model=model,
             before_base_step=lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01))
    for a, b in zip(runner.model.state_dict().values(), model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert runner.message_hub.get_scalar('train/grad_norm').current() > 0.01  # it did clip


@pytest.mark.parametrize('sam, passes_per_epoch', [
    (None, [32, 32]),                                               # plain SGD: one pass per image
    (dict(type='SAM', rho=0.05), [64, 64]),                         # two full passes
    (dict(type='AUSAM', rho=0.05, alpha=0.5, ramp_epochs=1), [64, 32]),  # epoch 0 full, then 2 x B/2
])
def test_throughput_json_counts_sample_passes(sam, passes_per_epoch, tmp_path):
    import json
    import os.path as osp
    overrides = dict(custom_hooks=[dict(type='ThroughputHook')])
    if sam is None:
        overrides['optim_wrapper'] = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))
    runner = make_runner(tmp_path, sam or dict(type='SAM'), max_epochs=2, **overrides)
    runner.train()
    with open(osp.join(runner.log_dir, 'throughput.json')) as f:
        record = json.load(f)
    assert record['images'] == 64
    assert record['sample_passes'] == sum(passes_per_epoch)
    assert record['images_per_s'] == pytest.approx(record['images'] / record['seconds'])


class CountingSGD(torch.optim.SGD):
    builds = 0

    def __init__(self, *args, **kwargs):
        type(self).builds += 1
        super().__init__(*args, **kwargs)


def test_constructor_builds_the_base_optimizer_once_around_paramwise_groups():
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import OPTIMIZERS as MM_OPTIMIZERS
    if 'CountingSGD' not in MM_OPTIMIZERS.module_dict:
        MM_OPTIMIZERS.register_module(module=CountingSGD)
    CountingSGD.builds = 0
    model = ToyClassifier()
    wrapper = build_optim_wrapper(model, dict(
        type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
        optimizer=dict(type='CountingSGD', lr=0.1, momentum=0.9, weight_decay=1e-3),
        sam=dict(type='AUSAM', rho=0.1, alpha=0.5),
        paramwise_cfg=dict(custom_keys={'net.0': dict(lr_mult=0.1)}, norm_decay_mult=0.0)))
    assert CountingSGD.builds == 1, 'one build of the base optimizer'
    optimizer = wrapper.optimizer
    assert type(optimizer).__name__ == 'AUSAM' and type(optimizer.base_optimizer) is CountingSGD
    assert optimizer.param_groups is optimizer.base_optimizer.param_groups
    by_param = {id(p): g for g in optimizer.param_groups for p in g['params']}
    net = model.net
    assert by_param[id(net[0].weight)]['lr'] == pytest.approx(0.01)   # custom_keys lr_mult
    assert by_param[id(net[3].weight)]['lr'] == pytest.approx(0.1)
    assert by_param[id(net[1].weight)]['weight_decay'] == 0.0           # norm_decay_mult
    assert all(g['rho'] == 0.1 for g in optimizer.param_groups)
    assert optimizer.num_samples is None  # sized from the data set when the SAM loop starts
