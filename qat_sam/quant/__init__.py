"""LSQ quantization-aware training on brevitas (Esser et al., "Learned Step Size
Quantization", ICLR 2020).

- :mod:`.lsq`: the quantizer (step-size module, integer quantizer, brevitas quantizer classes).
- :mod:`.layers`: brevitas layers built from float ones, and model helpers.
- :mod:`.prepare`: whole-network conversion float -> quantized and back.
"""
from .layers import (calibrate_lsq, lsq_conv2d, lsq_identity, lsq_linear, lsq_quantizers,
                     lsq_relu, set_lsq_enabled)
from .lsq import (LSQActQuant, LSQIntQuant, LSQSignedActQuant, LSQStepSize, LSQWeightQuant,
                  grad_scale, lsq_init_step, lsq_range)
from .prepare import prepare, to_float

__all__ = ['LSQActQuant', 'LSQIntQuant', 'LSQSignedActQuant', 'LSQStepSize', 'LSQWeightQuant',
           'calibrate_lsq', 'grad_scale', 'lsq_conv2d', 'lsq_identity', 'lsq_init_step',
           'lsq_linear', 'lsq_quantizers', 'lsq_range', 'lsq_relu', 'prepare', 'set_lsq_enabled', 'to_float']
