"""The core against the independent float64 reference: every rule option x dtype, several steps."""

from __future__ import annotations

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops.reference import rmsprop_step

from cases import DTYPES, TOL, make_case

RULES = [
    dict(),
    dict(momentum=0.9),
    dict(momentum=0.0, with_moment=True),
    dict(centered=True),
    dict(centered=True, momentum=0.9),
    dict(eps_in_sqrt=False),
    dict(eps_in_sqrt=False, momentum=0.9, lr_in_momentum=False),
    dict(momentum=0.5, lr_in_momentum=False, centered=True),
    dict(weight_decay=0.1, weight_decay_mode="l2"),
    dict(weight_decay=0.05, weight_decay_mode="l1", momentum=0.9),
    dict(weight_decay=0.2, weight_decay_mode="decoupled"),
    dict(rescale_grad=0.25, clip_gradient=0.3),
    dict(clip_gradient=0.4, weight_decay=0.3, clip_after_weight_decay=False),
    dict(clip_gradient=0.4, weight_decay=0.3, clip_after_weight_decay=True),
    dict(clip_weights=0.5, centered=True, momentum=0.9, eps_in_sqrt=False),
]


def rule_id(rule):
    return ",".join(f"{k}={v}" for k, v in rule.items()) or "plain"


def run_and_compare(rng, dtype, master, rule, shape, steps=4):
    rule = dict(rule)
    with_moment = rule.pop("with_moment", False) or rule.get("momentum", 0.0) > 0
    centered = rule.get("centered", False)
    a = make_case(rng, shape, dtype, momentum=0.0 if with_moment else None, centered=centered, master=master)
    hyper = dict(lr=0.01, rho=0.9, epsilon=1e-6, **rule)
    tol = TOL[np.dtype(dtype)]
    state_tol = TOL[np.dtype(np.float64 if dtype == np.float64 else np.float32)]
    for _ in range(steps):
        a["grad"] = np.asarray(rng.standard_normal(shape), dtype=dtype)
        math_param = a["master_param"] if master else a["param"]
        ref = rmsprop_step(math_param, a["grad"], a["mean_square"], moment=a["moment"],
                           mean_grad=a["mean_grad"], **hyper)
        rmsprop_ops.rmsprop_(a["param"], a["grad"], a["mean_square"], moment=a["moment"],
                             mean_grad=a["mean_grad"], master_param=a["master_param"], **hyper)
        np.testing.assert_allclose(a["mean_square"], ref["mean_square"], **state_tol)
        if a["moment"] is not None:
            np.testing.assert_allclose(a["moment"], ref["moment"], **state_tol)
        if centered:
            np.testing.assert_allclose(a["mean_grad"], ref["mean_grad"], **state_tol)
        if master:
            np.testing.assert_allclose(a["master_param"], ref["param"], **state_tol)
            # The 16-bit param is exactly the master rounded to nearest-even, as NumPy/ml_dtypes round.
            np.testing.assert_array_equal(a["param"].view(np.uint16),
                                          a["master_param"].astype(dtype).view(np.uint16))
        else:
            np.testing.assert_allclose(a["param"].astype(np.float64), ref["param"], **tol)


@pytest.mark.parametrize("rule", RULES, ids=rule_id)
@pytest.mark.parametrize("name,dtype,master", DTYPES, ids=[d[0] for d in DTYPES])
def test_rule_matches_reference(name, dtype, master, rule):
    if dtype is None:
        pytest.skip("ml_dtypes not installed")
    run_and_compare(np.random.default_rng(0), dtype, master, rule, shape=(7, 13))


@pytest.mark.parametrize("size", [0, 1, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 1000, 1 << 15, (1 << 15) + 3,
                                  1_000_003])
def test_sizes_around_simd_width_and_threads(size):
    run_and_compare(np.random.default_rng(size), np.dtype(np.float32), False,
                    dict(centered=True, momentum=0.9), shape=(size,), steps=2)


def test_zero_dim_param():
    run_and_compare(np.random.default_rng(1), np.dtype(np.float32), False, dict(momentum=0.9), shape=())


