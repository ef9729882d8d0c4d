"""rmsprop_ops.RMSProp(convention="keras") against Keras 3's RMSprop (torch backend), every Keras option."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import rmsprop_ops  # noqa: E402
from rmsprop_ops import schedules  # noqa: E402

if keras.backend.backend() != "torch":
    pytest.skip("these comparisons run Keras on its torch backend", allow_module_level=True)

import torch  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

STEPS = 12
SHAPES = [(6,), (2, 4), (1,)]


def _problem(seed):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    curv = [rng.uniform(0.1, 3.0, s).astype(np.float32) for s in SHAPES]
    noise = [[rng.standard_normal(s).astype(np.float32) * 0.5 for s in SHAPES] for _ in range(STEPS)]
    return params, curv, noise


def _grads(ps, curv, noise_t, scale=1.0):
    return [(scale * (c * np.asarray(p) + n)).astype(np.float32) for p, c, n in zip(ps, curv, noise_t)]


def _run_ours(params, curv, noise, scale=1.0, finalize=False, **kw):
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ps, convention="keras", **kw)
    for t in range(STEPS):
        opt.step(_grads(ps, curv, noise[t], scale))
    if finalize:
        opt.finalize_variable_values()
    return ps


def _run_keras(params, curv, noise, scale=1.0, finalize=False, **kw):
    vs = [keras.Variable(p) for p in params]
    opt = keras.optimizers.RMSprop(**kw)
    for t in range(STEPS):
        gs = _grads([np.asarray(v.numpy()) for v in vs], curv, noise[t], scale)
        opt.apply([torch.from_numpy(g) for g in gs], vs)
    if finalize:
        opt.finalize_variable_values(vs)
    return [np.asarray(v.numpy()) for v in vs]


CASES = [
    ("defaults", {}),
    ("lr_rho_eps", {"learning_rate": 0.05, "rho": 0.8, "epsilon": 1e-3}),
    ("momentum", {"learning_rate": 0.01, "momentum": 0.9}),
    ("centered", {"learning_rate": 0.01, "centered": True}),
    ("centered_momentum", {"learning_rate": 0.01, "centered": True, "momentum": 0.7}),
    ("weight_decay", {"learning_rate": 0.02, "weight_decay": 0.5}),
    ("clipnorm", {"learning_rate": 0.01, "clipnorm": 0.5}),
    ("clipvalue", {"learning_rate": 0.01, "clipvalue": 0.3}),
    ("global_clipnorm", {"learning_rate": 0.01, "global_clipnorm": 0.7}),
    ("use_ema", {"learning_rate": 0.05, "use_ema": True, "ema_momentum": 0.8}),
    ("ema_overwrite", {"learning_rate": 0.05, "use_ema": True, "ema_momentum": 0.5, "ema_overwrite_frequency": 3}),
    ("loss_scale_factor", {"learning_rate": 0.01, "loss_scale_factor": 128.0}),
    ("accumulation", {"learning_rate": 0.05, "gradient_accumulation_steps": 3, "momentum": 0.5}),
    ("accumulation_ema_clip", {"learning_rate": 0.05, "gradient_accumulation_steps": 2, "use_ema": True,
                               "ema_momentum": 0.9, "ema_overwrite_frequency": 2, "global_clipnorm": 1.0}),
    ("accumulation_wd_centered", {"learning_rate": 0.05, "gradient_accumulation_steps": 3, "weight_decay": 0.3,
                                  "centered": True, "clipvalue": 0.5, "loss_scale_factor": 4.0}),
    ("everything", {"learning_rate": 0.03, "momentum": 0.5, "centered": True, "weight_decay": 0.1,
                    "clipnorm": 1.0, "loss_scale_factor": 8.0, "use_ema": True, "ema_momentum": 0.7}),
]


@pytest.mark.parametrize("name,kw", CASES, ids=[c[0] for c in CASES])
def test_matches_keras(name, kw):
    params, curv, noise = _problem(5)
    scale = kw.get("loss_scale_factor", 1.0)
    got = _run_ours(params, curv, noise, scale=scale, **kw)
    want = _run_keras(params, curv, noise, scale=scale, **kw)
    for g, w, p0 in zip(got, want, params):
        assert np.abs(g - p0).max() > 1e-3
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("overwrite", [None, 5])
def test_finalize_variable_values_matches_keras(overwrite):
    params, curv, noise = _problem(6)
    kw = {"learning_rate": 0.05, "use_ema": True, "ema_momentum": 0.9, "ema_overwrite_frequency": overwrite}
    got = _run_ours(params, curv, noise, finalize=True, **kw)
    want = _run_keras(params, curv, noise, finalize=True, **kw)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


SCHEDULES = [
    ("exponential", lambda: schedules.ExponentialDecay(0.05, 4, 0.5),
     lambda: keras.optimizers.schedules.ExponentialDecay(0.05, 4, 0.5)),
    ("exponential_staircase", lambda: schedules.ExponentialDecay(0.05, 4, 0.5, staircase=True),
     lambda: keras.optimizers.schedules.ExponentialDecay(0.05, 4, 0.5, staircase=True)),
    ("cosine", lambda: schedules.CosineDecay(0.05, 10, alpha=0.1),
     lambda: keras.optimizers.schedules.CosineDecay(0.05, 10, alpha=0.1)),
    ("piecewise", lambda: schedules.PiecewiseConstant([3, 7], [0.05, 0.02, 0.005]),
     lambda: keras.optimizers.schedules.PiecewiseConstantDecay([3, 7], [0.05, 0.02, 0.005])),
    ("warmup_cosine", lambda: schedules.LinearWarmup(schedules.CosineDecay(0.05, 8), warmup_steps=4, start=0.01),
     lambda: keras.optimizers.schedules.CosineDecay(0.01, 8, warmup_target=0.05, warmup_steps=4)),
]


@pytest.mark.parametrize("name,ours,theirs", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedules_match_keras(name, ours, theirs):
    for step in range(20):
        # Keras evaluates schedules in float32 (a few ops of half an ulp, 6e-8, each); ours in float64.
        assert ours()(step) == pytest.approx(float(theirs()(step)), rel=4e-6, abs=1e-9)
    params, curv, noise = _problem(7)
    # decoupled weight decay uses the scheduled rate of the step, as in Keras
    got = _run_ours(params, curv, noise, learning_rate=ours(), momentum=0.5, weight_decay=0.2)
    want = _run_keras(params, curv, noise, learning_rate=theirs(), momentum=0.5, weight_decay=0.2)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_schedule_with_accumulation_sees_every_call_like_keras():
    params, curv, noise = _problem(8)
    kw = {"gradient_accumulation_steps": 2}
    got = _run_ours(params, curv, noise, learning_rate=schedules.ExponentialDecay(0.05, 2, 0.5), **kw)
    want = _run_keras(params, curv, noise, learning_rate=keras.optimizers.schedules.ExponentialDecay(0.05, 2, 0.5),
                      **kw)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_keras_doc_example():
    var1 = np.array([10.0], np.float32)
    opt = rmsprop_ops.RMSProp([var1], learning_rate=0.1)
    opt.step([var1.copy()])
    assert round(float(var1[0]), 6) == 9.683772
    kv = keras.Variable(10.0)
    keras.optimizers.RMSprop(learning_rate=0.1).apply([torch.tensor(10.0)], [kv])  # d(kv^2 / 2) = kv
    assert float(var1[0]) == pytest.approx(float(kv.numpy()), rel=1e-7)


# ------------------------------------------------------------------------------ None gradients
def _none_pattern(t, k):
    """Which (step, variable) pairs get no gradient: each variable misses every third step, staggered."""
    return (t + k) % 3 == 0


NONE_CASES = [
    ("defaults", {}),
    ("momentum_centered", {"learning_rate": 0.01, "momentum": 0.9, "centered": True}),
    ("weight_decay", {"learning_rate": 0.02, "weight_decay": 0.5, "momentum": 0.5}),
    ("global_clipnorm", {"learning_rate": 0.01, "global_clipnorm": 0.7}),
    ("clipnorm_loss_scale", {"learning_rate": 0.01, "clipnorm": 0.5, "loss_scale_factor": 16.0}),
    ("accumulation_ema", {"learning_rate": 0.05, "gradient_accumulation_steps": 2, "use_ema": True,
                          "ema_momentum": 0.8, "momentum": 0.5}),
    ("ema_overwrite", {"learning_rate": 0.05, "use_ema": True, "ema_momentum": 0.5, "ema_overwrite_frequency": 4}),
]


@pytest.mark.filterwarnings("ignore:Gradients do not exist")
@pytest.mark.parametrize("name,kw", NONE_CASES, ids=[c[0] for c in NONE_CASES])
def test_none_gradients_skip_their_params_like_keras(name, kw):
    """Keras 3 (BaseOptimizer.apply -> _filter_empty_gradients): a None gradient leaves its variable and
    its slots alone, keeps it out of clipping and weight decay, while EMA and the counter still move."""
    params, curv, noise = _problem(9)
    scale = kw.get("loss_scale_factor", 1.0)

    def grads_at(ps, t):
        gs = _grads(ps, curv, noise[t], scale)
        return [None if _none_pattern(t, k) else g for k, g in enumerate(gs)]

    ours = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ours, convention="keras", **kw)
    vs = [keras.Variable(p) for p in params]
    ref = keras.optimizers.RMSprop(**kw)
    for t in range(STEPS):
        opt.step(grads_at(ours, t))
        gs = grads_at([np.asarray(v.numpy()) for v in vs], t)
        ref.apply([None if g is None else torch.from_numpy(g) for g in gs], vs)
    for g, v, p0 in zip(ours, vs, params):
        assert np.abs(g - p0).max() > 1e-3
        np.testing.assert_allclose(g, np.asarray(v.numpy()), rtol=1e-5, atol=1e-6)
    assert opt.calls == int(ref._iterations.numpy())


def test_only_none_gradients_is_refused_like_keras():
    p = np.ones(2, np.float32)
    opt = rmsprop_ops.RMSProp([p])
    with pytest.raises(ValueError, match="grads: expected at least one array"):
        opt.step([None])
    assert opt.calls == 0 and (p == 1).all()
    with pytest.raises(ValueError, match="No gradients provided"):
        keras.optimizers.RMSprop().apply([None], [keras.Variable(np.ones(2, np.float32))])


def test_swapped_ema_weights_are_keras_averages():
    """Inside swap_ema_weights() the params hold what Keras' finalize_variable_values() writes."""
    params, curv, noise = _problem(10)
    kw = {"learning_rate": 0.05, "use_ema": True, "ema_momentum": 0.9}
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ps, convention="keras", **kw)
    for t in range(STEPS):
        opt.step(_grads(ps, curv, noise[t]))
    trained = [p.copy() for p in ps]
    want = _run_keras(params, curv, noise, finalize=True, **kw)
    with opt.swap_ema_weights():
        for p, w in zip(ps, want):
            np.testing.assert_allclose(p, w, rtol=1e-5, atol=1e-6)
    for p, t in zip(ps, trained):
        np.testing.assert_array_equal(p, t)
