"""Options of the MMEngine glue are validated by name (issue 11): ``optim_wrapper.sam``, the
wrapper's own options and the hooks' options name their owner, the unknown key, the closest
valid key and every valid key (the documented behaviour of ``common.options.check_options``).
"""
import re

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import HOOKS, LOOPS

import common.engine  # noqa: F401  (registers the SAM constructor, wrapper, loops, ThroughputHook)
from common.options import UnknownOptionError


def listed_valid(message):
    tail = message.split('Valid options:', 1)[1].split('. Fix', 1)[0]
    return re.findall(r"'([^']+)'", tail)


def wrapper(sam, optimizer=None):
    model = torch.nn.Linear(3, 2)
    cfg = dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
               optimizer=optimizer or dict(type='SGD', lr=0.1, momentum=0.9), sam=sam)
    return build_optim_wrapper(model, cfg)


def test_sam_dict_misspelt_key_is_blamed_on_the_sam_class_not_sgd():
    """The issue's example: sam=dict(type='AUSAM', alfa=0.3)."""
    with pytest.raises(UnknownOptionError) as info:
        wrapper(dict(type='AUSAM', alfa=0.3))
    message = str(info.value)
    assert message.startswith('AUSAM')
    assert 'optim_wrapper.sam' in message
    assert 'SGD.__init__' not in message
    assert "'alfa' (did you mean 'alpha'?)" in message
    valid = listed_valid(message)
    assert valid == sorted(valid)
    # AUSAM's own options and SAMBase's; the base optimizer's belong to optim_wrapper.optimizer
    assert {'alpha', 'num_samples', 'rho', 'adaptive', 'perturb_eps'} <= set(valid)
    assert not {'lr', 'momentum'} & set(valid)
    assert 'base_optimizer' not in valid  # the base optimizer is optim_wrapper.optimizer


@pytest.mark.parametrize('sam,bad,good', [
    (dict(type='SAM', rh0=0.05), 'rh0', 'rho'),
    (dict(type='VSAM', rho=0.05, windw=20), 'windw', 'window'),
    (dict(type='LookSAM', rho=0.05, alhpa=0.5), 'alhpa', 'alpha'),
])
def test_sam_dict_keys_of_every_origin_are_suggested(sam, bad, good):
    with pytest.raises(UnknownOptionError, match=rf"^{sam['type']} \(base optimizer SGD\) in optim_wrapper.sam: "
                                                 rf"unknown option '{bad}' \(did you mean '{good}'\?\)"):
        wrapper(sam)


