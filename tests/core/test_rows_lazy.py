"""The named lazy choice (mode "lazy"): its catch-up is the documented formula, the dense path's k
zero-gradient steps; its parameters equal the dense ones whenever a row has just been stepped or caught
up, and lag them in between (exactly what the docs say)."""

from __future__ import annotations

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops import reference_rows

from cases import TOL
from rows_cases import Grad, catch_up, grad_stream, make_table, step_dense, step_rows

HYPER = dict(lr=0.01, rho=0.9, epsilon=1e-6)
BOUND = 2e-6  # relative to the table's scale, as for the exact mode


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9, 1.0, 1.25])
@pytest.mark.parametrize("k", [1, 2, 7, 100, 1000])
@pytest.mark.parametrize("lr_in_momentum", [True, False])
def test_catch_up_is_the_documented_formula(k, momentum, lr_in_momentum):
    rng = np.random.default_rng(k)
    t = make_table(rng, (3, 4), moment=True, centered=True)
    t.mean_square[:] = rng.uniform(0.1, 2.0, t.param.shape)
    t.mean_grad[:] = rng.standard_normal(t.param.shape)
    t.moment[:] = rng.standard_normal(t.param.shape) * 1e-3
    t.step[0] = k
    t.last_step[:] = [0, k - 1, k]  # owe k steps, one step, nothing
    before = t.copy()
    lr = 0.05
    rmsprop_ops.catch_up_rows_(t.param, t.mean_square, last_step=t.last_step, step=t.step, mode="lazy", rho=0.9,
                               momentum=momentum, moment=t.moment, centered=True, mean_grad=t.mean_grad, lr=lr,
                               lr_in_momentum=lr_in_momentum)
    assert t.last_step.tolist() == [k, k, k] and t.step[0] == k
    for row, owed in enumerate((k, 1, 0)):
        state = {n: getattr(before, n)[row].astype(np.float64) for n in ("param", "mean_square", "moment", "mean_grad")}
        want = reference_rows.closed_form(state, k=owed, rho=np.float32(0.9), momentum=np.float32(momentum),
                                          step_scale=1.0 if lr_in_momentum else np.float32(lr))
        # One rounding of the float64 result: within half an ulp, where k float32 steps drift by up to k/2
        # (momentum > 1 overflows float32 to inf, as the dense steps would).
        for name in ("param", "mean_square", "moment", "mean_grad"):
            got = getattr(t, name)[row].astype(np.float64)
            big = np.abs(want[name]) > np.finfo(np.float32).max
            expect = np.where(big, np.copysign(np.inf, want[name]), want[name])
            np.testing.assert_allclose(got, expect, rtol=6e-8, atol=1e-45, err_msg=f"{name}, row {row}")


@pytest.mark.parametrize("k", [1, 5, 40])
@pytest.mark.parametrize("lr_in_momentum", [True, False])
def test_the_formula_is_k_dense_steps_with_a_zero_gradient(k, lr_in_momentum):
    """The documented formula against the dense float64 reference applied k times."""
    rng = np.random.default_rng(0)
    state = dict(param=rng.standard_normal(6), mean_square=rng.uniform(0.1, 1, 6), moment=rng.standard_normal(6),
                 mean_grad=rng.standard_normal(6))
    lr = 0.3
    stepped = reference_rows.catch_up(state["param"][:, None], state["mean_square"][:, None],
                                      last_step=np.zeros(6, np.int64), step=[k], lr=lr, rho=0.8, momentum=0.7,
                                      moment=state["moment"][:, None], centered=True,
                                      mean_grad=state["mean_grad"][:, None], lr_in_momentum=lr_in_momentum)
    want = reference_rows.closed_form(state, k=k, rho=0.8, momentum=0.7, step_scale=1.0 if lr_in_momentum else lr)
    for name in want:
        np.testing.assert_allclose(stepped[name][:, 0], want[name], rtol=1e-12, err_msg=name)


RULES = {
    "momentum": dict(momentum=0.9),
    "centered": dict(momentum=0.9, centered=True),
    "lr-outside": dict(momentum=0.5, lr_in_momentum=False, eps_in_sqrt=False),
    "clip": dict(momentum=0.9, clip_gradient=0.5),
}


@pytest.mark.parametrize("rule", RULES)
def test_lazy_params_equal_the_dense_ones_when_stepped_and_lag_in_between(rule):
    rule = dict(RULES[rule])
    centered = rule.pop("centered", False)
    hyper = dict(HYPER, **rule)
    dense = make_table(np.random.default_rng(0), (30, 6), moment=True, centered=centered, counters=False)
    lazy = dense.copy()
    lazy.last_step, lazy.step = np.zeros(30, np.int64), np.zeros(1, np.int64)
    scale = np.abs(dense.param).max()
    lagging = 0
    for g in grad_stream(1, 30, (6,), 300, cold=(29,)):
        step_dense(dense, g, **hyper)
        step_rows(lazy, g, "lazy", **hyper)
        stepped = np.unique(g.indices)
        err = np.abs(lazy.param - dense.param)
        assert np.all(err[stepped] <= BOUND * np.maximum(np.abs(dense.param[stepped]), scale))
        behind = lazy.last_step < lazy.step[0]
        assert not np.any(behind[stepped])
        lagging += int(np.any(err[behind] > 1e-4))  # the moves not yet made
    assert lagging > 250
    catch_up(lazy, "lazy", **hyper)
    np.testing.assert_allclose(lazy.param, dense.param, rtol=0, atol=BOUND * scale)
    np.testing.assert_allclose(lazy.mean_square, dense.mean_square, rtol=2e-5)
    np.testing.assert_allclose(lazy.moment, dense.moment, rtol=2e-5, atol=1e-6 * np.abs(dense.moment).max())


