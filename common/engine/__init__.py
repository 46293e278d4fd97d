"""MMEngine glue shared by the QAT and pose applications (imports mmengine).

Importing this package registers, in MMEngine's root registries (visible from every scope,
``mmpose`` included):

- ``SAMOptimWrapperConstructor`` (``OPTIM_WRAPPER_CONSTRUCTORS``): builds the SAM-family
  optimizer once, around the parameter groups of ``paramwise_cfg``;
- ``SAMOptimWrapper`` (``OPTIM_WRAPPERS``): the wrapper it returns;
- ``SAMEpochBasedTrainLoop`` / ``SAMIterBasedTrainLoop`` (``LOOPS``): MMEngine's loops with
  the SAM-family iteration;
- ``ThroughputHook`` (``HOOKS``),

and makes local checkpoints loadable under torch >= 2.6 (see :mod:`common.engine.checkpoint`).
"""
from .checkpoint import load_from_local, trust_local_checkpoints
from .optim_constructor import SAMOptimWrapperConstructor
from .optim_wrapper import SAMOptimWrapper
from .sam_config import use_sam
from .sam_loops import SAMEpochBasedTrainLoop, SAMIterBasedTrainLoop
from .throughput_hook import ThroughputHook
from .train_step import sam_train_step

trust_local_checkpoints()

__all__ = ['load_from_local', 'trust_local_checkpoints', 'SAMOptimWrapperConstructor', 'SAMOptimWrapper',
           'SAMEpochBasedTrainLoop', 'SAMIterBasedTrainLoop', 'ThroughputHook', 'sam_train_step', 'use_sam']
