"""Conventions resolved into rules, the frameworks' own keyword names, repr, the TF 2.0-2.10 Keras rule,
the EMA schedules and the swap protocol, the shared grouping records.

References that cannot run here are transcribed from their sources as NumPy code:
TF 2.0-2.10 ``keras/optimizers/optimizer_v2/rmsprop.py`` (``RMSprop._resource_apply_dense``) with the
``ApplyRMSProp`` / ``ApplyCenteredRMSProp`` kernels of ``tensorflow/core/kernels/training_ops.cc``;
``tf.compat.v1.train.ExponentialMovingAverage`` (``apply``: ``decay = min(decay, (1 + n) / (10 + n))``,
``assign_moving_average``: ``avg -= (1 - decay) * (avg - value)``); PaddleClas ``ppcls/utils/ema.py``.
"""

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops import schedules
from rmsprop_ops._conventions import RULE_FIELDS, Rule, resolve
from rmsprop_ops._toolkit import ema as ema_rules
from rmsprop_ops._toolkit.grouping import Launch, plan_launches, split_groups

from cases import quadratic_problem

STEPS = 12
SHAPES = [(6,), (3, 4)]


def _problem(seed, dtype=np.float64):
    params, curv, noise = quadratic_problem(seed, SHAPES, STEPS)
    return ([p.astype(dtype) for p in params], [c.astype(dtype) for c in curv],
            [[n.astype(dtype) for n in step] for step in noise])


def _train(params, curv, noise, **kw):
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ps, **kw)
    for t in range(STEPS):
        opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])
    return ps, opt


# ------------------------------------------------------------------------------ resolve
def test_resolve_gives_every_rule_field_and_explicit_values_win():
    rule = resolve("mindspore", decay=0.8, momentum=0.5)
    assert isinstance(rule, Rule) and rule.convention == "mindspore"
    assert {f: getattr(rule, f) for f in ("rho", "momentum", "epsilon", "initial_accumulator_value")} == {
        "rho": 0.8, "momentum": 0.5, "epsilon": 1e-10, "initial_accumulator_value": 1.0}
    assert set(RULE_FIELDS) <= set(vars(rule))
    with pytest.raises(Exception):
        rule.rho = 0.5  # frozen
    # explicit values keep their values whatever the convention
    for name in ("keras", "torch", "tf1", "paddle", "mindspore", "mxnet", "d2l", "keras_legacy"):
        r = resolve(name, learning_rate=0.3, rho=0.7, epsilon=1e-3, eps_in_sqrt=False, initial_accumulator_value=0.5)
        assert (r.learning_rate, r.rho, r.epsilon, r.eps_in_sqrt, r.initial_accumulator_value) == (
            0.3, 0.7, 1e-3, False, 0.5)
        assert not r.eps_in_sqrt_for(0.0) and not r.eps_in_sqrt_for(0.9)


def test_resolve_refuses_names_and_values_by_name():
    with pytest.raises(TypeError, match="'alpha' is rho in torch, tf1.*pass rho="):
        resolve("keras", alpha=0.9)
    with pytest.raises(TypeError, match="given twice"):
        resolve("torch", rho=0.9, alpha=0.8)
    with pytest.raises(ValueError, match="^alpha: "):
        resolve("torch", alpha=1.5)
    with pytest.raises(ValueError, match="^weight_decay_mode: "):
        resolve("keras", weight_decay_mode="l3")


# ------------------------------------------------------------------------------ framework names
ALIASES = [
    ("torch", {"lr": 0.02, "alpha": 0.9, "eps": 1e-6}, {"learning_rate": 0.02, "rho": 0.9, "epsilon": 1e-6}),
    ("tf1", {"decay": 0.8, "lr": 0.02}, {"rho": 0.8, "learning_rate": 0.02}),
    ("tf1", {"alpha": 0.8, "eps": 1e-3}, {"rho": 0.8, "epsilon": 1e-3}),
    ("mindspore", {"decay": 0.8, "loss_scale": 4.0}, {"rho": 0.8, "loss_scale_factor": 4.0}),
    ("mxnet", {"wd": 0.1, "gamma1": 0.8, "gamma2": 0.5, "centered": True},
     {"weight_decay": 0.1, "rho": 0.8, "momentum": 0.5, "centered": True}),
    ("d2l", {"eta": 0.1, "gamma": 0.8}, {"learning_rate": 0.1, "rho": 0.8}),
    ("keras_legacy", {"lr": 0.01}, {"learning_rate": 0.01}),
]


