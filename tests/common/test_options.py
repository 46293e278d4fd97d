"""Options are validated by name (issue 11): an unknown key names its owner, the key, the
closest valid key and every valid key, instead of failing somewhere else (``SGD.__init__``).

The expected message content comes from the documented behaviour of
:func:`common.options.check_options` (owner, each unknown key with "did you mean", the valid
keys sorted) and the valid keys from the optimizers' documented parameters (their docstrings'
``Args:``) and the base optimizer's signature, computed here independently.
"""
import inspect
import re

import pytest
import torch

from common.optim import OPTIMIZERS, SAMBase, build_sam_optimizer
from common.options import UnknownOptionError, accepted_keywords, check_options, checked_options

NAMES = sorted(OPTIMIZERS)


def params():
    return [torch.nn.Parameter(torch.zeros(3))]


def listed_valid(message):
    """The quoted keys after 'Valid options:' in a message."""
    tail = message.split('Valid options:', 1)[1].split('. Fix', 1)[0]
    return re.findall(r"'([^']+)'", tail)


# ------------------------------------------------------------------ the helper itself
def test_check_options_message_names_owner_key_suggestion_and_sorted_valid_keys():
    with pytest.raises(UnknownOptionError) as info:
        check_options('Widget', dict(sped=1, size=2), ['speed', 'size', 'colour'])
    message = str(info.value)
    assert message.startswith('Widget')
    assert "'sped' (did you mean 'speed'?)" in message
    assert listed_valid(message) == ['colour', 'size', 'speed']
    assert 'remove' in message
    assert info.value.owner == 'Widget' and info.value.unknown == ('sped',)
    assert info.value.valid == ('colour', 'size', 'speed')


def test_check_options_lists_every_unknown_key_and_suggests_only_close_ones():
    with pytest.raises(UnknownOptionError) as info:
        check_options('Widget', ['colur', 'zzzzzz', 'size'], {'colour', 'size'}, what='argument',
                      context='in widget=dict(...)')
    message = str(info.value)
    assert message.startswith('Widget in widget=dict(...)')
    assert "unknown arguments 'colur' (did you mean 'colour'?), 'zzzzzz'." in message
    assert 'zzzzzz\' (did you mean' not in message
    assert "Valid arguments: 'colour', 'size'." in message


def test_check_options_accepts_valid_keys_and_is_a_type_error():
    check_options('Widget', dict(size=1), ['size'])
    check_options('Widget', {}, [])
    assert issubclass(UnknownOptionError, TypeError)
    # Registries that re-raise type(e)(message) must be able to build it from a message.
    assert str(UnknownOptionError('text')) == 'text'
    with pytest.raises(UnknownOptionError, match='Widget takes no options'):
        check_options('Widget', dict(size=1), [])


def test_accepted_keywords_follows_kwargs_up_the_mro():
    class Base:
        def __init__(self, a, b=1, *, c=2):
            pass

    class Middle(Base):
        def __init__(self, d=0, **kwargs):
            super().__init__(**kwargs)

    class Leaf(Middle):
        pass

    class Open:
        def __init__(self, x, **kwargs):
            pass

    def positional_only(a, /, b):
        pass

    assert accepted_keywords(Leaf) == {'a', 'b', 'c', 'd'}
    assert accepted_keywords(Leaf, stop_at=Middle) == {'d'}
    assert accepted_keywords(Open) is None          # **kwargs that go nowhere known
    assert accepted_keywords(type('Empty', (), {})) == frozenset()
    assert accepted_keywords(positional_only) == {'b'}
    assert accepted_keywords(Leaf, exclude=('self', 'a')) == {'b', 'c', 'd'}


def test_checked_options_checks_keywords_before_init_and_keeps_the_signature():
    calls = []

    @checked_options
    class Thing:
        def __init__(self, size: int = 1, colour: str = 'red'):
            calls.append((size, colour))

    class SubThing(Thing):
        pass

    assert list(inspect.signature(Thing).parameters) == ['size', 'colour']
    Thing(3, colour='blue')
    assert calls == [(3, 'blue')]
    with pytest.raises(UnknownOptionError) as info:
        Thing(colur='blue')
    assert str(info.value).startswith('Thing:') and "did you mean 'colour'?" in str(info.value)
    assert calls == [(3, 'blue')]  # refused before __init__ ran
    with pytest.raises(UnknownOptionError, match=r"^SubThing: unknown option 'sise' \(did you mean 'size'\?\)"):
        SubThing(sise=2)

    @checked_options
    class NoOptions:
        pass

    NoOptions()
    with pytest.raises(UnknownOptionError, match="NoOptions: unknown option 'x'.*NoOptions takes no options"):
        NoOptions(x=1)


# ------------------------------------------------------- SAM-family options (the case)
def documented_args(cls):
    """Argument names in the ``Args:`` sections of ``cls`` and its bases up to SAMBase."""
    names = set()
    for klass in cls.__mro__[:cls.__mro__.index(SAMBase) + 1]:
        doc = inspect.cleandoc(klass.__doc__ or '')
        if 'Args:' not in doc:
            continue
        block = doc.split('Args:', 1)[1]
        for line in block.splitlines()[1:]:
            if line and not line.startswith(' '):
                break  # end of the section
            match = re.match(r'^    ([*\w][\w, *]*):', line)
            if match:
                names.update(n.strip() for n in match[1].split(','))
    return {n for n in names if n not in ('params', '**base_kwargs') and not n.startswith('Other arguments')}


