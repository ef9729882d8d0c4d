"""rmsprop_ops.RMSProp: conventions, the seeds' examples, state, skipping, errors, schedules.

Framework references that cannot run here are transcribed from their sources as NumPy code:
timm ``timm/optim/rmsprop_tf.py`` (RMSpropTF.step), Paddle ``paddle/phi/kernels/impl/rmsprop_kernel_impl.h``
(UncenteredRmspropFunctor / CenteredRmspropFunctor; L2Decay adds ``coeff * param`` to the gradient),
MindSpore ``mindspore/python/mindspore/nn/optim/rmsprop.py`` (ms init='ones'; construct: decay_weight,
then scale_grad, then ApplyRMSProp / ApplyCenteredRMSProp) with ``optimizer.py`` ``_preprocess_weight_decay``
(the weight decay is multiplied by loss_scale up front).
"""

import math

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops import schedules

STEPS = 12
SHAPES = [(6,), (3, 2)]


def _problem(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    curv = [rng.uniform(0.2, 3.0, s).astype(dtype) for s in SHAPES]
    noise = [[(rng.standard_normal(s) * 0.5).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    return params, curv, noise


def _run(params, curv, noise, **kw):
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ps, **kw)
    for t in range(STEPS):
        opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])
    return ps, opt


def _run_ref(params, curv, noise, rule, state_init):
    ps = [p.copy() for p in params]
    states = [state_init(p) for p in ps]
    for t in range(STEPS):
        for i, (p, c, n) in enumerate(zip(ps, curv, noise[t])):
            ps[i] = rule(p, c * p + n, states[i])
    return ps


# ------------------------------------------------------------------------------ the seeds' examples
def test_keras_doc_example():
    var1 = np.array([10.0], np.float32)
    opt = rmsprop_ops.RMSProp([var1], convention="keras", learning_rate=0.1)
    assert opt.step([var1.copy()])
    assert round(float(var1[0]), 6) == 9.683772


def _d2l_rmsprop_2d(steps, eta=0.4, gamma=0.9):
    """The seed's d2l code (7.6, rmsprop_2d + train_2d), verbatim in plain Python floats."""
    x1, x2, s1, s2 = -5.0, -2.0, 0.0, 0.0
    for _ in range(steps):
        g1, g2, eps = 0.2 * x1, 4 * x2, 1e-6
        s1 = gamma * s1 + (1 - gamma) * g1 ** 2
        s2 = gamma * s2 + (1 - gamma) * g2 ** 2
        x1 -= eta / math.sqrt(s1 + eps) * g1
        x2 -= eta / math.sqrt(s2 + eps) * g2
    return x1, x2


def test_d2l_example():
    x = np.array([-5.0, -2.0])
    opt = rmsprop_ops.RMSProp([x], convention="d2l")
    for _ in range(20):
        opt.step([np.array([0.2 * x[0], 4.0 * x[1]])])
    assert f"epoch 20, x1 {x[0]:f}, x2 {x[1]:f}" == "epoch 20, x1 -0.010599, x2 0.000000"
    np.testing.assert_allclose(x, _d2l_rmsprop_2d(20), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------------ the conventions
def test_conventions_table():
    for name in ("paddle", "mindspore", "keras", "mxnet", "torch", "tf1"):
        c = rmsprop_ops.CONVENTIONS[name]
        assert c.name == name and c.source
        assert set(c.defaults) == {"learning_rate", "rho", "momentum", "epsilon"}
    c = rmsprop_ops.CONVENTIONS
    assert not c["torch"].eps_in_sqrt and not c["torch"].lr_in_momentum
    assert c["tf1"].initial_accumulator_value == c["mindspore"].initial_accumulator_value == 1.0
    assert c["keras"].weight_decay_mode == "decoupled" and c["paddle"].weight_decay_mode == "l2"
    assert c["paddle"].defaults["rho"] == 0.95 and c["mindspore"].defaults["epsilon"] == 1e-10
    with pytest.raises(TypeError):
        c["keras"] = None


def _timm_rmsprop_tf(lr, alpha, eps, wd, momentum, centered, decoupled=False):
    """timm/optim/rmsprop_tf.py RMSpropTF.step (lr_in_momentum=True), one tensor."""
    def rule(p, g, st):
        if wd:
            if decoupled:
                p = p * (1.0 - lr * wd)
            else:
                g = g + wd * p
        st["sq"] += (1.0 - alpha) * (g * g - st["sq"])
        if centered:
            st["ga"] += (1.0 - alpha) * (g - st["ga"])
            avg = np.sqrt(st["sq"] - st["ga"] * st["ga"] + eps)
        else:
            avg = np.sqrt(st["sq"] + eps)
        if momentum > 0:
            st["buf"] = momentum * st["buf"] + lr * g / avg
            return p - st["buf"]
        return p - lr * g / avg
    return rule, lambda p: {"sq": np.ones_like(p), "ga": np.zeros_like(p), "buf": np.zeros_like(p)}


@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9}, {"centered": True, "momentum": 0.5},
                                {"weight_decay": 0.1, "momentum": 0.9},
                                {"weight_decay": 0.1, "weight_decay_mode": "decoupled"}])
