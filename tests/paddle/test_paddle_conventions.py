"""``rmsprop_ops.paddle.RMSProp(convention=...)`` gives the neutral optimizer's numbers (issue #21).

The neutral ``rmsprop_ops.RMSProp`` is checked against Keras, torch, timm, MXNet, Paddle and MindSpore
themselves (tests/optimizer, tests/paddle/test_paddle_neutral.py); here the Paddle front end runs the same
gradients next to it and every step's parameters and every state buffer are compared (float32 within 2e-6,
float64 within 1e-12): every convention x {plain, momentum, centered} x {weight decay off, on} x
{per-parameter, flat state} in dynamic mode and x {fused, flat, one op per parameter} in a PIR static
program, each convention field set on its own, parameter groups, schedulers, explicit values and the
framework's own keyword names. The default (no ``convention``) stays Paddle's rule: the parity suites
against ``paddle.optimizer.RMSProp`` (test_paddle_parity.py, ...) run with it.
"""

import re

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops import schedules

import paddle_conventions as C

paddle = pytest.importorskip("paddle")
from rmsprop_ops.paddle import RMSProp, ScheduleLR  # noqa: E402

STEPS = 8
FP32 = 2e-6
CONVENTIONS = sorted(rmsprop_ops.CONVENTIONS)
KINDS = {"plain": {}, "momentum": {"momentum": 0.9}, "centered": {"centered": True, "momentum": 0.5}}
DECAY = {"no_decay": {}, "decay": {"weight_decay": 0.05}}
DYNAMIC_LAYOUTS = {"per_param": {"flat_state": False}, "flat": {"flat_state": True}}
STATIC_LAYOUTS = {"fused": {}, "flat": {"flat_state": True}, "one_op_per_param": {"fused": False}}


def _kw(convention, kind, decay):
    return dict(convention=convention, learning_rate=0.01, **KINDS[kind], **DECAY[decay])


@pytest.mark.parametrize("layout", DYNAMIC_LAYOUTS)
@pytest.mark.parametrize("decay", DECAY)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_dynamic_mode_matches_the_neutral_optimizer(convention, kind, decay, layout):
    prob = C.problem(seed=CONVENTIONS.index(convention))
    kw = _kw(convention, kind, decay)
    C.compare(C.run_dygraph(prob, STEPS, **kw, **DYNAMIC_LAYOUTS[layout]), C.run_neutral(prob, STEPS, **kw), FP32)


@pytest.mark.parametrize("layout", STATIC_LAYOUTS)
@pytest.mark.parametrize("decay", DECAY)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_static_program_matches_the_neutral_optimizer(convention, kind, decay, layout):
    prob = C.problem(seed=10 + CONVENTIONS.index(convention))
    kw = _kw(convention, kind, decay)
    run = C.run_static(prob, STEPS, **kw, **STATIC_LAYOUTS[layout])
    C.compare(run, C.run_neutral(prob, STEPS, **kw), FP32)
    ours = [op for op in run.extra["ops"] if "rmsprop_ops" in op]
    assert ours and not any(op.startswith("pd_op.rmsprop") for op in run.extra["ops"])
    assert len(ours) == (len(C.SHAPES) if layout == "one_op_per_param" else 1), ours


