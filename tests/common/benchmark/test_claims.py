"""Summaries and claims on hand-made results, checked against values worked out by hand."""
import json
import statistics

import pytest

from common.benchmark.claims import claims, draw_frequencies, draw_frequency, paired_gain, summarise


def result(optimizer, seed, top1, passes, seconds=1.0, noise=0.4, precision='float', share=0.0):
    key = f'{precision}-{optimizer}-{noise}-{seed}'
    return dict(key=key, spec=dict(precision=precision, optimizer=optimizer, noise=noise, seed=seed),
                top1=top1, sample_passes=passes, train_seconds=seconds, sam_share=share)


TOP1 = {'SGD': [80.0, 81.0, 79.0], 'SAM': [84.0, 85.0, 84.0], 'AUSAM': [83.5, 84.0, 83.0],
        'UniformSubsetSAM': [83.0, 84.5, 82.5], 'VSAM': [82.0, 82.0, 81.0], 'RandomScheduleSAM': [82.0, 81.5, 81.0]}
PASSES = {'SGD': 100, 'SAM': 200, 'AUSAM': 110, 'UniformSubsetSAM': 110, 'VSAM': 118, 'RandomScheduleSAM': 120}


@pytest.fixture
def summary():
    results = [result(o, s, TOP1[o][s], PASSES[o]) for o in TOP1 for s in range(3)]
    return summarise(results)


def test_summary_rows(summary):
    ausam = next(r for r in summary if r['optimizer'] == 'AUSAM')
    assert ausam['top1_mean'] == pytest.approx(83.5)
    assert ausam['top1_std'] == pytest.approx(0.5)  # sample std of 83.5, 84, 83
    assert ausam['passes_vs_SGD'] == pytest.approx(1.1) and ausam['passes_vs_SAM'] == pytest.approx(0.55)
    assert [r['optimizer'] for r in summary] == list(TOP1)


def test_claims_by_hand(summary):
    rows = {r['optimizer']: r for r in summary}
    sam = paired_gain(rows, 'SAM', 'SGD')
    # per seed +4, +4, +5; spread = max(std SGD = 1.0, std SAM = 0.577)
    assert sam['gain'] == pytest.approx(13 / 3) and sam['spread'] == pytest.approx(1.0) and sam['beyond']
    verdicts = {c['claim']: (c['value'], c['verdict']) for c in claims(summary)}
    assert verdicts['SAM beats SGD beyond the seed spread'][1] == 'holds'
    # AUSAM gains 3.5, 3, 4 -> 3.5 of SAM's 13/3: 80.8% >= 80%
    value, verdict = verdicts["AUSAM keeps >= 80% of SAM's gain"]
    assert value.startswith('81%') and verdict == 'holds'
    # vSAM gains 2, 1, 2 -> 5/3 of 13/3 = 38%
    assert verdicts["vSAM keeps >= 80% of SAM's gain"] == (
        "38% (+1.67 of SAM's +4.33 pts over SGD)", 'does not hold')
    assert verdicts["AUSAM costs <= 60% of SAM's sample-passes"] == ('55%', 'holds')
    assert verdicts["vSAM costs <= 60% of SAM's sample-passes"] == ('59%', 'holds')
    # AUSAM - uniform: +0.5, -0.5, +0.5 -> +0.17, spread max(0.5, 1.04) -> not beyond
    value, verdict = verdicts['AUSAM beats UniformSubsetSAM at equal cost']
    spread = statistics.stdev(TOP1['UniformSubsetSAM'])
    assert value == f'+0.17 pts vs spread {spread:.2f}, better in 2/3 seeds; passes ratio 1.00'
    assert verdict == 'does not hold'
    assert verdicts['vSAM beats RandomScheduleSAM at equal cost'][1] == 'does not hold'


def test_a_loss_beyond_the_spread_is_called_reversed():
    results = [result(o, s, t, 100) for o, tops in (('SGD', [85, 85.2, 84.8]), ('SAM', [80, 80.1, 79.9]))
               for s, t in enumerate(tops)]
    verdicts = {c['claim']: c['verdict'] for c in claims(summarise(results))}
    assert verdicts['SAM beats SGD beyond the seed spread'] == 'does not hold (reversed beyond the spread)'


def test_draw_frequency_pools_samples_of_each_kind(tmp_path):
    behaviour = dict(draws=[1, 2, 0, 4], appearances=[4, 4, 2, 4], mislabelled=[0, 0, 1, 1])
    assert draw_frequency(behaviour) == dict(clean=3 / 8, mislabelled=4 / 6)
    results = []
    for seed, draws in enumerate(([1, 2, 0, 4], [2, 2, 2, 4])):
        r = result('AUSAM', seed, 80.0, 100)
        (tmp_path / 'runs' / r['key']).mkdir(parents=True)
        (tmp_path / 'runs' / r['key'] / 'behaviour.json').write_text(json.dumps(
            dict(draws=draws, appearances=[4, 4, 2, 4], mislabelled=[0, 0, 1, 1])))
        results.append(r)
    (row,) = draw_frequencies(results, str(tmp_path))
    clean, noisy = (3 / 8 + 4 / 8) / 2, (4 / 6 + 6 / 6) / 2
    assert (row['optimizer'], row['seeds']) == ('AUSAM', 2)
    assert row['clean'] == pytest.approx(clean) and row['mislabelled'] == pytest.approx(noisy)
    assert row['ratio'] == pytest.approx(noisy / clean)


def test_overview_table_has_a_column_per_precision_and_noise():
    from common.benchmark.tables import overview_markdown
    results = [result(o, s, TOP1[o][s], PASSES[o]) for o in ('SGD', 'SAM') for s in range(3)]
    results += [result(o, s, 50.0 + s, PASSES[o], noise=0.0) for o in ('SGD', 'SAM') for s in range(3)]
    results += [result('SGD', s, 40.0, 100, precision='w4a4') for s in range(3)]
    lines = overview_markdown(summarise(results)).splitlines()
    assert lines[0] == ('| optimizer | float, noise 0 | float, noise 0.4 | w4a4, noise 0.4 | '
                        'sample-passes vs SGD (float / w4a4) | train time vs SGD (float / w4a4) |')
    assert lines[2] == '| SGD | 51.00 ± 1.00 | 80.00 ± 1.00 | 40.00 ± 0.00 | 1.00 / 1.00 | 1.00 / 1.00 |'
    assert lines[3] == '| SAM | 51.00 ± 1.00 | 84.33 ± 0.58 | - | 2.00 / - | 1.00 / - |'