@pytest.mark.parametrize("convention,theirs,ours", ALIASES, ids=[f"{c}-{'-'.join(t)}" for c, t, _ in ALIASES])
def test_framework_names_equal_the_canonical_ones(convention, theirs, ours):
    params, curv, noise = _problem(1)
    a, _ = _train(params, curv, noise, convention=convention, **theirs)
    b, _ = _train(params, curv, noise, convention=convention, **ours)
    for x, y, p0 in zip(a, b, params):
        assert np.abs(x - p0).max() > 1e-6
        np.testing.assert_array_equal(x, y)


WRONG_NAMES = [
    ("keras", {"lr": 0.1}, "'lr'.*pass learning_rate="),
    ("keras", {"alpha": 0.9}, "'alpha'.*pass rho="),
    ("paddle", {"decay": 0.9, "learning_rate": 0.1}, "'decay'.*pass rho="),
    ("torch", {"decay": 0.9}, "'decay'.*pass rho="),
    ("torch", {"alpha": 0.9, "rho": 0.8}, "rho given twice"),
    ("torch", {"lr": 0.1, "learning_rate": 0.1}, "learning_rate given twice"),
    ("keras", {"betas": (0.9, 0.99)}, "unexpected keyword 'betas'; expected one of"),
]


@pytest.mark.parametrize("convention,kw,match", WRONG_NAMES, ids=[f"{c}-{'-'.join(k)}" for c, k, _ in WRONG_NAMES])
def test_other_frameworks_names_say_which_name_to_use(convention, kw, match):
    with pytest.raises(TypeError, match=match):
        rmsprop_ops.RMSProp([np.ones(2, np.float32)], convention=convention, **kw)


def test_group_keys_take_the_conventions_names():
    a, b = np.ones(2, np.float32), np.ones(2, np.float32)
    rmsprop_ops.RMSProp([{"params": [a], "alpha": 0.5, "lr": 0.1}], convention="torch").step([np.ones(2, np.float32)])
    rmsprop_ops.RMSProp([{"params": [b], "rho": 0.5, "learning_rate": 0.1}], convention="torch").step(
        [np.ones(2, np.float32)])
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"params\[0\]: unknown group keys \['alpha'\].*pass rho="):
        rmsprop_ops.RMSProp([{"params": [a], "alpha": 0.5}], convention="keras")


def test_repr_shows_rule_options_and_layout():
    a, b = np.ones(2, np.float32), np.ones(3, np.float32)
    opt = rmsprop_ops.RMSProp([{"params": [a]}, {"params": [b], "rho": 0.5}], convention="torch", lr=0.05,
                              momentum=0.9, clipnorm=1.0, use_ema=True, ema_schedule="tf1")
    text = repr(opt)
    for part in ("RMSProp(convention='torch'", "learning_rate=0.05", "rho=0.99", "momentum=0.9", "epsilon=1e-08",
                 "eps_in_sqrt=False", "lr_in_momentum=False", "clipnorm=1.0", "ema_schedule='tf1'",
                 "params=2 in 2 groups", "2 fused launches"):
        assert part in text, (part, text)
    assert "object at 0x" not in text
    sched = repr(rmsprop_ops.RMSProp([np.ones(1)], learning_rate=schedules.StepDecay(0.1, 3)))
    assert "learning_rate=StepDecay(" in sched and "1 fused launch'" in sched


# ------------------------------------------------------------------------------ TF 2.0-2.10 Keras
def _legacy_keras(lr, rho, momentum, eps, centered):
    """optimizer_v2/rmsprop.py: momentum > 0 -> Apply(Centered)RMSProp kernels (eps inside the root,
    lr in the momentum buffer); else var - lr * g / (sqrt(rms [- mg^2]) + eps)."""
    def rule(p, g, st):
        if momentum > 0:
            st["ms"] = st["ms"] + (g * g - st["ms"]) * (1 - rho)
            denom = st["ms"] + eps
            if centered:
                st["mg"] = st["mg"] + (g - st["mg"]) * (1 - rho)
                denom = st["ms"] - st["mg"] ** 2 + eps
            st["mom"] = st["mom"] * momentum + g * lr / np.sqrt(denom)
            return p - st["mom"]
        st["ms"] = rho * st["ms"] + (1 - rho) * g * g
        denom = st["ms"]
        if centered:
            st["mg"] = rho * st["mg"] + (1 - rho) * g
            denom = st["ms"] - st["mg"] ** 2
        return p - lr * g / (np.sqrt(denom) + eps)
    return rule


