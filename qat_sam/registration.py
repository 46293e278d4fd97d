"""Importing this module registers qat_sam's data sets, networks, model and metric."""
import common.engine  # noqa: F401
import qat_sam.data.digits  # noqa: F401
import qat_sam.data.folders  # noqa: F401
import qat_sam.metrics  # noqa: F401
import qat_sam.models  # noqa: F401
