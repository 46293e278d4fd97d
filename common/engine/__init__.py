"""MMEngine glue shared by the QAT and pose applications (imports mmengine).

Importing this package registers ``SAMOptimWrapper`` (``OPTIM_WRAPPERS``) and
``SAMHook`` and ``ThroughputHook`` (``HOOKS``) in MMEngine's root registries, visible from every scope
(``mmpose`` included), and makes local checkpoints loadable under torch >= 2.6
(see :mod:`common.engine.checkpoint`).
"""
from .checkpoint import load_from_local, trust_local_checkpoints
from .optim_wrapper import SAMOptimWrapper
from .sam_hook import SAMHook
from .throughput_hook import ThroughputHook
from .train_step import sam_train_step

trust_local_checkpoints()

__all__ = ['load_from_local', 'trust_local_checkpoints', 'SAMOptimWrapper', 'SAMHook', 'ThroughputHook', 'sam_train_step']
