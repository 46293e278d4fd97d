"""Build and drive any optimizer of the registry with one closure convention (tests only)."""
import torch.nn.functional as F

from common.optim import OPTIMIZERS


def build(name, params, **kwargs):
    cls = OPTIMIZERS[name]
    if cls.uses_sample_ids:
        kwargs.setdefault('num_samples', 64)
    if name == 'VSAM':
        kwargs.setdefault('window', 4)
        kwargs.setdefault('seed', 0)
    if name == 'RandomScheduleSAM':
        kwargs.setdefault('seed', 0)
    if name in ('AUSAM', 'UniformSubsetSAM'):
        kwargs.setdefault('seed', 0)
    return cls(params, **kwargs)


def step(opt, model, x, y, ids=None, **kwargs):
    if opt.uses_sample_ids:
        return opt.step(lambda idx: F.cross_entropy(model(x[idx]), y[idx], reduction='none'),
                        model=model, sample_ids=ids, **kwargs)
    return opt.step(lambda: F.cross_entropy(model(x), y), model=model, **kwargs)
