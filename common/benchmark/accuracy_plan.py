"""The accuracy grid's plan: recipes, run specs (the cache keys), optimizer settings, order.

A run is (data set, precision, optimizer, noise rate, seed). Every optimizer trains the
same recipe for the same epochs; the SAM family wraps the recipe's own SGD. QAT runs start
from the float SGD run of the same noise rate and seed; RandomScheduleSAM takes the SAM
share the vSAM run of the same precision, noise rate and seed reached. Both dependencies
stay inside one (noise, seed) group, so groups can run in parallel.
"""
import dataclasses
import functools
import hashlib
import json
import os.path as osp
from typing import Dict, List, Optional

from common.optim import OPTIMIZERS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DIGITS = osp.join(ROOT, 'configs', 'qat', 'digits')
CIFAR10 = osp.join(ROOT, 'configs', 'qat', 'cifar10')
RECIPES = {
    'digits': {
        'float': osp.join(DIGITS, 'smallcnn_1xb64-12e_digits.py'),
        'w4a4': osp.join(DIGITS, 'lsq-w4a4_smallcnn_1xb64-10e_digits.py'),
        'w2a2': osp.join(DIGITS, 'lsq-w2a2_smallcnn_1xb64-10e_digits.py'),
    },
    'cifar10': {  # CPU scale: ResNet-8, 2,000 training images, batch 32
        'float': osp.join(CIFAR10, 'resnet8_1xb32-25e_cifar10-2k.py'),
        'w4a4': osp.join(CIFAR10, 'lsq-w4a4_resnet8_1xb32-8e_cifar10-2k.py'),
    },
    'cifar10-full': {  # the paper-scale recipes (--full): ResNet-20, all 50,000 images, GPU
        'float': osp.join(CIFAR10, 'resnet20_1xb128-200e_cifar10.py'),
        'w4a4': osp.join(CIFAR10, 'lsq-w4a4_resnet20_1xb128-90e_cifar10.py'),
        'w2a2': osp.join(CIFAR10, 'lsq-w2a2_resnet20_1xb128-90e_cifar10.py'),
    },
}
PRECISIONS = ['float', 'w4a4', 'w2a2']
OPTIMIZER_ORDER = ['SGD', 'SAM', 'AUSAM', 'UniformSubsetSAM', 'VSAM', 'RandomScheduleSAM', 'LookSAM']
assert set(OPTIMIZER_ORDER) == {'SGD', *OPTIMIZERS}, 'a SAM-family optimizer is missing from the benchmark'
ABLATIONS = {'AUSAM-IW': ('AUSAM', dict(importance_weighted=True)),
             'AUSAM-EMA': ('AUSAM', dict(dlp_momentum=0.9))}
ORDER = OPTIMIZER_ORDER + list(ABLATIONS)

_CIFAR = dict(noise=[0.0, 0.4], seeds=[0, 1, 2], precision=['float', 'w4a4'], optimizers=ORDER,
              epochs_float=25, epochs_qat=8, rho=0.1, alpha=0.5, ausam_ramp=0.15, vsam_warmup=0.1,
              vsam_warmup_qat=None, vsam_window=None, qat_noise=[0.4])
#: Per data set. ``vsam_warmup`` / ``ausam_ramp``: shares of the epochs; ``vsam_warmup_qat``
#: None: the same share for QAT; ``vsam_window`` None: the class default (the paper's K = 50);
#: ``qat_noise`` None: QAT at every noise rate. ``cifar10-full``: the paper-scale recipes'
#: settings: 200 float / 90 QAT epochs, rho 0.05, vSAM's warm-up 3 epochs (1.5% of 200; 3 of
#: 90 for QAT, as the vSAM QAT recipes), AUSAM's ramp 15% (30 float, 13.5 QAT epochs).
DEFAULTS = {
    'digits': dict(noise=[0.0, 0.2, 0.4], seeds=[0, 1, 2], precision=['float', 'w4a4'], optimizers=OPTIMIZER_ORDER,
                   epochs_float=24, epochs_qat=10, rho=0.2, alpha=0.5, ausam_ramp=0.15, vsam_warmup=0.1,
                   vsam_warmup_qat=None, vsam_window=None, qat_noise=None),
    'cifar10': _CIFAR,
    'cifar10-full': dict(_CIFAR, epochs_float=200, epochs_qat=90, rho=0.05, vsam_warmup=0.015,
                         vsam_warmup_qat=round(3 / 90, 6)),
}


