"""Importing this module registers pose_sam's pieces (cheap: mmpose is not imported here).

- ``common.engine``: the SAM optimizer-wrapper constructor and wrapper, the SAM train loops,
  ``ThroughputHook``.
- :mod:`pose_sam.sam_adapter`: the SAM model adapter that gives MMPose estimators
  per-sample losses and annotation-id sample ids under AUSAM.
"""
import common.engine  # noqa: F401
import pose_sam.sam_adapter  # noqa: F401