def test_tf1_matches_timm_rmsprop_tf(kw):
    params, curv, noise = _problem(21)
    got, _ = _run(params, curv, noise, convention="tf1", learning_rate=0.05, **kw)
    rule, init = _timm_rmsprop_tf(0.05, 0.9, 1e-10, kw.get("weight_decay", 0.0), kw.get("momentum", 0.0),
                                  kw.get("centered", False), kw.get("weight_decay_mode") == "decoupled")
    want = _run_ref(params, curv, noise, rule, init)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def _paddle_rule(lr, rho, eps, momentum, centered, l2):
    """rmsprop_kernel_impl.h (Uncentered/CenteredRmspropFunctor) after L2Decay's grad + coeff * param."""
    def rule(p, g, st):
        g = g + l2 * p
        st["ms"] = rho * st["ms"] + (1 - rho) * g * g
        if centered:
            st["mg"] = rho * st["mg"] + (1 - rho) * g
            st["mom"] = momentum * st["mom"] + lr * g / np.sqrt(st["ms"] - st["mg"] * st["mg"] + eps)
        else:
            st["mom"] = momentum * st["mom"] + lr * g / np.sqrt(st["ms"] + eps)
        return p - st["mom"]
    return rule, lambda p: {"ms": np.zeros_like(p), "mg": np.zeros_like(p), "mom": np.zeros_like(p)}


@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9, "weight_decay": 0.05}, {"centered": True, "momentum": 0.3}])
def test_paddle_convention_matches_paddle_kernel(kw):
    params, curv, noise = _problem(22)
    got, _ = _run(params, curv, noise, convention="paddle", learning_rate=0.01, **kw)
    rule, init = _paddle_rule(0.01, 0.95, 1e-6, kw.get("momentum", 0.0), kw.get("centered", False),
                              kw.get("weight_decay", 0.0))
    for g, w in zip(got, _run_ref(params, curv, noise, rule, init)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def _mindspore_rule(lr, decay, eps, momentum, centered, wd, loss_scale):
    """nn.RMSProp.construct: (g + wd * loss_scale * p) / loss_scale, then ApplyRMSProp / ApplyCenteredRMSProp."""
    def rule(p, g, st):
        g = (g + wd * loss_scale * p) * (1.0 / loss_scale)
        st["ms"] = decay * st["ms"] + (1 - decay) * g * g
        if centered:
            st["mg"] = decay * st["mg"] + (1 - decay) * g
            st["mom"] = momentum * st["mom"] + lr * g / np.sqrt(st["ms"] - st["mg"] * st["mg"] + eps)
        else:
            st["mom"] = momentum * st["mom"] + lr * g / np.sqrt(st["ms"] + eps)
        return p - st["mom"]
    return rule, lambda p: {"ms": np.ones_like(p), "mg": np.zeros_like(p), "mom": np.zeros_like(p)}


@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9, "weight_decay": 0.1, "loss_scale_factor": 4.0},
                                {"centered": True, "momentum": 0.5, "weight_decay": 0.02}])