# Each convention field on its own, over Paddle's convention: (Paddle front-end arguments, neutral
# arguments). weight_decay_mode="decoupled" is Keras' p -= lr * wd * p; clip_after_weight_decay clips
# g + wd * p (MXNet) where Paddle clips g.
FIELDS = {
    "eps_in_sqrt": ({"eps_in_sqrt": False, "momentum": 0.9}, {}),
    "initial_accumulator_value": ({"initial_accumulator_value": 1.0, "momentum": 0.9}, {}),
    "initial_accumulator_value_0.3": ({"initial_accumulator_value": 0.3, "centered": True}, {}),
    "lr_in_momentum": ({"lr_in_momentum": False, "momentum": 0.9}, {}),
    "decoupled": ({"weight_decay_mode": "decoupled", "weight_decay": 0.1}, {}),
    "l1": ({"weight_decay_mode": "l1", "weight_decay": 0.1}, {}),
    "clip_after_weight_decay": ({"clip_after_weight_decay": True, "weight_decay": 0.5,
                                 "grad_clip": "value"}, {"clip_gradient": 0.3}),
    "clip_before_weight_decay": ({"weight_decay": 0.5, "grad_clip": "value"}, {"clip_gradient": 0.3}),
    "maximize": ({"maximize": True, "momentum": 0.9, "weight_decay": 0.1}, {}),
    "maximize_clipped": ({"maximize": True, "grad_clip": "value"}, {"clip_gradient": 0.3}),
    "nesterov": ({"nesterov": True, "momentum": 0.9}, {}),
    "nesterov_centered": ({"nesterov": True, "momentum": 0.5, "centered": True}, {}),
    "bias_correction": ({"bias_correction": True, "momentum": 0.9}, {}),
    "eps_rho_momentum": ({"rho": 0.8, "epsilon": 1e-3, "momentum": 0.3}, {}),
}


def _split(name):
    ours, theirs = FIELDS[name]
    ours = dict(ours, convention="paddle", learning_rate=0.01)
    neutral = {k: v for k, v in ours.items() if k != "grad_clip"}
    neutral.update(theirs)
    if ours.get("grad_clip") == "value":
        ours["grad_clip"] = paddle.nn.ClipGradByValue(0.3)
    return ours, neutral


@pytest.mark.parametrize("mode", ["dynamic", "static"])
@pytest.mark.parametrize("name", FIELDS)
def test_every_field_is_settable_on_its_own(name, mode):
    prob = C.problem(seed=20)
    ours, neutral = _split(name)
    run = C.run_dygraph(prob, STEPS, **ours) if mode == "dynamic" else C.run_static(prob, STEPS, **ours)
    ref = C.run_neutral(prob, STEPS, **neutral)
    C.compare(run, ref, FP32)
    if name in ("clip_before_weight_decay", "eps_rho_momentum"):  # Paddle's own options: the controls
        return
    # the field changes the numbers (parameters or state; lr placement under a constant rate only scales the
    # buffer), or the test would prove nothing
    plain = C.run_neutral(prob, STEPS, convention="paddle", learning_rate=0.01,
                          **{k: v for k, v in neutral.items() if k in ("momentum", "centered", "clip_gradient",
                                                                       "weight_decay")})
    changes = [np.max(np.abs(a - b)) for a, b in zip(run.history[-1], plain.history[-1])]
    changes += [np.max(np.abs(run.state[k] - v)) for k, v in plain.state.items()]
    assert max(changes) > 1e-5


def test_explicit_values_keep_their_values_and_the_rest_comes_from_the_convention():
    layer = paddle.nn.Linear(3, 2)
    opt = RMSProp(parameters=layer.parameters(), convention="torch", rho=0.95, epsilon=1e-6)
    r = opt.rule
    assert (r.learning_rate, r.rho, r.epsilon, r.momentum) == (0.01, 0.95, 1e-6, 0.0)  # Paddle's own values, passed
    assert (opt.eps_in_sqrt, opt.lr_in_momentum, opt.initial_accumulator_value) == (False, False, 0.0)
    tf1 = RMSProp(0.1, parameters=layer.parameters(), convention="tf1", eps_in_sqrt=False)
    assert (tf1.rule.rho, tf1.rule.epsilon, tf1.initial_accumulator_value, tf1.eps_in_sqrt) == (0.9, 1e-10, 1.0, False)
    default = RMSProp(0.1, parameters=layer.parameters())
    assert default.rule == rmsprop_ops._conventions.resolve("paddle", learning_rate=0.1)
    assert (default._rho, default._epsilon, default._momentum, default._centered) == (0.95, 1e-6, 0.0, False)


