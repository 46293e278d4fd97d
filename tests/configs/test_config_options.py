"""Every shipped config passes the option checks of issue 11: its ``optim_wrapper`` (with the
``sam`` dict) builds, and every data set and hook dict of a project-owned class holds only
keys that class accepts (checked by name, without reading any data).
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DATASETS, HOOKS

import pose_sam.registration  # noqa: F401
import qat_sam.registration  # noqa: F401
from common.options import accepted_keywords, check_options

ROOT = osp.join(osp.dirname(__file__), '..', '..', 'configs')
CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, '*', '*', '*.py')) if '_base_' not in p)
OWNED = ('common.', 'qat_sam.', 'pose_sam.')


def owned_class(registry, type_name):
    cls = registry.get(type_name) if isinstance(type_name, str) else type_name
    return cls if cls is not None and cls.__module__.startswith(OWNED) else None


def test_configs_are_found():
    assert any('/qat/' in p for p in CONFIGS) and any('/pose/' in p for p in CONFIGS)


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_config_dicts_hold_only_valid_options(path):
    cfg = Config.fromfile(path)
    checked = 0
    if cfg.optim_wrapper.get('type') == 'SAMOptimWrapper':
        wrapper = build_optim_wrapper(torch.nn.Linear(3, 2), cfg.optim_wrapper.to_dict())
        assert type(wrapper.optimizer).__name__ == cfg.optim_wrapper.sam.type
        checked += 1
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader:
            dataset = loader.dataset.to_dict()
            cls = owned_class(DATASETS, dataset.get('type'))
            if cls is not None:
                check_options(cls.__name__, [k for k in dataset if k != 'type'], accepted_keywords(cls))
                checked += 1
    for hook in cfg.get('custom_hooks', None) or []:
        cls = owned_class(HOOKS, hook['type'])
        if cls is not None:
            HOOKS.build(dict(hook))
            checked += 1
    assert checked  # every config uses the project's optimizer wrapper, data sets or hooks
