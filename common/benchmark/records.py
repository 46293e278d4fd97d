"""Result files: JSON written atomically, what an MMEngine run directory holds, what runs did."""
import glob
import json
import os
import os.path as osp
from typing import List


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def write_json(path: str, data) -> None:
    """Write ``data`` to ``path`` through a temporary file, so a crash never leaves half a file."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def latest_run(work_dir: str) -> str:
    """The newest timestamped run folder MMEngine made in ``work_dir``."""
    runs = sorted(d for d in glob.glob(osp.join(work_dir, '*')) if osp.isdir(osp.join(d, 'vis_data')))
    if not runs:
        raise FileNotFoundError(f'no MMEngine run (a folder with vis_data/) found in {work_dir}')
    return runs[-1]


def run_metric(work_dir: str, metric: str):
    """The last logged value of ``metric`` in the newest run of ``work_dir``, and that run's
    ``throughput.json`` (images/s, sample-passes; see ``ThroughputHook``)."""
    run = latest_run(work_dir)
    value = None
    with open(osp.join(run, 'vis_data', 'scalars.json')) as f:
        for line in f:
            value = json.loads(line).get(metric, value)
    return value, read_json(osp.join(run, 'throughput.json'))


def behaviour_runs(results: List[dict], optimizer: str, out_dir: str) -> List[tuple]:
    """(result, behaviour.json) of every run of ``optimizer``, in result order."""
    return [(r, read_json(osp.join(out_dir, 'runs', r['key'], 'behaviour.json')))
            for r in results if r['spec']['optimizer'] == optimizer]
