"""Finished runs are reused: a run lives in ``runs/<key>/`` with its ``result.json``.

The key hashes everything that determines the result, so a run whose settings changed is
never reused; a run that did not finish has no ``result.json`` and is redone.
"""
import os.path as osp
from typing import Dict, Hashable, List, Optional, Sequence

from .records import read_json


def cached_result(spec: dict, run_dir: str, needs: Optional[str] = None) -> Optional[dict]:
    """The finished result in ``run_dir`` if it was made from ``spec`` (and ``needs`` exists)."""
    path = osp.join(run_dir, 'result.json')
    if not osp.isfile(path):
        return None
    result = read_json(path)
    if result.get('spec') != spec:
        return None
    if needs is not None and not osp.isfile(needs):
        return None  # e.g. the checkpoint a later run starts from
    return result


def groups_by(runs: Sequence, key) -> List[list]:
    """``runs`` split by ``key(run)``, keeping their order within a group; largest group first."""
    groups: Dict[Hashable, list] = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    return sorted(groups.values(), key=len, reverse=True)
