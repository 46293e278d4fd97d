"""The QAT configs' dicts are validated by name (issue 11): ``model.quantization``, the data
set options and the network options name their owner, the unknown key, the closest valid key
and every valid key (the documented behaviour of ``common.options.check_options``).
"""
import re

import pytest
from mmengine.registry import DATASETS, MODELS

import qat_sam.registration  # noqa: F401
from common.options import UnknownOptionError
from qat_sam.data import CIFARDataset, DigitsDataset, ImageFolderDataset


def listed_valid(message):
    tail = message.split('Valid options:', 1)[1].split('. Fix', 1)[0]
    return re.findall(r"'([^']+)'", tail)


def test_quantization_misspelt_key_names_the_classifier_and_prepares_options():
    cfg = dict(type='ImageClassifier', network=dict(type='SmallCNN'), quantization=dict(weight_bit=4, act_bits=4))
    with pytest.raises(UnknownOptionError) as info:
        MODELS.build(cfg)
    message = str(info.value)
    assert message.startswith('ImageClassifier')
    assert 'quantization' in message
    assert "'weight_bit' (did you mean 'weight_bits'?)" in message
    # qat_sam.quant.prepare's documented arguments (README: weight_bits, act_bits, first_last_bits)
    assert {'weight_bits', 'act_bits', 'first_last_bits', 'per_channel'} == set(listed_valid(message))


def test_valid_quantization_still_builds():
    model = MODELS.build(dict(type='ImageClassifier', network=dict(type='SmallCNN'),
                              quantization=dict(weight_bits=4, act_bits=4, first_last_bits=8)))
    assert model.network is not None


@pytest.mark.parametrize('cfg,owner,bad,good,valid', [
    # Digits: documented Args split, image_size, channels, noise_rate, augment, seed
    (dict(type='DigitsDataset', split='train', nois_rate=0.4), 'DigitsDataset', 'nois_rate', 'noise_rate',
     {'split', 'image_size', 'channels', 'noise_rate', 'augment', 'seed'}),
    (dict(type='DigitsDataset', imagesize=16), 'DigitsDataset', 'imagesize', 'image_size',
     {'split', 'image_size', 'channels', 'noise_rate', 'augment', 'seed'}),
    # Nothing is read before the check: no CIFAR or ImageFolder files are needed.
    (dict(type='CIFARDataset', data_root='nowhere', num_class=100), 'CIFARDataset', 'num_class', 'num_classes',
     {'data_root', 'num_classes', 'split', 'noise_rate', 'seed', 'subset_size', 'augment'}),
    (dict(type='ImageFolderDataset', data_root='nowhere', noise=0.2), 'ImageFolderDataset', 'noise', 'noise_rate',
     {'data_root', 'split', 'image_size', 'noise_rate', 'seed'}),
])
def test_dataset_misspelt_key(cfg, owner, bad, good, valid):
    with pytest.raises(UnknownOptionError) as info:
        DATASETS.build(cfg)
    message = str(info.value)
    assert message.startswith(owner)
    assert f"'{bad}' (did you mean '{good}'?)" in message
    assert set(listed_valid(message)) == valid


def test_dataset_classes_used_directly_are_checked_too():
    assert len(DigitsDataset('test', image_size=8)) == 497
    with pytest.raises(UnknownOptionError,
                       match=r"^DigitsDataset: unknown option 'chanels' \(did you mean 'channels'\?\)"):
        DigitsDataset(chanels=3)
    with pytest.raises(UnknownOptionError, match='CIFARDataset'):
        CIFARDataset(splitt='train')
    with pytest.raises(UnknownOptionError, match='ImageFolderDataset'):
        ImageFolderDataset('nowhere', image_sise=32)


@pytest.mark.parametrize('cfg,owner,bad,good', [
    (dict(type='SmallCNN', widht=16), 'SmallCNN', 'widht', 'width'),
    (dict(type='CifarResNet', dept=20), 'CifarResNet', 'dept', 'depth'),
    (dict(type='TorchvisionResNet', num_class=10), 'TorchvisionResNet', 'num_class', 'num_classes'),
    (dict(type='ImageClassifier', network=dict(type='SmallCNN'), label_smothing=0.1), 'ImageClassifier',
     'label_smothing', 'label_smoothing'),
])
def test_model_and_network_misspelt_key(cfg, owner, bad, good):
    with pytest.raises(UnknownOptionError, match=rf"^{owner}: unknown option '{bad}' \(did you mean '{good}'\?\)"):
        MODELS.build(cfg)


def test_metric_misspelt_key_names_the_metric():
    from mmengine.registry import METRICS
    with pytest.raises(UnknownOptionError, match=r"TopKAccuracy: unknown option 'top_k' \(did you mean 'topk'\?\)"):
        METRICS.build(dict(type='TopKAccuracy', top_k=(1,)))
    assert METRICS.build(dict(type='TopKAccuracy', topk=(1,), prefix='acc')).topk == (1,)