def test_mindspore_convention_matches_mindspore_rule(kw):
    params, curv, noise = _problem(23)
    scale = kw.get("loss_scale_factor", 1.0)
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ps, convention="mindspore", **kw)
    for t in range(STEPS):
        opt.step([scale * (c * p + n) for p, c, n in zip(ps, curv, noise[t])])
    rule, init = _mindspore_rule(0.1, 0.9, 1e-10, kw.get("momentum", 0.0), kw.get("centered", False),
                                 kw.get("weight_decay", 0.0), scale)
    ref = [p.copy() for p in params]
    states = [init(p) for p in ref]
    for t in range(STEPS):
        for i, (c, n) in enumerate(zip(curv, noise[t])):
            ref[i] = rule(ref[i], scale * (c * ref[i] + n), states[i])
    for g, w in zip(ps, ref):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_every_convention_field_can_be_overridden():
    params, curv, noise = _problem(24)
    as_torch, _ = _run(params, curv, noise, convention="torch", momentum=0.9)
    overridden, _ = _run(params, curv, noise, convention="keras", learning_rate=0.01, rho=0.99, epsilon=1e-8,
                         momentum=0.9, eps_in_sqrt=False, lr_in_momentum=False)
    for a, b in zip(as_torch, overridden):
        np.testing.assert_array_equal(a, b)
    as_tf1, _ = _run(params, curv, noise, convention="tf1", weight_decay=0.1)
    overridden, _ = _run(params, curv, noise, convention="paddle", learning_rate=0.01, rho=0.9, epsilon=1e-10,
                         initial_accumulator_value=1.0, weight_decay=0.1)
    for a, b in zip(as_tf1, overridden):
        np.testing.assert_array_equal(a, b)


def test_eps_placement_matters():
    params, curv, noise = _problem(25)
    inside, _ = _run(params, curv, noise, convention="keras", epsilon=1e-2)
    outside, _ = _run(params, curv, noise, convention="keras", epsilon=1e-2, eps_in_sqrt=False)
    assert max(np.abs(a - b).max() for a, b in zip(inside, outside)) > 1e-4


# ------------------------------------------------------------------------------ groups, hot path
def test_groups_sharing_rho_momentum_eps_take_one_core_call(monkeypatch):
    import rmsprop_ops._optimizer.launches as mod

    calls = []
    real = mod.rmsprop_multi_
    monkeypatch.setattr(mod, "rmsprop_multi_", lambda *a, **k: (calls.append(k), real(*a, **k)))
    params, curv, noise = _problem(26)
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp([{"params": [ps[0]], "lr": 0.1, "weight_decay": 0.1},
                               {"params": [ps[1]], "lr_mult": 0.5}], learning_rate=0.01)
    opt.step([c * p + n for p, c, n in zip(ps, curv, noise[0])])
    assert len(calls) == 1 and calls[0]["lr"] == [0.1, 0.005] and calls[0]["weight_decay"] == [0.1, 0.0]
    calls.clear()
    opt = rmsprop_ops.RMSProp([{"params": [params[0].copy()], "momentum": 0.9}, {"params": [params[1].copy()]}])
    opt.step([np.ones(s) for s in SHAPES])
    assert len(calls) == 2


def test_groups_equal_separate_optimizers():
    params, curv, noise = _problem(27)
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp([{"params": [ps[0]], "learning_rate": 0.05, "momentum": 0.9},
                               {"params": [ps[1]], "centered": True, "weight_decay": 0.1}], convention="torch")
    sep = [p.copy() for p in params]
    o0 = rmsprop_ops.RMSProp([sep[0]], convention="torch", learning_rate=0.05, momentum=0.9)
    o1 = rmsprop_ops.RMSProp([sep[1]], convention="torch", centered=True, weight_decay=0.1)
    for t in range(STEPS):
        opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])
        o0.step([curv[0] * sep[0] + noise[t][0]])
        o1.step([curv[1] * sep[1] + noise[t][1]])
    for a, b in zip(ps, sep):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("lr", [lambda step: 0.1 / (1 + step), schedules.StepDecay(0.1, 3, 0.5)])
def test_learning_rate_callables_see_the_step(lr):
    x = np.array([1.0])
    opt = rmsprop_ops.RMSProp([x], convention="d2l", learning_rate=lr)
    seen = []
    for _ in range(6):
        seen.append(opt.learning_rates()[0])
        opt.step([np.array([1.0])])
    assert seen == [lr(s) for s in range(6)]
    zero_arg = rmsprop_ops.RMSProp([np.array([1.0])], learning_rate=lambda: 0.25)
    assert zero_arg.learning_rates() == [0.25]


