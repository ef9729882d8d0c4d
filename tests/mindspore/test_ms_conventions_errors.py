"""Bad conventions and rule fields in ``rmsprop_ops.mindspore.RMSProp``: a TypeError / ValueError naming the
argument (expected vs received), MindSpore's own errors for its own arguments, what MindSpore's built-in
ops (the fallback) cannot compute, and the repr (run: pytest -m mindspore)."""

import warnings

import numpy as np
import pytest

import mindspore as ms
from mindspore import nn

from ms_conventions import ms_params, problem
from rmsprop_ops.mindspore import RMSProp

pytestmark = pytest.mark.mindspore


def _params():
    return ms_params(problem(31, 1).params)


BAD = [
    ({"convention": "tf2"}, ValueError, r"convention: expected one of \['d2l', 'keras'"),
    ({"convention": 3}, TypeError, "convention: expected a str, got int"),
    ({"lr": 0.1}, TypeError, r"'lr' is learning_rate in .*torch.*; with convention='mindspore' pass learning_rate="),
    ({"convention": "keras", "alpha": 0.9}, TypeError, "with convention='keras' pass rho=..."),
    ({"convention": "torch", "lr": 0.1, "learning_rate": 0.2}, TypeError, "learning_rate given twice"),
    ({"convention": "torch", "alpha": 0.9, "decay": 0.8}, TypeError, "decay given twice"),
    ({"bogus": 1}, TypeError, "unexpected keyword 'bogus'"),
    ({"convention": "paddle"}, TypeError, "convention='paddle' has no default learning rate"),
    ({"initial_accumulator_value": -1.0}, ValueError, "'initial_accumulator_value' is out of range"),
    ({"initial_accumulator_value": "1"}, TypeError, r"initial_accumulator_value: expected a float, got str \('1'\)"),
    ({"eps_in_sqrt": 1}, TypeError, "eps_in_sqrt: expected a bool"),
    ({"lr_in_momentum": "no"}, TypeError, "lr_in_momentum: expected a bool"),
    ({"weight_decay_mode": "l3"}, ValueError,
     "'weight_decay_mode' is out of range: expected 'l2', 'l1' or 'decoupled'"),
    ({"weight_decay_mode": 2}, TypeError, "weight_decay_mode: expected a str"),
    ({"maximize": "yes"}, TypeError, "maximize: expected a bool"),
    ({"nesterov": "yes"}, TypeError, "nesterov: expected a bool"),
    ({"bias_correction": 1}, TypeError, "bias_correction: expected a bool"),
    # MindSpore's own checks, in its words, under any convention
    ({"convention": "torch", "decay": 1}, TypeError, "For 'RMSProp', the type of 'decay' should be 'float'"),
    ({"convention": "keras", "epsilon": 0.0}, ValueError, "the 'epsilon' must be float and must > 0"),
    ({"convention": "torch", "alpha": 1.5}, ValueError, "the argument 'decay' is out of range"),
    ({"convention": "torch", "momentum": -0.1}, ValueError, "the 'momentum' must be float and must >= 0"),
]


@pytest.mark.parametrize("kw,exc,match", BAD, ids=[str(b[0]) for b in BAD])
def test_bad_arguments_are_named(kw, exc, match):
    with pytest.raises(exc, match=match):
        RMSProp(_params(), **kw)


class _Decay(nn.Cell):
    def construct(self, global_step):
        return ms.ops.cast(global_step, ms.float32).reshape(()) * 0.0 + 0.01