@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9}, {"centered": True}, {"centered": True, "momentum": 0.5},
                                {"epsilon": 1e-2}, {"epsilon": 1e-2, "momentum": 0.5}])
def test_keras_legacy_matches_tf_2_0_to_2_10(kw):
    params, curv, noise = _problem(2)
    got, _ = _train(params, curv, noise, convention="keras_legacy", learning_rate=0.01, **kw)
    rule = _legacy_keras(0.01, 0.9, kw.get("momentum", 0.0), kw.get("epsilon", 1e-7), kw.get("centered", False))
    ref = [p.copy() for p in params]
    states = [{"ms": np.zeros_like(p), "mg": np.zeros_like(p), "mom": np.zeros_like(p)} for p in ref]
    for t in range(STEPS):
        for i in range(len(ref)):
            ref[i] = rule(ref[i], curv[i] * ref[i] + noise[t][i], states[i])
    for g, w in zip(got, ref):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_keras_legacy_places_eps_per_group_by_momentum():
    params, curv, noise = _problem(3)
    groups = lambda ps: [{"params": [ps[0]]}, {"params": [ps[1]], "momentum": 0.9}]  # noqa: E731
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(groups(ps), convention="keras_legacy", epsilon=1e-2)
    assert [plan.key.eps_in_sqrt for plan in opt._plans] == [False, True]
    keras_ps = [p.copy() for p in params]
    kopt = rmsprop_ops.RMSProp(groups(keras_ps), convention="keras", epsilon=1e-2, weight_decay_mode="l2")
    assert [plan.key.eps_in_sqrt for plan in kopt._plans] == [True, True]
    for t in range(STEPS):
        opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])
        kopt.step([c * p + n for p, c, n in zip(keras_ps, curv, noise[t])])
    assert np.abs(ps[0] - keras_ps[0]).max() > 1e-4           # without momentum: eps outside vs inside
    np.testing.assert_allclose(ps[1], keras_ps[1], rtol=1e-12)  # with momentum: the same kernel rule


# ------------------------------------------------------------------------------ EMA
def _tf1_ema(decay):
    """tf.compat.v1.train.ExponentialMovingAverage(decay, num_updates=global_step), applied after each
    optimizer step (global_step already incremented), shadows starting at the initial weights."""
    def update(shadow, var, n):
        d = min(decay, (1.0 + n) / (10.0 + n))
        return shadow - (1.0 - d) * (shadow - var)
    return update


def _paddleclas_ema(decay):
    """ppcls/utils/ema.py ExponentialMovingAverage.update: decay * e + (1 - decay) * m, from a model copy."""
    return lambda shadow, var, n: decay * shadow + (1.0 - decay) * var


@pytest.mark.parametrize("schedule,ref", [("tf1", _tf1_ema), ("constant", _paddleclas_ema)])
@pytest.mark.parametrize("decay", [0.9, 0.999])
def test_ema_schedules_match_their_sources(schedule, ref, decay):
    params, curv, noise = _problem(4)
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ps, convention="tf1", learning_rate=0.05, momentum=0.9, use_ema=True,
                              ema_momentum=decay, ema_schedule=schedule)
    shadows = [p.copy() for p in params]
    update = ref(decay)
    for t in range(STEPS):
        opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])
        shadows = [update(s, p, t + 1) for s, p in zip(shadows, ps)]
    with opt.swap_ema_weights():
        for p, s in zip(ps, shadows):
            np.testing.assert_allclose(p, s, rtol=1e-13, atol=1e-15)


def test_ema_decay_schedules():
    keras, tf1, const = (ema_rules.make_ema(0.99, s) for s in ("keras", "tf1", "constant"))
    assert [ema_rules.decay_at(keras, i) for i in (0, 1, 5)] == [0.0, 0.99, 0.99]
    assert [ema_rules.decay_at(tf1, i) for i in (0, 1, 10 ** 6)] == [2 / 11, 3 / 12, 0.99]
    assert [ema_rules.decay_at(const, i) for i in (0, 7)] == [0.99, 0.99]
    freq = ema_rules.make_ema(0.5, overwrite_frequency=np.int64(3))
    assert [ema_rules.should_overwrite(freq, i) for i in range(6)] == [False, False, True, False, False, True]
    for bad, exc in ((dict(decay=1.5), ValueError), (dict(decay=0.9, schedule="adam"), ValueError),
                     (dict(decay=0.9, overwrite_frequency=0), ValueError), (dict(decay="0.9"), TypeError)):
        with pytest.raises(exc):
            ema_rules.make_ema(**bad)