def test_with_lr_outside_momentum_the_moves_take_the_current_lr():
    """A schedule: the lazy moves use the learning rate of the call that makes them (the float64 reference
    does the same), not those of the steps they stand for (the dense path)."""
    hyper = dict(rho=0.9, epsilon=1e-6, momentum=0.9, lr_in_momentum=False)
    lrs = np.linspace(0.02, 0.005, 80)
    t = make_table(np.random.default_rng(3), (10, 3), moment=True)
    dense = t.copy()
    ref = dict(param=t.param.astype(np.float64), mean_square=t.mean_square.astype(np.float64),
               moment=t.moment.astype(np.float64), mean_grad=None, last_step=t.last_step.copy(), step=t.step.copy())
    for lr, g in zip(lrs, grad_stream(4, 10, (3,), 80, max_rows=3)):
        step_rows(t, g, "lazy", lr=lr, **hyper)
        step_dense(dense, g, lr=lr, **hyper)
        ref = reference_rows.rows_step(ref["param"], g.indices, g.values, ref["mean_square"], mode="lazy", lr=lr,
                                       last_step=ref["last_step"], step=ref["step"], moment=ref["moment"], **hyper)
        np.testing.assert_allclose(t.param, ref["param"], **TOL[np.dtype(np.float32)])
    assert np.abs(t.param - dense.param).max() > 1e-5


@pytest.mark.parametrize("dtype,master", [(np.float32, False), (np.float64, False), (np.float16, True)])
def test_lazy_against_the_float64_reference(dtype, master):
    hyper = dict(HYPER, momentum=0.9)
    t = make_table(np.random.default_rng(5), (12, 4), dtype, moment=True, centered=True, master=master)
    ref = dict(param=(t.master_param if master else t.param).astype(np.float64), mean_square=t.mean_square.astype(np.float64),
               moment=t.moment.astype(np.float64), mean_grad=t.mean_grad.astype(np.float64),
               last_step=t.last_step.copy(), step=t.step.copy())
    tol = TOL[np.dtype(np.float64 if dtype == np.float64 else np.float32)]
    for g in grad_stream(6, 12, (4,), 40, dtype, max_rows=5, cold=(11,)):
        step_rows(t, g, "lazy", centered=True, **hyper)
        ref = reference_rows.rows_step(ref["param"], g.indices, g.values, ref["mean_square"], mode="lazy",
                                       last_step=ref["last_step"], step=ref["step"], moment=ref["moment"],
                                       mean_grad=ref["mean_grad"], centered=True, **hyper)
        for name in ("param", "mean_square", "moment", "mean_grad"):
            got = t.master_param if (name == "param" and master) else getattr(t, name)
            np.testing.assert_allclose(got.astype(np.float64), ref[name], err_msg=name, **tol)


def test_lazy_without_momentum_is_the_exact_mode():
    a = make_table(np.random.default_rng(0), (20, 3), moment=True, centered=True)
    b = a.copy()
    for g in grad_stream(7, 20, (3,), 50):
        step_rows(a, g, "exact", **HYPER)
        step_rows(b, g, "lazy", **HYPER)
    for name in ("param", "mean_square", "moment", "mean_grad", "last_step"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_catching_up_before_a_lookup_gives_the_dense_training():
    """Catching up the rows a batch will read before its forward pass makes lazy training dense training:
    every lookup sees the dense parameter."""
    hyper = dict(HYPER, momentum=0.9)
    rng = np.random.default_rng(8)
    target = rng.standard_normal((16, 2)).astype(np.float32)
    dense = make_table(np.random.default_rng(1), (16, 2), moment=True, counters=False)
    lazy = dense.copy()
    lazy.last_step, lazy.step = np.zeros(16, np.int64), np.zeros(1, np.int64)
    for t in range(60):
        ids = rng.integers(0, 16, 4)
        rmsprop_ops.catch_up_rows_(lazy.param, lazy.mean_square, last_step=lazy.last_step, step=lazy.step,
                                   mode="lazy", rho=0.9, momentum=0.9, moment=lazy.moment, indices=ids)
        for table, step in ((dense, step_dense), (lazy, lambda tb, g, **h: step_rows(tb, g, "lazy", **h))):
            vals = (table.param[ids] - target[ids]).astype(np.float32)  # d/dp of |p - target|^2 / 2, per lookup
            step(table, Grad(ids, vals), **hyper)
    catch_up(lazy, "lazy", **hyper)
    np.testing.assert_allclose(lazy.param, dense.param, rtol=0, atol=BOUND * np.abs(dense.param).max())