def test_valid_sam_dicts_still_build_and_the_loop_option_is_redirected():
    with pytest.raises(ValueError, match=r"warmup_epochs is an option of the SAM train loop.*"
                                         r"train_cfg = dict\(type='SAMEpochBasedTrainLoop', warmup_epochs="):
        wrapper(dict(type='VSAM', rho=0.05, warmup_epochs=2))
    assert wrapper(dict(type='VSAM', rho=0.05, window=20)).optimizer.window == 20
    ausam = wrapper(dict(type='AUSAM', rho=0.1, alpha=0.5, ramp_epochs=3))
    assert ausam.optimizer.alpha == 0.5 and ausam.optimizer.param_groups[0]['momentum'] == 0.9
    # The base optimizer's defaults reach it, also those its __init__ derives itself (AdamW).
    adamw = wrapper(dict(type='SAM', rho=0.05), optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
    assert isinstance(adamw.optimizer.base_optimizer, torch.optim.AdamW)
    assert adamw.optimizer.param_groups[0]['weight_decay'] == 0.05


def test_sam_dict_type_and_base_optimizer_errors():
    with pytest.raises(KeyError, match=r"'AUSMA' \(did you mean 'AUSAM'\?\).*choose one of"):
        wrapper(dict(type='AUSMA'))
    with pytest.raises(ValueError, match='base optimizer is optim_wrapper.optimizer'):
        wrapper(dict(type='SAM', base_optimizer='AdamW'))


def test_optim_wrapper_own_options_are_checked():
    with pytest.raises(UnknownOptionError) as info:
        build_optim_wrapper(torch.nn.Linear(3, 2), dict(type='SAMOptimWrapper', constructor='SAMOptimWrapperConstructor',
                                                        optimizer=dict(type='SGD', lr=0.1),
                                                        sam=dict(type='SAM'), dtpye='bfloat16'))
    message = str(info.value)
    assert message.startswith('SAMOptimWrapper')
    assert "'dtpye' (did you mean 'dtype'?)" in message
    assert {'sam', 'dtype', 'loss_scale', 'clip_grad', 'accumulative_counts'} <= set(listed_valid(message))


@pytest.mark.parametrize('loop, length', [('SAMEpochBasedTrainLoop', dict(max_epochs=1)),
                                          ('SAMIterBasedTrainLoop', dict(max_iters=1))])
def test_sam_loop_options_are_checked(loop, length):
    with pytest.raises(UnknownOptionError) as info:
        LOOPS.build(dict(type=loop, stats_intervall=5, **length), default_args=dict(runner=None, dataloader=None))
    message = str(info.value)
    assert message.startswith(loop)
    assert "'stats_intervall' (did you mean 'stats_interval'?)" in message
    # MMEngine's loop arguments and the SAM options documented in sam_loops._SAMLoop
    assert {'warmup_epochs', 'sample_id_key', 'stats_interval', 'share_window', 'val_interval',
            *length} <= set(listed_valid(message))


def test_throughput_hook_takes_no_options():
    HOOKS.build(dict(type='ThroughputHook'))
    with pytest.raises(UnknownOptionError, match=r"^ThroughputHook: unknown option 'interval'\. "
                                                 r'ThroughputHook takes no options'):
        HOOKS.build(dict(type='ThroughputHook', interval=10))


def test_base_optimizer_keys_stay_with_the_base_optimizer():
    """RMSprop's alpha is not AUSAM's alpha, Adam's eps is not the perturbation's epsilon."""
    ausam = wrapper(dict(type='AUSAM', rho=0.1, alpha=0.5), optimizer=dict(type='RMSprop', lr=1e-3, alpha=0.9))
    assert ausam.optimizer.alpha == 0.5 and ausam.optimizer.param_groups[0]['alpha'] == 0.9
    sam = wrapper(dict(type='SAM', rho=0.05), optimizer=dict(type='AdamW', lr=1e-3, eps=1e-6))
    assert sam.optimizer.param_groups[0]['eps'] == 1e-6 and sam.optimizer.perturb_eps == 1e-12
    with pytest.raises(UnknownOptionError, match=r"^optim_wrapper.optimizer \(SGD\): unknown option 'momentun' "
                                                 r"\(did you mean 'momentum'\?\)"):
        wrapper(dict(type='SAM'), optimizer=dict(type='SGD', lr=0.1, momentun=0.9))


def test_base_optimizer_keys_in_sam_are_refused_not_silently_dropped():
    """Before: sam=dict(lr=0.5) was accepted and the base optimizer kept optimizer.lr."""
    with pytest.raises(ValueError, match=r"optim_wrapper.sam sets \['lr', 'momentum'\]: hyper-parameters of the "
                                         r"base optimizer SGD. Put them in optim_wrapper.optimizer"):
        wrapper(dict(type='SAM', rho=0.05, lr=0.5, momentum=0.5))


def test_use_sam_keeps_the_config_s_shape_and_its_mixed_precision():
    from mmengine.config import Config
    from common.engine import use_sam
    cfg = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper', loss_scale='dynamic',
                                         optimizer=dict(type='SGD', lr=0.1)),
                      train_cfg=dict(by_epoch=True, max_epochs=3)))
    use_sam(cfg, dict(type='VSAM', rho=0.05), warmup_epochs=1)
    assert cfg.optim_wrapper.type == 'SAMOptimWrapper' and cfg.optim_wrapper.dtype == 'float16'
    assert cfg.optim_wrapper.constructor == 'SAMOptimWrapperConstructor'
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.1)
    assert cfg.train_cfg == dict(type='SAMEpochBasedTrainLoop', max_epochs=3, warmup_epochs=1)
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
                      train_cfg=dict(type='IterBasedTrainLoop', max_iters=10)))
    assert use_sam(cfg, dict(type='SAM')).train_cfg.type == 'SAMIterBasedTrainLoop'
