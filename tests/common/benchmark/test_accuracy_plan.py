"""The accuracy grid's plan: cache keys that published results were made under, and the
CIFAR-10 stage's runs, groups and dependencies."""
import argparse
import json
import os.path as osp

import pytest

from common.benchmark.accuracy_plan import DEFAULTS, RunSpec, make_spec, planned_runs
from common.benchmark.run_cache import groups_by

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))


def test_digits_keys_match_the_published_results():
    """Every run of the published digits grid keeps its key: the cache stays valid."""
    with open(osp.join(ROOT, 'docs', 'benchmarks', 'accuracy', 'results.json')) as f:
        runs = json.load(f)['runs']
    assert len(runs) == 126
    for run in runs:
        assert RunSpec(**run['spec']).key == run['key']
        assert RunSpec(**run['spec']).as_dict() == run['spec']


def cifar_args(**overrides):
    return argparse.Namespace(**dict(DEFAULTS['cifar10'], dataset='cifar10', data_root=None, **overrides))


def test_cifar_plan_has_every_row_the_stage_needs():
    runs = planned_runs(cifar_args())
    float_all = ['SGD', 'SAM', 'AUSAM', 'UniformSubsetSAM', 'VSAM', 'RandomScheduleSAM', 'LookSAM']
    for seed in (0, 1, 2):
        assert [o for p, o, n, s in runs if (p, n, s) == ('float', 0.0, seed)] == float_all
        assert [o for p, o, n, s in runs if (p, n, s) == ('float', 0.4, seed)] == float_all + ['AUSAM-IW',
                                                                                               'AUSAM-EMA']
        # W4A4 at the noise rate of the QAT column only, and the float SGD run it starts from comes first
        assert [o for p, o, n, s in runs if (p, n, s) == ('w4a4', 0.4, seed)] == float_all
        assert not [r for r in runs if r[0] == 'w4a4' and r[2] == 0.0]
    assert len(runs) == 3 * (7 + 9 + 7)
    groups = groups_by(runs, key=lambda r: r[2:])
    assert [len(g) for g in groups] == [16, 16, 16, 7, 7, 7]  # the noisy groups (with QAT) first
    for group in groups:  # dependencies stay in the group, in order
        names = [(p, o) for p, o, _, _ in group]
        if ('w4a4', 'SGD') in names:
            assert names.index(('float', 'SGD')) < names.index(('w4a4', 'SGD'))
        assert names.index(('float', 'VSAM')) < names.index(('float', 'RandomScheduleSAM'))


def test_cifar_specs_carry_the_data_set_and_the_ablation_options():
    args = cifar_args()
    sgd = make_spec('float', 'SGD', 0.4, 1, args, {})
    assert sgd.key.startswith('cifar10-float-SGD-noise0.4-seed1-e25-') and sgd.as_dict()['dataset'] == 'cifar10'
    iw = make_spec('float', 'AUSAM-IW', 0.4, 1, args, {})
    ema = make_spec('float', 'AUSAM-EMA', 0.4, 1, args, {})
    assert iw.sam == dict(type='AUSAM', rho=0.1, alpha=0.5, ramp_epochs=3.75, importance_weighted=True)
    assert ema.sam == dict(type='AUSAM', rho=0.1, alpha=0.5, ramp_epochs=3.75, dlp_momentum=0.9)
    vsam = make_spec('float', 'VSAM', 0.4, 1, args, {})
    assert vsam.sam == dict(type='VSAM', rho=0.1, warmup_epochs=2.5)  # the paper's window (class default)
    done = {('float', 'VSAM', 0.4, 1): dict(sam_share=0.25), ('float', 'SGD', 0.4, 1): dict(key=sgd.key)}
    assert make_spec('float', 'RandomScheduleSAM', 0.4, 1, args, done).sam['sam_prob'] == 0.25
    assert make_spec('w4a4', 'SAM', 0.4, 1, args, done).start_from == sgd.key
    full = make_spec('float', 'VSAM', 0.4, 1, argparse.Namespace(**dict(DEFAULTS['cifar10-full'],
                                                                        dataset='cifar10-full', data_root=None)), {})
    assert full.epochs == 200 and full.sam['warmup_epochs'] == 3.0 and full.key.startswith('cifar10-full-')


def test_random_schedule_without_its_vsam_run_is_an_error():
    with pytest.raises(KeyError):
        make_spec('float', 'RandomScheduleSAM', 0.4, 1, cifar_args(), {})