def test_weight_decay_kinds_mindspore_cannot_apply_are_refused():
    with pytest.raises(ValueError, match="weight_decay_mode='decoupled' needs a number as 'weight_decay'"):
        RMSProp(_params(), convention="keras", weight_decay=_Decay())
    ps = _params()
    with pytest.raises(ValueError, match="weight_decay_mode='l1' cannot be combined with 'grad_centralization'"):
        RMSProp([{"params": ps[:2], "grad_centralization": True}, {"params": ps[2:]}], weight_decay=0.1,
                weight_decay_mode="l1")
    # decoupled decay with gradient centralisation: the kernel decays, MindSpore only centralises
    RMSProp([{"params": ps[:2], "grad_centralization": True}, {"params": ps[2:]}], weight_decay=0.1,
            convention="keras")
    # and an l2 dynamic decay stays MindSpore's
    RMSProp(_params(), weight_decay=_Decay())


def test_the_fallback_runs_mindspores_rule_only(monkeypatch):
    monkeypatch.setenv("RMSPROP_OPS_MS_FALLBACK", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kw, named in (({"convention": "torch"}, "eps_in_sqrt=False, lr_in_momentum=False"),
                          ({"convention": "keras", "momentum": 0.9}, "weight_decay_mode='decoupled'"),
                          ({"convention": "mxnet"}, "momentum ignored unless centered"),
                          ({"momentum": 0.9, "nesterov": True}, "nesterov=True"),
                          ({"bias_correction": True}, "bias_correction=True")):
            with pytest.raises(ValueError, match=named + ".* needs the rmsprop_ops kernel"):
                RMSProp(_params(), **kw)
        # MindSpore's rule with another starting value, maximize and an EMA: its ops can run those
        prob = problem(32, 3)
        ps = ms_params(prob.params)
        opt = RMSProp(ps, learning_rate=0.01, initial_accumulator_value=0.0, maximize=True, use_ema=True)
        assert not opt.use_kernel
        np.testing.assert_array_equal(opt.ms[0].asnumpy(), np.zeros(prob.params[0].shape, np.float32))
        opt(tuple(ms.Tensor(np.ones(p.shape, np.float32)) for p in prob.params))
        # ascends: +lr * 1 / sqrt(0.1) per element from a zero mean square
        np.testing.assert_allclose(ps[0].asnumpy() - prob.params[0], 0.01 / np.sqrt(0.1), rtol=1e-5)


REPRS = [
    ({}, "convention='mindspore', kernel="),
    ({"convention": "torch"}, "decay=0.99, momentum=0.0, epsilon=1e-08, centered=False, loss_scale=1.0, "
                              "weight_decay=0.0, params=3, convention='torch', kernel="),
    ({"initial_accumulator_value": 0.0, "eps_in_sqrt": False}, "convention='mindspore', eps_in_sqrt=False, "
                                                               "initial_accumulator_value=0.0, kernel="),
    ({"convention": "keras", "weight_decay_mode": "l2", "maximize": True},
     "convention='keras', weight_decay_mode='l2', maximize=True, kernel="),
    ({"use_ema": True, "ema_momentum": 0.999, "ema_schedule": "tf1", "ema_overwrite_frequency": 10},
     "use_ema=True, ema_momentum=0.999, ema_schedule='tf1', ema_overwrite_frequency=10, kernel="),
]


@pytest.mark.parametrize("kw,text", REPRS, ids=[str(r[0]) for r in REPRS])
def test_repr_names_the_convention_and_every_changed_field(kw, text):
    assert text in repr(RMSProp(_params(), **kw))


def _inner_signature(cls):
    """The constructor's own signature (MindSpore's opt_init_args_register wraps it without functools.wraps
    and binds the call against it)."""
    import inspect

    (fn,) = [c.cell_contents for c in cls.__init__.__closure__ if callable(c.cell_contents)]
    return inspect.signature(fn)


def test_the_signature_reads_as_mindspores():
    sig, ref = _inner_signature(RMSProp), _inner_signature(nn.RMSProp)
    for name in ("learning_rate", "decay", "momentum", "epsilon", "use_locking", "centered", "loss_scale",
                 "weight_decay"):
        assert repr(sig.parameters[name].default) == repr(ref.parameters[name].default), name
        assert sig.parameters[name].default == ref.parameters[name].default