def test_trajectory_over_many_steps_float32():
    # Free-running float32 vs float64 over 50 steps: errors stay at float32 level and do not grow.
    rng = np.random.default_rng(3)
    shape = (257,)
    p = rng.standard_normal(shape).astype(np.float32)
    ms, mom, mg = (np.zeros(shape, np.float32) for _ in range(3))
    ref = {"param": p.astype(np.float64), "mean_square": np.zeros(shape), "moment": np.zeros(shape),
           "mean_grad": np.zeros(shape)}
    hyper = dict(lr=0.01, rho=0.95, epsilon=1e-6, momentum=0.9, centered=True)
    for _ in range(50):
        g = rng.standard_normal(shape).astype(np.float32)
        ref = rmsprop_step(ref["param"], g, ref["mean_square"], moment=ref["moment"],
                           mean_grad=ref["mean_grad"], **hyper)
        rmsprop_ops.rmsprop_(p, g, ms, moment=mom, mean_grad=mg, **hyper)
    np.testing.assert_allclose(p, ref["param"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ms, ref["mean_square"], rtol=1e-5, atol=1e-7)


def test_keras_seed_example():
    # keras.optimizers.RMSprop(learning_rate=0.1); var = 10; loss = var^2 / 2 -> 9.683772
    var = np.array(10.0, np.float32)
    ms = np.zeros_like(var)
    rmsprop_ops.rmsprop_(var, var.copy(), ms, lr=0.1, rho=0.9, epsilon=1e-7)
    assert f"{float(var):.6f}" == "9.683772"


def test_d2l_seed_example():
    # D2L 7.6: f = 0.1 x1^2 + 2 x2^2 from (-5, -2), eta 0.4, gamma 0.9, eps 1e-6 (inside the sqrt), 20 epochs.
    x = np.array([-5.0, -2.0])
    s = np.zeros(2)
    for _ in range(20):
        g = np.array([0.2 * x[0], 4.0 * x[1]])
        rmsprop_ops.rmsprop_(x, g, s, lr=0.4, rho=0.9, epsilon=1e-6)
    assert f"x1 {x[0]:f}, x2 {x[1]:f}" == "x1 -0.010599, x2 0.000000"


def test_centered_negative_variance_is_clamped_not_nan():
    # ms = 0 and mg = 1 make ms - mg^2 negative: clamped to 0, so the step is lr * g / sqrt(eps).
    p = np.zeros(4, np.float32)
    g = np.full(4, 1.0, np.float32)
    ms = np.zeros(4, np.float32)
    mg = np.ones(4, np.float32)
    rmsprop_ops.rmsprop_(p, g, ms, mean_grad=mg, centered=True, lr=0.01, rho=0.9, epsilon=1e-6)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p, -0.01 * 1.0 / np.sqrt(1e-6), rtol=1e-6)


def test_nan_gradient_is_not_hidden():
    # NaN must propagate (clip and clamp are written to keep it); skip_update is the way to drop a step.
    p = np.ones(3, np.float32)
    g = np.array([np.nan, 1.0, np.inf], np.float32)
    ms = np.zeros(3, np.float32)
    mg = np.zeros(3, np.float32)
    rmsprop_ops.rmsprop_(p, g, ms, mean_grad=mg, centered=True, clip_gradient=1.0, lr=0.1, rho=0.9,
                         epsilon=1e-6)
    assert np.isnan(p[0]) and np.isfinite(p[1])


@pytest.mark.parametrize("flag", [True, np.array(True), np.array([1.0], np.float32), np.array(np.inf)])
def test_skip_update_leaves_everything_untouched(flag):
    rng = np.random.default_rng(5)
    a = make_case(rng, (9,), np.dtype(np.float32), momentum=0.0, centered=True, master=False)
    before = {k: v.copy() for k, v in a.items() if v is not None}
    rmsprop_ops.rmsprop_(a["param"], a["grad"], a["mean_square"], moment=a["moment"], mean_grad=a["mean_grad"],
                         centered=True, momentum=0.9, lr=0.1, rho=0.9, epsilon=1e-6, skip_update=flag)
    for k, v in before.items():
        np.testing.assert_array_equal(a[k], v)


@pytest.mark.parametrize("flag", [False, np.array(False), np.array([0.0], np.float32)])
def test_skip_update_false_updates(flag):
    p = np.ones(3, np.float32)
    rmsprop_ops.rmsprop_(p, np.ones(3, np.float32), np.zeros(3, np.float32), lr=0.1, rho=0.9, epsilon=1e-6,
                         skip_update=flag)
    assert np.all(p < 1)