@dataclasses.dataclass
class RunSpec:
    """One training run: everything that determines its result (and its cache key).

    Attributes:
        precision: ``'float'``, ``'w4a4'`` or ``'w2a2'``.
        optimizer: ``'SGD'`` (plain ``OptimWrapper``) or a name of ``common.optim.OPTIMIZERS``.
        noise: Symmetric label-noise rate of the training labels.
        seed: Training seed and seed of the label noise.
        epochs: Training epochs (the cosine schedule spans them).
        sam: ``sam=dict(...)`` of ``SAMOptimWrapper`` (``None`` for SGD).
        start_from: QAT only: key of the float SGD run whose checkpoint QAT starts from.
        dataset: ``'digits'``, ``'cifar10'`` or ``'cifar10-full'`` (left out of the digits
            keys, which predate it).
        recipe: A digest of the resolved recipe (``None`` for digits, whose keys predate it),
            so that a changed recipe (subset, augmentation, network, learning rate) never
            reuses a result.
        data_root: Where the CIFAR data was read from (``None``: the recipe's; digits).
    """

    precision: str
    optimizer: str
    noise: float
    seed: int
    epochs: int
    sam: Optional[dict] = None
    start_from: Optional[str] = None
    dataset: str = 'digits'
    recipe: Optional[str] = None
    data_root: Optional[str] = None

    def as_dict(self) -> dict:
        spec = dataclasses.asdict(self)
        if self.dataset == 'digits':
            del spec['dataset']
        for optional in ('recipe', 'data_root'):
            if spec[optional] is None:
                del spec[optional]
        return spec

    @property
    def key(self) -> str:
        """Readable name plus a hash of the whole spec, so changed settings never reuse a result."""
        digest = hashlib.sha1(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:8]
        prefix = '' if self.dataset == 'digits' else f'{self.dataset}-'
        return (f'{prefix}{self.precision}-{self.optimizer}-noise{self.noise:g}-seed{self.seed}-e{self.epochs}'
                f'-{digest}')


def sam_options(name: str, epochs: int, args, sam_prob: Optional[float] = None,
                precision: str = 'float') -> Optional[dict]:
    """The ``sam=dict(...)`` of optimizer ``name`` (``None`` for SGD)."""
    if name == 'SGD':
        return None
    cls, extra = ABLATIONS.get(name, (name, {}))
    options = dict(type=cls, rho=args.rho)
    if cls in ('AUSAM', 'UniformSubsetSAM'):
        options.update(alpha=args.alpha, ramp_epochs=round(args.ausam_ramp * epochs, 6), **extra)
    elif name == 'VSAM':
        share = args.vsam_warmup_qat if precision != 'float' and args.vsam_warmup_qat is not None \
            else args.vsam_warmup
        options.update(warmup_epochs=round(share * epochs, 6))
        if args.vsam_window is not None:
            options.update(window=args.vsam_window)
    elif name == 'RandomScheduleSAM':
        if sam_prob is None:
            raise ValueError('RandomScheduleSAM needs the SAM share of the vSAM run it is matched to.')
        options.update(sam_prob=round(sam_prob, 6))
    return options


def with_dependencies(optimizers: List[str], precisions: List[str]):
    """Optimizers and precisions to run: RandomScheduleSAM needs VSAM, QAT needs float SGD."""
    optimizers = set(optimizers)
    if 'RandomScheduleSAM' in optimizers:
        optimizers.add('VSAM')
    ordered = [name for name in ORDER if name in optimizers]
    return ordered, ['float'] + [p for p in precisions if p != 'float']


def planned_runs(args) -> List[tuple]:
    """(precision, optimizer, noise, seed) in execution order, dependencies first."""
    optimizers, precisions = with_dependencies(args.optimizers, args.precision)
    runs = []
    qat_noise = args.noise if args.qat_noise is None else args.qat_noise
    for noise in args.noise:
        for seed in args.seeds:
            for precision in precisions:
                if precision != 'float' and noise not in qat_noise:
                    continue
                names = optimizers if precision in args.precision else ['SGD']
                if precision == 'float' and 'SGD' not in names:
                    names = ['SGD'] + names
                names = [n for n in names if n not in ABLATIONS or (noise > 0 and precision == 'float')]
                runs += [(precision, name, noise, seed) for name in names]
    return runs


def make_spec(precision: str, optimizer: str, noise: float, seed: int, args, done: Dict[tuple, dict]) -> RunSpec:
    """The spec of a planned run; ``done`` maps (precision, optimizer, noise, seed) to results."""
    epochs = args.epochs_float if precision == 'float' else args.epochs_qat
    sam_prob = None
    if optimizer == 'RandomScheduleSAM':
        sam_prob = done[(precision, 'VSAM', noise, seed)]['sam_share']
    start_from = None if precision == 'float' else done[('float', 'SGD', noise, seed)]['key']
    recipe = None if args.dataset == 'digits' else recipe_digest(RECIPES[args.dataset][precision])
    return RunSpec(precision, optimizer, noise, seed, epochs,
                   sam_options(optimizer, epochs, args, sam_prob, precision), start_from, args.dataset, recipe,
                   args.data_root)


@functools.lru_cache(maxsize=None)
def recipe_digest(path: str) -> str:
    """A short hash of the recipe as MMEngine resolves it (its ``_base_`` files included)."""
    from mmengine.config import Config
    return hashlib.sha1(Config.fromfile(path).pretty_text.encode()).hexdigest()[:10]


def checkpoint_path(spec: RunSpec, run_dir: str) -> Optional[str]:
    """Where the float SGD run leaves its checkpoint (``None`` for other runs)."""
    if spec.precision == 'float' and spec.optimizer == 'SGD':
        return osp.join(run_dir, f'epoch_{spec.epochs}.pth')
    return None