def test_the_frameworks_own_names_under_their_convention():
    prob = C.problem(seed=21)
    torch_kw = dict(lr=0.02, alpha=0.9, eps=1e-4, momentum=0.5)
    ours = C.run_dygraph(prob, STEPS, convention="torch", **torch_kw)
    C.compare(ours, C.run_neutral(prob, STEPS, convention="torch", **torch_kw), FP32)
    assert ours.opt.rule.rho == 0.9 and ours.opt.get_lr() == 0.02
    mx = C.run_dygraph(prob, STEPS, convention="mxnet", learning_rate=0.01, wd=0.1, gamma1=0.8, centered=True)
    C.compare(mx, C.run_neutral(prob, STEPS, convention="mxnet", learning_rate=0.01, wd=0.1, gamma1=0.8,
                                centered=True), FP32)


REFUSALS = [
    ("another framework's name", dict(convention="keras", lr=0.1), TypeError,
     "'lr' is learning_rate in .*with convention='keras' pass learning_rate=... instead"),
    ("a name twice", dict(convention="torch", learning_rate=0.1, lr=0.1), TypeError, "learning_rate given twice"),
    ("no such argument here", dict(convention="mindspore", learning_rate=0.1, loss_scale=8.0), TypeError,
     "loss_scale.*not an argument of rmsprop_ops.paddle.RMSProp"),
    ("unknown keyword", dict(learning_rate=0.1, betas=0.9), TypeError, "unexpected keyword 'betas'"),
    ("no learning rate", dict(), TypeError, "missing argument learning_rate .*'paddle' convention has no default"),
    ("None learning rate", dict(learning_rate=None), ValueError, "learning_rate: expected a float or an LRScheduler"),
    ("unknown convention", dict(learning_rate=0.1, convention="caffe"), ValueError,
     "convention: expected one of .*got 'caffe'"),
    ("bad mode", dict(learning_rate=0.1, weight_decay_mode="l3"), ValueError,
     "weight_decay_mode: expected 'l2', 'l1' or 'decoupled'"),
    ("mode against a regularizer", dict(learning_rate=0.1, weight_decay_mode="decoupled",
                                        weight_decay=paddle.regularizer.L2Decay(0.1)), ValueError,
     "weight_decay: weight_decay_mode='decoupled' does not apply to L2Decay"),
    ("negative start", dict(learning_rate=0.1, initial_accumulator_value=-1.0), ValueError,
     "initial_accumulator_value: expected a float in \\[0.0, inf\\)"),
    ("flag type", dict(learning_rate=0.1, eps_in_sqrt=1), TypeError, "eps_in_sqrt: expected a bool"),
    ("maximize type", dict(learning_rate=0.1, maximize=1), TypeError, "maximize: expected a bool"),
    ("nesterov type", dict(learning_rate=0.1, nesterov="yes"), TypeError, "nesterov: expected a bool"),
    ("ema momentum", dict(learning_rate=0.1, use_ema=True, ema_momentum=1.5), ValueError,
     "ema_momentum: expected a float in \\[0.0, 1.0\\]"),
    ("ema schedule", dict(learning_rate=0.1, use_ema=True, ema_schedule="linear"), ValueError, "ema_schedule"),
    ("ema frequency", dict(learning_rate=0.1, use_ema=True, ema_overwrite_frequency=0), ValueError,
     "ema_overwrite_frequency: expected an int >= 1"),
    ("group mode against a regularizer", dict(learning_rate=0.1, weight_decay_mode="l1", groups=True), ValueError,
     "parameters\\[0\\].weight_decay: weight_decay_mode='l1' does not apply to L2Decay"),
]