@pytest.mark.parametrize("lr", [np.array(0.01, np.float32), np.array([0.01]), np.array(0.01, np.float16)])
def test_lr_and_rescale_as_arrays(lr):
    rng = np.random.default_rng(6)
    a = make_case(rng, (11,), np.dtype(np.float32), momentum=None, centered=False, master=False)
    b = {k: (v.copy() if v is not None else None) for k, v in a.items()}
    rmsprop_ops.rmsprop_(a["param"], a["grad"], a["mean_square"], lr=lr, rho=0.9, epsilon=1e-6,
                         rescale_grad=np.array(0.5))
    rmsprop_ops.rmsprop_(b["param"], b["grad"], b["mean_square"], lr=float(np.asarray(lr).reshape(-1)[0]),
                         rho=0.9, epsilon=1e-6, rescale_grad=0.5)
    np.testing.assert_array_equal(a["param"], b["param"])


def test_float16_roundtrip_is_exact_for_every_value():
    # lr = 0 leaves the math value unchanged, so param = fp16(float(param)) for all 65536 bit patterns.
    bits = np.arange(1 << 16, dtype=np.uint16)
    p = bits.view(np.float16).copy()
    finite = np.isfinite(p)
    rmsprop_ops.rmsprop_(p, np.zeros_like(p), np.zeros(p.shape, np.float32), lr=0.0, rho=0.9, epsilon=1e-6)
    np.testing.assert_array_equal(p.view(np.uint16)[finite], bits[finite])
    assert np.all(np.isnan(p[np.isnan(bits.view(np.float16))]))
    np.testing.assert_array_equal(p.view(np.uint16)[np.isinf(p)], bits[np.isinf(bits.view(np.float16))])


@pytest.mark.parametrize("name,dtype", [("float16", np.dtype(np.float16)), ("bfloat16", DTYPES[4][1])])
def test_float_to_16bit_rounding_matches_numpy(name, dtype):
    if dtype is None:
        pytest.skip("ml_dtypes not installed")
    # Master values spanning normals, subnormals, halfway cases and overflow; lr = 0 stores them as-is.
    rng = np.random.default_rng(7)
    with np.errstate(over="ignore", invalid="ignore"):
        vals = np.concatenate([
            rng.standard_normal(4096) * 10.0 ** rng.integers(-9, 6, 4096),
            np.array([65504.0, 65519.99, 65520.0, 7e4, -7e4, 6e-8, 2.9e-8, 3e-8, 1e-45, 0.0, -0.0, np.inf,
                      -np.inf, 3.3895314e38, 3.4e38]),
        ]).astype(np.float32)
    halfway = (np.arange(1 << 16, dtype=np.uint32) << 16 | 0x8000).view(np.float32)  # bf16 ties
    vals = np.concatenate([vals, halfway])
    vals = vals[~np.isnan(vals)]
    master = vals.copy()
    p = np.zeros(vals.shape, dtype)
    with np.errstate(over="ignore"):
        expected = vals.astype(dtype)
    rmsprop_ops.rmsprop_(p, np.zeros_like(p), np.zeros(vals.shape, np.float32), master_param=master, lr=0.0,
                         rho=0.9, epsilon=1e-6)
    np.testing.assert_array_equal(p.view(np.uint16), expected.view(np.uint16))


def test_options_change_the_result():
    # Guards against an option being silently ignored: each flag flips the outcome.
    base = dict(lr=0.1, rho=0.9, epsilon=0.1, momentum=0.5, weight_decay=0.1)

    def run(**over):
        p = np.array([1.0, -2.0, 3.0])
        rmsprop_ops.rmsprop_(p, np.array([0.5, 0.5, -4.0]), np.zeros(3), moment=np.zeros(3),
                             **{**base, **over})
        return p

    ref = run()
    for over in [dict(eps_in_sqrt=False), dict(lr_in_momentum=False, lr=0.5), dict(weight_decay_mode="l1"),
                 dict(weight_decay_mode="decoupled"), dict(clip_gradient=0.6), dict(clip_weights=1.5),
                 dict(rescale_grad=2.0), dict(clip_gradient=0.6, clip_after_weight_decay=False)]:
        assert not np.array_equal(run(**over), ref), over
    assert not np.array_equal(run(clip_gradient=0.6, clip_after_weight_decay=False), run(clip_gradient=0.6))
