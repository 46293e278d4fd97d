"""The run cache, group claims and worker processes."""
import json
import sys

import pytest

from common.benchmark.run_cache import cached_result, groups_by
from common.benchmark.workers import claim, run_workers, visible_gpus


def test_cached_result_needs_the_same_spec_and_the_files_later_runs_need(tmp_path):
    (tmp_path / 'result.json').write_text(json.dumps(dict(spec=dict(a=1), top1=50.0)))
    assert cached_result(dict(a=1), str(tmp_path))['top1'] == 50.0
    assert cached_result(dict(a=2), str(tmp_path)) is None
    assert cached_result(dict(a=1), str(tmp_path), needs=str(tmp_path / 'epoch_1.pth')) is None
    assert cached_result(dict(a=1), str(tmp_path / 'missing')) is None


def test_groups_keep_their_order_largest_first():
    runs = [('a', 1), ('b', 2), ('c', 1), ('d', 1), ('e', 2)]
    assert groups_by(runs, key=lambda r: r[1]) == [[('a', 1), ('c', 1), ('d', 1)], [('b', 2), ('e', 2)]]


def test_a_group_is_claimed_once(tmp_path):
    assert claim(str(tmp_path), 'noise0.4-seed0')
    assert not claim(str(tmp_path), 'noise0.4-seed0')
    assert claim(str(tmp_path), 'noise0.4-seed1')


def test_workers_run_side_by_side_and_a_failure_names_its_log(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    write = [sys.executable, '-c', 'import sys; print("done", flush=True)']
    run_workers([write, write], str(tmp_path), str(out))
    assert (out / 'worker0.log').read_text() == 'done\n' == (out / 'worker1.log').read_text()
    fail = [sys.executable, '-c', 'raise SystemExit(3)']
    with pytest.raises(RuntimeError, match=r'1 worker\(s\) failed; see .*worker1.log'):
        run_workers([write, fail], str(tmp_path), str(out))


def test_workers_get_one_gpu_each_within_the_callers_mask(monkeypatch):
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '2, 3')
    assert visible_gpus() == ['2', '3']
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    assert visible_gpus() == []
