"""Every QAT recipe parses, builds its model, and says in its file name what it trains.

Names follow MMEngine's habit: ``[lsq-wXaY_]<net>_<gpus>xb<batch>-<epochs>e_<data>[-<N>k][_<sam>].py``
(``-<N>k``: a class-balanced subset of N thousand training images, the CPU-scale recipes).
"""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS

import qat_sam.registration  # noqa: F401
from qat_sam.quant import lsq_quantizers

ROOT = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'qat')
RECIPES = sorted(p for p in glob.glob(osp.join(ROOT, '*', '*.py')) if '_base_' not in p)
NAME = re.compile(r'^(?:lsq-w(?P<wb>\d)a(?P<ab>\d)_)?(?P<net>resnet20|resnet18|resnet8|smallcnn)_1xb(?P<batch>\d+)-'
                  r'(?P<epochs>\d+)e_(?P<data>digits|cifar10|cifar100)(?:-(?P<subset>\d+)k)?'
                  r'(?:_(?P<sam>sam|ausam|vsam))?\.py$')
SAM_TYPES = {None: None, 'sam': 'SAM', 'ausam': 'AUSAM', 'vsam': 'VSAM'}


def test_the_cifar_grid_is_complete():
    names = {osp.basename(p) for p in RECIPES}
    for data in ('cifar10', 'cifar100'):
        for net in ('resnet20', 'resnet18'):
            assert f'{net}_1xb128-200e_{data}.py' in names
            for bits in (4, 3, 2):
                for sam in ('', '_sam', '_ausam', '_vsam'):
                    assert f'lsq-w{bits}a{bits}_{net}_1xb128-90e_{data}{sam}.py' in names


@pytest.mark.parametrize('path', RECIPES, ids=[osp.basename(p) for p in RECIPES])
def test_recipe_matches_its_name_and_builds(path):
    match = NAME.match(osp.basename(path))
    assert match, f'{osp.basename(path)} does not follow the naming scheme'
    cfg = Config.fromfile(path)
    assert cfg.train_dataloader.batch_size == int(match['batch'])
    assert cfg.train_cfg.max_epochs == int(match['epochs'])
    assert cfg.param_scheduler[-1].get('T_max', cfg.train_cfg.max_epochs) == cfg.train_cfg.max_epochs
    data = match['data']
    assert cfg.train_dataloader.dataset.type == ('DigitsDataset' if data == 'digits' else 'CIFARDataset')
    num_classes = 100 if data == 'cifar100' else 10
    if match['net'].startswith('resnet'):
        assert cfg.model.network.depth == int(match['net'][len('resnet'):])
    subset = cfg.train_dataloader.dataset.get('subset_size')
    assert subset == (int(match['subset']) * 1000 if match['subset'] else None)
    if data != 'digits':
        assert cfg.train_dataloader.dataset.num_classes == num_classes
        assert cfg.model.data_preprocessor.mean == cfg.data_preprocessor.mean
    wrapper = cfg.optim_wrapper
    sam = SAM_TYPES[match['sam']]
    assert wrapper.get('type', 'OptimWrapper') == ('SAMOptimWrapper' if sam else 'OptimWrapper')
    if sam:
        assert wrapper.sam.type == sam and wrapper.sam.rho > 0

    model_cfg = cfg.model.copy()
    quant = model_cfg.get('quantization')
    if match['wb']:
        assert quant.weight_bits == int(match['wb']) and quant.act_bits == int(match['ab'])
        assert quant.get('first_last_bits', 8) == 8
        net = match['net']
        assert net in model_cfg.float_checkpoint and data in model_cfg.float_checkpoint
        model_cfg.float_checkpoint = None  # a structure check: no float weights needed
    else:
        assert quant is None
    in_channels = 1 if data == 'digits' else 3
    model = built_and_run(model_cfg.to_dict(), in_channels, 16 if data == 'digits' else 32)
    assert model.output_shape == (2, num_classes)
    steps = lsq_quantizers(model)
    assert bool(steps) == bool(match['wb'])
    if steps:
        weight_bits, act_bits = int(match['wb']), int(match['ab'])
        ranges = {q.q_p for q in steps.values()}
        # low-bit weights (signed) and activations (unsigned); first and last layer at 8 bits
        assert {2 ** (weight_bits - 1) - 1, 2 ** act_bits - 1, 127} <= ranges


_BUILT = {}


def built_and_run(model_cfg: dict, in_channels: int, size: int):
    """Build a model config once (the SAM variants of a recipe share its model) and run it."""
    key = repr(model_cfg)
    if key not in _BUILT:
        model = MODELS.build(model_cfg)
        with torch.no_grad():
            model.output_shape = tuple(model(torch.randn(2, in_channels, size, size)).shape)
        _BUILT[key] = model
    return _BUILT[key]