# ------------------------------------------------------------------------------ skipping, state
def test_skip_nonfinite_skips_counts_and_leaves_everything_untouched():
    params, curv, noise = _problem(28, np.float32)
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ps, momentum=0.9, centered=True, skip_nonfinite=True, use_ema=True)
    opt.step([c * p + n for p, c, n in zip(ps, curv, noise[0])])
    before = [p.copy() for p in ps], opt.state_dict()
    for bad in (np.inf, -np.inf, np.nan):
        g = [c * p + n for p, c, n in zip(ps, curv, noise[1])]
        g[1][1, 0] = bad
        assert opt.step(g) is False
    assert opt.skipped_steps == 3 and opt.calls == 1
    for a, b in zip(ps, before[0]):
        np.testing.assert_array_equal(a, b)
    after = opt.state_dict()
    assert after["skipped_steps"] == 3
    for k, v in before[1].items():
        if k != "skipped_steps":
            np.testing.assert_array_equal(after[k], v)
    assert opt.step([c * p + n for p, c, n in zip(ps, curv, noise[1])]) is True


@pytest.mark.parametrize("kw", [{"momentum": 0.9, "centered": True},
                                {"use_ema": True, "gradient_accumulation_steps": 3, "momentum": 0.5,
                                 "learning_rate": schedules.CosineDecay(0.01, 10)},
                                {"convention": "mxnet", "centered": True, "weight_decay": 0.1}])
def test_state_dict_round_trips_through_np_savez_exactly(tmp_path, kw):
    params, curv, noise = _problem(29, np.float32)
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ps, **kw)
    for t in range(5):
        opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])
    np.savez(tmp_path / "ckpt.npz", **opt.state_dict())
    saved_params = [p.copy() for p in ps]
    for t in range(5, STEPS):
        opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])

    ps2 = saved_params
    opt2 = rmsprop_ops.RMSProp(ps2, **kw)
    with np.load(tmp_path / "ckpt.npz") as f:
        opt2.load_state_dict(dict(f))
    for t in range(5, STEPS):
        opt2.step([c * p + n for p, c, n in zip(ps2, curv, noise[t])])
    for a, b in zip(ps, ps2):
        np.testing.assert_array_equal(a, b)
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(np.asarray(opt2.state_dict()[k]), np.asarray(v))


def test_load_state_dict_rejects_mismatches_untouched():
    ps = [np.ones(3, np.float32)]
    opt = rmsprop_ops.RMSProp(ps, momentum=0.9)
    opt.step([np.ones(3, np.float32)])
    good = opt.state_dict()
    bad = dict(good, **{"moment.0": np.zeros(4, np.float32)})
    with pytest.raises(ValueError, match="moment.0"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="missing"):
        opt.load_state_dict({k: v for k, v in good.items() if k != "mean_square.0"})
    bad = dict(good, iterations=-1)
    with pytest.raises(ValueError, match="iterations"):
        opt.load_state_dict(bad)
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v), np.asarray(good[k]))


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kw,exc,match", [
    ({"convention": "caffe"}, ValueError, "convention"),
    ({"convention": 3}, TypeError, "convention"),
    ({"rho": 1.5}, ValueError, "rho"),
    ({"epsilon": -1.0}, ValueError, "epsilon"),
    ({"momentum": "0.9"}, TypeError, "momentum"),
    ({"learning_rate": -0.1}, ValueError, "learning_rate"),
    ({"convention": "paddle"}, ValueError, "learning_rate"),
    ({"clipnorm": 1.0, "clipvalue": 1.0}, ValueError, "clipnorm"),
    ({"ema_momentum": 2.0, "use_ema": True}, ValueError, "ema_momentum"),
    ({"gradient_accumulation_steps": 1}, ValueError, "gradient_accumulation_steps"),
    ({"weight_decay_mode": "l3"}, ValueError, "weight_decay_mode"),
    ({"initial_accumulator_value": -1.0}, ValueError, "initial_accumulator_value"),
])
def test_bad_constructor_arguments(kw, exc, match):
    with pytest.raises(exc, match=match):
        rmsprop_ops.RMSProp([np.ones(2, np.float32)], **kw)


def test_bad_params():
    with pytest.raises(TypeError, match="params"):
        rmsprop_ops.RMSProp(np.ones(2))
    with pytest.raises(ValueError, match="params"):
        rmsprop_ops.RMSProp([])
    x = np.ones(2)
    with pytest.raises(ValueError, match="twice"):
        rmsprop_ops.RMSProp([x, x])
    with pytest.raises(ValueError, match="unknown group keys"):
        rmsprop_ops.RMSProp([{"params": [x], "betas": 1}])
    with pytest.raises(TypeError, match="params"):
        rmsprop_ops.RMSProp(["not an array"])


