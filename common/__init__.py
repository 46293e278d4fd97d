"""leansam's shared core: ``common.optim`` (pure PyTorch) and ``common.engine`` (MMEngine glue)."""
