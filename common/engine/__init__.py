"""MMEngine glue shared by the QAT and pose applications (imports mmengine).

Importing this package registers the project's MMEngine components and makes local
checkpoints loadable under torch >= 2.6 (see :mod:`common.engine.checkpoint`).
"""
from .checkpoint import load_from_local, trust_local_checkpoints

trust_local_checkpoints()

__all__ = ['load_from_local', 'trust_local_checkpoints']