@pytest.mark.parametrize("kw", [{}, {"clipnorm": 1.0}, {"gradient_accumulation_steps": 2, "use_ema": True}])
def test_bad_grads_raise_and_leave_everything_untouched(kw):
    ps = [np.ones(3, np.float32), np.ones(2, np.float32)]
    opt = rmsprop_ops.RMSProp(ps, momentum=0.9, **kw)
    before = opt.state_dict()
    for grads, exc in (([np.ones(3, np.float32)], ValueError),
                       ([np.ones(3, np.float32), np.ones(4, np.float32)], ValueError),
                       ([np.ones(3, np.float32), np.ones(2, np.float64)], (TypeError, ValueError)),
                       (np.ones(3, np.float32), TypeError)):
        with pytest.raises(exc):
            opt.step(grads)
    assert all((p == 1).all() for p in ps)
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v), np.asarray(before[k]))


# ------------------------------------------------------------------------------ schedules
def test_schedules():
    assert schedules.Constant(0.1)(5) == 0.1
    assert [schedules.StepDecay(1.0, 2, 0.5)(s) for s in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    pw = schedules.PiecewiseConstant([2, 4], [3.0, 2.0, 1.0])
    assert [pw(s) for s in range(6)] == [3.0, 3.0, 3.0, 2.0, 2.0, 1.0]
    cos = schedules.CosineDecay(1.0, 4, alpha=0.2)
    assert cos(0) == 1.0 and cos(4) == pytest.approx(0.2) and cos(100) == pytest.approx(0.2)
    warm = schedules.LinearWarmup(schedules.StepDecay(1.0, 2, 0.5), warmup_steps=4)
    assert [warm(s) for s in range(8)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.5]
    assert schedules.LinearWarmup(0.5, 2, start=0.1)(1) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="values"):
        schedules.PiecewiseConstant([1], [1.0])
    with pytest.raises(TypeError, match="step"):
        schedules.Constant(0.1)(1.5)


# ------------------------------------------------------------------------------ the demo
def _load_demo():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "d2l_conventions.py"
    spec = importlib.util.spec_from_file_location("d2l_conventions", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_demo_trajectories():
    demo = _load_demo()
    np.testing.assert_allclose(demo.trajectory("d2l")[-1], _d2l_rmsprop_2d(20), rtol=1e-12, atol=1e-15)
    tf1 = demo.trajectory("tf1")
    assert abs(tf1[-1, 0]) > 10 * abs(demo.trajectory("d2l")[-1, 0])  # ms at ones: x1 crawls


def test_demo_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "demo.png"
    _load_demo().main(["--out", str(out), "--steps", "5"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_float16_params_keep_float32_state_and_track_float32():
    params, curv, noise = _problem(30, np.float32)
    p16 = [p.astype(np.float16) for p in params]
    p32 = [p.astype(np.float16).astype(np.float32) for p in params]
    o16 = rmsprop_ops.RMSProp(p16, learning_rate=0.01, momentum=0.9)
    o32 = rmsprop_ops.RMSProp(p32, learning_rate=0.01, momentum=0.9)
    assert all(v.dtype == np.float32 for k, v in o16.state_dict().items() if "." in k)
    for t in range(STEPS):
        o16.step([(c * p.astype(np.float32) + n).astype(np.float16) for p, c, n in zip(p16, curv, noise[t])])
        o32.step([(c * p + n).astype(np.float16).astype(np.float32) for p, c, n in zip(p32, curv, noise[t])])
    for a, b in zip(p16, p32):
        # float16 weights are rounded every step (no master copy): 12 roundings of half an ulp at most
        np.testing.assert_allclose(a.astype(np.float32), b, rtol=12 * 2.0 ** -11, atol=1e-3)


@pytest.mark.parametrize("param,exc,prefix", [
    (np.ones(3, np.int32), TypeError, "params[0]: expected a floating-point array"),
    (np.ones(6, np.float32)[::2], ValueError, "params[0]: expected a C-contiguous array"),
    (np.frombuffer(np.ones(3, np.float32).tobytes(), np.float32), ValueError, "params[0]: expected a writable"),
])
def test_bad_params_fail_at_construction(param, exc, prefix):
    with pytest.raises(exc) as info:
        rmsprop_ops.RMSProp([param])
    assert str(info.value).startswith(prefix), str(info.value)