@pytest.mark.parametrize("name,kw,exc,match", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_bad_arguments_are_refused_by_name(name, kw, exc, match):
    layer = paddle.nn.Linear(3, 2)
    kw = dict(kw)
    parameters = layer.parameters()
    if kw.pop("groups", False):
        parameters = [{"params": parameters, "weight_decay": paddle.regularizer.L2Decay(0.1)}]
    with pytest.raises(exc, match=match):
        RMSProp(parameters=parameters, **kw)


def test_groups_override_the_rule_and_a_float_decay_follows_the_convention():
    """Dynamic mode honours a group's rho / epsilon / momentum / centered; a group's learning_rate scales
    the rate (the neutral optimizer's lr_mult) and its float weight_decay is decoupled under Keras'."""
    prob = C.problem(seed=22)
    groups = [([0, 2], {"learning_rate": 0.5, "rho": 0.8, "momentum": 0.3, "weight_decay": 0.2}),
              ([1], {"centered": True, "epsilon": 1e-3})]
    neutral = [(idx, {("lr_mult" if k == "learning_rate" else k): v for k, v in o.items()}) for idx, o in groups]
    for conv in ("keras", "tf1", "torch"):
        kw = dict(convention=conv, learning_rate=0.02, weight_decay=0.01)
        ours = C.run_dygraph(prob, STEPS, groups=groups, **kw)
        C.compare(ours, C.run_neutral(prob, STEPS, groups=neutral, **kw), FP32)
    regs = [p.regularizer for g in ours.opt._param_groups for p in g["params"]]
    assert {type(r).__name__ for r in regs} == {"L2Decay"}  # torch: coupled, as Paddle converts a float
    keras = RMSProp(0.1, parameters=[{"params": [paddle.create_parameter([2], "float32")], "weight_decay": 0.2},
                                     {"params": [paddle.create_parameter([2], "float32")]}],
                    convention="keras", weight_decay=0.01)
    assert [repr(p.regularizer) for g in keras._param_groups for p in g["params"]] == \
        ["DecoupledDecay(0.2)", "DecoupledDecay(0.01)"]


@pytest.mark.parametrize("convention", ["keras", "tf1", "torch"])
def test_groups_in_a_static_program(convention):
    """A static program takes a group's learning-rate scale and weight decay (Paddle's rule); the decay is
    the convention's kind there too."""
    prob = C.problem(seed=26)
    groups = [([0, 2], {"learning_rate": 0.5, "weight_decay": 0.2}), ([1], {})]
    neutral = [([0, 2], {"lr_mult": 0.5, "weight_decay": 0.2}), ([1], {})]
    kw = dict(convention=convention, learning_rate=0.02, momentum=0.9, weight_decay=0.01)
    C.compare(C.run_static(prob, STEPS, groups=groups, **kw), C.run_neutral(prob, STEPS, groups=neutral, **kw), FP32)


def test_a_paramattr_regularizer_keeps_its_kind_under_a_decoupled_convention():
    """Paddle's rule: a parameter's own regularizer takes precedence over the optimizer's weight decay; an
    L2Decay there stays coupled L2 under Keras' convention (the optimizer's float decay is decoupled)."""
    paddle.disable_static()
    prob = C.problem(seed=23)
    ps = [paddle.create_parameter(list(p.shape), "float32", default_initializer=paddle.nn.initializer.Assign(p))
          for p in prob.init]
    ps[0].regularizer = paddle.regularizer.L2Decay(0.2)
    opt = RMSProp(parameters=ps, convention="keras", learning_rate=0.01, weight_decay=0.05)
    ref = [p.copy() for p in prob.init]
    neutral = rmsprop_ops.RMSProp([{"params": [ref[0]], "weight_decay": 0.0}, {"params": ref[1:]}],
                                  convention="keras", learning_rate=0.01, weight_decay=0.05)
    for t in range(STEPS):
        g = prob.grads([p.numpy() for p in ps], t)
        sum((p * paddle.to_tensor(x)).sum() for p, x in zip(ps, g)).backward()
        opt.step()
        opt.clear_grad()
        g[0] = g[0] + np.float32(0.2) * ref[0]  # the coupled L2 term, then Keras' rule without decay
        neutral.step(g)
    for p, r in zip(ps, ref):
        np.testing.assert_allclose(p.numpy(), r, rtol=0, atol=FP32)


@pytest.mark.parametrize("mode", ["dynamic", "static"])
@pytest.mark.parametrize("convention", ["torch", "tf1", "keras"])
def test_schedulers_drive_every_convention(convention, mode):
    """A Paddle LRScheduler and a ``rmsprop_ops.schedules`` schedule (wrapped in ScheduleLR, which the
    optimizer also does itself); with torch's lr outside the momentum buffer the whole buffer follows the
    new rate, inside (TF1, Keras) it keeps the old ones."""
    prob = C.problem(seed=24, steps=12)
    base = dict(convention=convention, momentum=0.9, weight_decay=0.01)
    run = C.run_dygraph if mode == "dynamic" else C.run_static
    step_decay = paddle.optimizer.lr.StepDecay(0.02, step_size=3, gamma=0.5)
    C.compare(run(prob, 12, sched=step_decay, **base),
              C.run_neutral(prob, 12, learning_rate=lambda s: 0.02 * 0.5 ** (s // 3), **base), FP32)
    cosine = schedules.LinearWarmup(schedules.CosineDecay(0.03, 10), 3)
    C.compare(run(prob, 12, sched=ScheduleLR(cosine), **base),
              C.run_neutral(prob, 12, learning_rate=cosine, **base), FP32)


def test_a_schedule_passed_as_the_learning_rate_becomes_the_optimizers_scheduler():
    layer = paddle.nn.Linear(3, 2)
    opt = RMSProp(schedules.ExponentialDecay(0.1, 2, 0.5), parameters=layer.parameters(), convention="keras")
    assert isinstance(opt.lr_scheduler, ScheduleLR) and opt.get_lr() == 0.1
    opt.lr_scheduler.step()
    opt.lr_scheduler.step()
    assert opt.get_lr() == pytest.approx(0.05)
    assert RMSProp(0.1, parameters=layer.parameters()).lr_scheduler is None


@pytest.mark.parametrize("mode", ["dynamic", "static"])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_float64_agrees_to_1e_12(convention, mode):
    """float64 parameters, hyper-parameters float32 holds exactly (the op's attributes are float32)."""
    prob = C.problem(seed=25, dtype="float64")
    kw = dict(convention=convention, learning_rate=2.0 ** -6, rho=0.875, epsilon=2.0 ** -20, momentum=0.5,
              centered=True, weight_decay=2.0 ** -5)
    run = C.run_dygraph(prob, STEPS, **kw) if mode == "dynamic" else C.run_static(prob, STEPS, **kw)
    C.compare(run, C.run_neutral(prob, STEPS, **kw), 1e-12)


def test_repr_names_the_convention_and_its_fields():
    layer = paddle.nn.Linear(3, 2)
    text = repr(RMSProp(parameters=layer.parameters(), convention="tf1", momentum=0.9, use_ema=True,
                        ema_momentum=0.9999, ema_schedule="tf1", weight_decay=1e-5))
    for part in ("convention='tf1'", "eps_in_sqrt=True", "initial_accumulator_value=1.0", "rho=0.9",
                 "epsilon=1e-10", "weight_decay=L2Decay(1e-05)",
                 "use_ema=True, ema_momentum=0.9999, ema_schedule='tf1'"):
        assert part in text, (part, text)
    text = repr(RMSProp(0.1, parameters=layer.parameters(), convention="keras", weight_decay=0.004,
                        lr_in_momentum=False, maximize=True))
    for part in ("convention='custom' (from 'keras')", "lr_in_momentum=False", "weight_decay=DecoupledDecay(0.004)",
                 "weight_decay_mode='decoupled'", "maximize=True"):
        assert part in text, (part, text)
    assert "eps_in_sqrt" not in repr(RMSProp(0.1, parameters=layer.parameters()))


def test_the_default_is_paddles_rule_and_signature():
    import inspect

    sig = inspect.signature(RMSProp).parameters
    assert sig["convention"].default == "paddle" and sig["rho"].default == 0.95
    layer = paddle.nn.Linear(3, 2)
    opt = RMSProp(0.1, parameters=layer.parameters())
    assert opt._rule.convention == "paddle" and opt._rule.op_attrs()["eps_in_sqrt"] is True
    assert re.search(r"convention='paddle'", repr(opt))