def sgd_hyper_parameters():
    sig = inspect.signature(torch.optim.SGD.__init__)
    return {n for n, p in sig.parameters.items() if n not in ('self', 'params')
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def test_ausam_alfa_is_blamed_on_ausam_with_the_suggestion_alpha():
    with pytest.raises(UnknownOptionError) as info:
        build_sam_optimizer('AUSAM', params(), num_samples=8, lr=0.1, alfa=0.3)
    message = str(info.value)
    assert message.startswith('AUSAM')
    assert 'SGD.__init__' not in message
    assert "'alfa' (did you mean 'alpha'?)" in message
    expected = documented_args(OPTIMIZERS['AUSAM']) | sgd_hyper_parameters()
    assert {'alpha', 'rho', 'num_samples', 'lr', 'momentum'} <= expected
    assert set(listed_valid(message)) == expected
    assert listed_valid(message) == sorted(listed_valid(message))


@pytest.mark.parametrize('bad,good', [('rh0', 'rho'), ('momentun', 'momentum'), ('weight_decey', 'weight_decay'),
                                      ('adaptiv', 'adaptive')])
def test_sam_base_and_base_optimizer_keys_are_suggested(bad, good):
    with pytest.raises(UnknownOptionError, match=rf"^SAM \(base optimizer SGD\): unknown option '{bad}' "
                                                 rf"\(did you mean '{good}'\?\)"):
        build_sam_optimizer('SAM', params(), lr=0.1, **{bad: 0.5})


def test_base_optimizer_hyper_parameters_follow_the_base_optimizer():
    opt = build_sam_optimizer('SAM', params(), base_optimizer='AdamW', lr=1e-3, betas=(0.8, 0.9))
    assert opt.param_groups[0]['betas'] == (0.8, 0.9)
    with pytest.raises(UnknownOptionError, match=r"^SAM \(base optimizer AdamW\): .*'beta' \(did you mean 'betas'\?\)"):
        build_sam_optimizer('SAM', params(), base_optimizer='AdamW', lr=1e-3, beta=(0.8, 0.9))
    with pytest.raises(UnknownOptionError, match="'momentum'"):  # an SGD key is not an AdamW key
        build_sam_optimizer('SAM', params(), base_optimizer=torch.optim.AdamW, lr=1e-3, momentum=0.9)


def test_unknown_optimizer_name_suggests_the_closest():
    with pytest.raises(KeyError, match=r"'AUSMA' \(did you mean 'AUSAM'\?\).*choose one of"):
        build_sam_optimizer('AUSMA', params())


def required(cls):
    return dict(num_samples=8) if cls.uses_sample_ids else {}


def default_of(cls, name):
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is not None and name in inspect.signature(init).parameters:
            return inspect.signature(init).parameters[name].default
    raise AssertionError(f'{name} is documented but no __init__ of {cls.__name__} takes it')


@pytest.mark.parametrize('name', NAMES)
def test_every_documented_parameter_is_accepted_and_junk_is_refused(name):
    cls = OPTIMIZERS[name]
    documented = documented_args(cls)
    assert {'base_optimizer', 'rho', 'adaptive', 'perturb_eps', 'check_finite', 'base_options'} <= documented  # SAMBase's
    for key in sorted(documented):
        options = dict(required(cls), lr=0.1)
        options.setdefault(key, True if (name, key) == ('UniformSubsetSAM', 'uniform') else default_of(cls, key))
        build_sam_optimizer(name, params(), **options)
    build_sam_optimizer(name, params(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True,
                        dampening=0.0, **required(cls))
    with pytest.raises(UnknownOptionError) as info:
        build_sam_optimizer(name, params(), lr=0.1, qqq=1, **required(cls))
    message = str(info.value)
    assert message.startswith(f'{name} (base optimizer SGD)')
    assert "'qqq'" in message and 'did you mean' not in message
    assert documented | sgd_hyper_parameters() <= set(listed_valid(message))


@pytest.mark.parametrize('name', sorted(OPTIMIZERS))
def test_direct_construction_blames_the_sam_class_not_the_base_optimizer(name):
    """Plain PyTorch users build the class directly; the base optimizer must not be blamed."""
    params = [torch.zeros(2, requires_grad=True)]
    extra = dict(num_samples=4) if OPTIMIZERS[name].uses_sample_ids else {}
    with pytest.raises(UnknownOptionError, match=rf"^{name} \(base optimizer SGD\): unknown option "
                                                 r"'rh0' \(did you mean 'rho'\?\)"):
        OPTIMIZERS[name](params, 'SGD', rh0=0.1, lr=0.1, **extra)


def test_same_named_options_of_the_sam_class_and_the_base_optimizer_stay_apart():
    """Adam's eps is the base optimizer's (the perturbation's is perturb_eps); a name both use
    (RMSprop's alpha, AUSAM's alpha) reaches the base optimizer through base_options."""
    opt = OPTIMIZERS['SAM'](params(), 'AdamW', lr=1e-3, eps=1e-6)
    assert opt.param_groups[0]['eps'] == 1e-6 and opt.perturb_eps == 1e-12
    opt = OPTIMIZERS['AUSAM'](params(), 'RMSprop', lr=1e-3, alpha=0.5, num_samples=4,
                              base_options=dict(alpha=0.9))
    assert opt.alpha == 0.5 and opt.param_groups[0]['alpha'] == 0.9
    assert isinstance(opt.base_optimizer, torch.optim.RMSprop) and opt.base_optimizer.defaults['alpha'] == 0.9


def test_asam_and_uniform_false_are_explained():
    with pytest.raises(KeyError, match=r"'ASAM' \(ASAM is SAM with adaptive=True\)"):
        build_sam_optimizer('ASAM', params(), lr=0.1)
    with pytest.raises(ValueError, match='uniform=False is AUSAM'):
        OPTIMIZERS['UniformSubsetSAM'](params(), lr=0.1, num_samples=4, uniform=False)