def test_swap_protocol():
    s = ema_rules.Swap()
    ema_rules.check_not_swapped(s)
    s = ema_rules.begin_swap(s)
    with pytest.raises(RuntimeError, match="already swapped"):
        ema_rules.begin_swap(s)
    with pytest.raises(RuntimeError, match="step"):
        ema_rules.check_not_swapped(s)
    assert not ema_rules.end_swap(s).swapped
    with pytest.raises(RuntimeError, match="not swapped"):
        ema_rules.end_swap(ema_rules.Swap())


def test_swap_ema_weights_exchanges_bitwise_and_refuses_training_inside():
    params, curv, noise = _problem(5, np.float32)
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ps, learning_rate=0.05, use_ema=True, ema_momentum=0.9)
    for t in range(4):
        opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])
    trained, state = [p.copy() for p in ps], opt.state_dict()
    with opt.swap_ema_weights():
        for i, p in enumerate(ps):
            np.testing.assert_array_equal(p, state[f"ema.{i}"])
        for k, v in opt.state_dict().items():  # a checkpoint taken while swapped is the same
            np.testing.assert_array_equal(np.asarray(v), np.asarray(state[k]))
        with pytest.raises(RuntimeError, match="step"):
            opt.step([c * p + n for p, c, n in zip(ps, curv, noise[4])])
        for name, call in (("finalize_variable_values", opt.finalize_variable_values),
                           ("load_state_dict", lambda: opt.load_state_dict(state))):
            with pytest.raises(RuntimeError, match=name):
                call()
        with pytest.raises(RuntimeError, match="already swapped"):
            with opt.swap_ema_weights():
                pass
    for p, t in zip(ps, trained):
        np.testing.assert_array_equal(p, t)
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v), np.asarray(state[k]))
    with pytest.raises(KeyError):  # an error inside the block still swaps back
        with opt.swap_ema_weights():
            raise KeyError("evaluation failed")
    for p, t in zip(ps, trained):
        np.testing.assert_array_equal(p, t)
    assert opt.step([c * p + n for p, c, n in zip(ps, curv, noise[4])])
    with pytest.raises(ValueError, match="use_ema"):
        with rmsprop_ops.RMSProp([np.ones(2)]).swap_ema_weights():
            pass


# ------------------------------------------------------------------------------ grouping records
def test_split_groups_names_members_and_refuses_bad_specs():
    a, b, c = object(), object(), object()
    groups, members = split_groups([{"params": [a, b], "lr": 0.1}, {"params": [c]}], accepted={"learning_rate"},
                                   canonical=lambda k: "learning_rate" if k == "lr" else k)
    assert [g.members for g in groups] == [(0, 1), (2,)] and dict(groups[0].options) == {"learning_rate": 0.1}
    assert [m.name for m in members] == ["params[0][0]", "params[0][1]", "params[1][0]"]
    assert [m.param for m in members] == [a, b, c]
    _, single = split_groups([a, b], accepted=())
    assert [m.name for m in single] == ["params[0]", "params[1]"]
    for spec, exc in (([], ValueError), ({"params": [a]}, TypeError), ([{"params": [a]}, a], TypeError),
                      ([{"params": [a], "rho": 1}], ValueError), ([{"params": []}], ValueError),
                      (np.ones(3), TypeError)):
        with pytest.raises(exc):
            split_groups(spec, accepted={"learning_rate"})


def test_plan_launches_is_stable():
    keys = ["x", "y", "x", "z", "y", "x"]
    plan = plan_launches(keys)
    assert plan == (Launch("x", (0, 2, 5)), Launch("y", (1, 4)), Launch("z", (3,)))
    assert plan_launches(list(keys)) == plan and plan_launches(["a", "a"])[0].covers(2)


def test_the_package_root_imports_leaf_modules_lazily():
    import subprocess
    import sys

    code = ("import sys, rmsprop_ops; lazy = ['rmsprop_ops.mxnet_compat', 'rmsprop_ops.recipes', "
            "'rmsprop_ops.translate']; print([m for m in lazy if m in sys.modules]); "
            "print(rmsprop_ops.mxnet_compat.RMSProp.__name__, len(rmsprop_ops.recipes.RECIPES) > 0, "
            "rmsprop_ops.translate.RMSPropState.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "RMSProp True RMSPropState"
