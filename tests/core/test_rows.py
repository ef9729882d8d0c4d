"""Row-sparse updates against the dense path: mode "dense" gives its bits, mode "exact" its parameters at
every step (within 2e-6 of the table's scale) and its state after catch-up, over long runs with random,
repeated and empty row sets and rows left alone for most of the run."""

from __future__ import annotations

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops import reference_rows

from cases import BF16, TOL
from rows_cases import Grad, catch_up, grad_stream, make_table, step_dense, step_rows

NROWS, ROW = 40, (3, 5)
COLD = (37, 38, 39)  # touched at the first and the second-to-last step only
HYPER = dict(lr=0.01, rho=0.9, epsilon=1e-6)
PARAM_RTOL = 2e-6  # the bound, relative to the table's scale

# Every rule without weight decay, weight clip or momentum: those the exact mode can follow.
EXACT_RULES = {
    "plain": dict(),
    "centered": dict(centered=True),
    "moment-buffer": dict(with_moment=True),
    "centered+moment-buffer": dict(centered=True, with_moment=True),
    "eps-outside": dict(eps_in_sqrt=False),
    "lr-outside": dict(with_moment=True, lr_in_momentum=False),
    "clip+rescale": dict(clip_gradient=0.5, rescale_grad=0.5),
    "clip-first": dict(clip_gradient=0.5, clip_after_weight_decay=False, centered=True),
    "rho-0.99": dict(rho=0.99),
    "rho-0": dict(rho=0.0, centered=True),
    "rho-1": dict(rho=1.0, with_moment=True),
    "lr_mult": dict(lr_mult=0.5),
}

DTYPES = {
    "float32": (np.float32, False),
    "float64": (np.float64, False),
    "float16+master": (np.float16, True),
    "bfloat16+master": (BF16, True),
}


def split(rule):
    rule = dict(rule)
    moment = rule.pop("with_moment", False)
    return moment, rule.get("centered", False), dict(HYPER, **rule)


def assert_params_close(sparse, dense, scale, what):
    err = np.abs(sparse.astype(np.float64) - dense.astype(np.float64))
    bound = PARAM_RTOL * np.maximum(np.abs(dense.astype(np.float64)), scale)
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert np.all(err <= bound), f"{what}: param{list(worst)} {sparse[worst]} vs dense {dense[worst]}"


@pytest.mark.parametrize("rule", EXACT_RULES)
def test_exact_mode_follows_the_dense_path(rule):
    """float32, 400 steps: parameters at every step, state after a final catch-up."""
    moment, centered, hyper = split(EXACT_RULES[rule])
    dense = make_table(np.random.default_rng(0), (NROWS,) + ROW, moment=moment, centered=centered, counters=False)
    sparse = dense.copy()
    sparse.last_step, sparse.step = np.zeros(NROWS, np.int64), np.zeros(1, np.int64)
    scale = np.abs(dense.param).max()
    longest_wait = 0
    for t, g in enumerate(grad_stream(1, NROWS, ROW, 400, cold=COLD)):
        longest_wait = max(longest_wait, *(sparse.step[0] - sparse.last_step[g.indices]), 0)
        step_dense(dense, g, **hyper)
        step_rows(sparse, g, "exact", **hyper)
        assert_params_close(sparse.param, dense.param, scale, f"step {t}")
    assert longest_wait > 300  # the cold rows were caught up across that many steps
    catch_up(sparse, "exact", **hyper)
    assert np.all(sparse.last_step == sparse.step[0]) and sparse.step[0] == 400
    # Both sides are float32 with their own roundings: ms (no cancellation) relative to itself, the signed
    # mean gradient also relative to its scale (it cancels towards 0).
    np.testing.assert_allclose(sparse.mean_square, dense.mean_square, rtol=2e-5, atol=0)
    if centered:
        np.testing.assert_allclose(sparse.mean_grad, dense.mean_grad, rtol=2e-5,
                                   atol=1e-6 * np.abs(dense.mean_grad).max())
    if moment:
        np.testing.assert_allclose(sparse.moment, dense.moment, rtol=2e-5, atol=1e-6 * np.abs(dense.moment).max())
    if moment:
        assert np.all(sparse.moment[list(COLD)] == 0)  # the dense path zeroed it at the first skipped step


@pytest.mark.parametrize("rule", ["plain", "centered+moment-buffer", "lr-outside", "clip+rescale"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_exact_mode_against_the_float64_reference(rule, dtype):
    """Every param dtype; the reference steps skipped rows one zero-gradient step at a time."""
    pdt, master = DTYPES[dtype]
    if pdt is None:
        pytest.skip("ml_dtypes not installed")
    moment, centered, hyper = split(EXACT_RULES[rule])
    t = make_table(np.random.default_rng(2), (12, 4), pdt, moment=moment, centered=centered, master=master)
    f64 = lambda a: None if a is None else a.astype(np.float64)  # noqa: E731
    ref = dict(param=f64(t.master_param if master else t.param), mean_square=f64(t.mean_square),
               moment=f64(t.moment), mean_grad=f64(t.mean_grad), last_step=t.last_step.copy(), step=t.step.copy())
    state_tol = TOL[np.dtype(np.float64 if pdt == np.float64 else np.float32)]
    for g in grad_stream(3, 12, (4,), 40, pdt, max_rows=5, cold=(11,)):
        step_rows(t, g, "exact", **hyper)
        ref = reference_rows.rows_step(ref["param"], g.indices, g.values, ref["mean_square"], mode="exact",
                                       last_step=ref["last_step"], step=ref["step"], moment=ref["moment"],
                                       mean_grad=ref["mean_grad"], **hyper)
        np.testing.assert_array_equal(t.last_step, ref["last_step"])
        math_param = t.master_param if master else t.param
        np.testing.assert_allclose(math_param.astype(np.float64), ref["param"], **state_tol)
        np.testing.assert_allclose(t.mean_square, ref["mean_square"], **state_tol)
        if centered:
            np.testing.assert_allclose(t.mean_grad, ref["mean_grad"], **state_tol)
    caught = reference_rows.catch_up(ref["param"], ref["mean_square"], last_step=ref["last_step"], step=ref["step"],
                                     moment=ref["moment"], mean_grad=ref["mean_grad"], **hyper)
    catch_up(t, "exact", **hyper)
    for name in ("mean_square", "moment", "mean_grad"):
        if caught[name] is not None:
            np.testing.assert_allclose(getattr(t, name), caught[name], err_msg=name, **state_tol)
    if master:  # the 16-bit param is its master rounded
        np.testing.assert_array_equal(t.param.view(np.uint16), t.master_param.astype(pdt).view(np.uint16))


DENSE_RULES = {
    "plain": dict(),
    "momentum": dict(momentum=0.9),
    "centered-momentum": dict(centered=True, momentum=0.9),
    "l2": dict(weight_decay=0.1, momentum=0.5),
    "l1": dict(weight_decay=0.05, weight_decay_mode="l1"),
    "decoupled": dict(weight_decay=0.1, weight_decay_mode="decoupled", centered=True),
    "clips": dict(clip_gradient=0.5, clip_weights=0.9, momentum=0.9, clip_after_weight_decay=False,
                  weight_decay=0.01),
    "torch": dict(eps_in_sqrt=False, lr_in_momentum=False, momentum=0.9),
}


@pytest.mark.parametrize("rule", DENSE_RULES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_mode_is_the_dense_update_bit_for_bit(rule, dtype):
    """Every option, repeated rows summed in order: the dense op's bits on every row."""
    rule = dict(DENSE_RULES[rule])
    hyper = dict(HYPER, **rule)
    moment = rule.get("momentum", 0) > 0
    dense = make_table(np.random.default_rng(4), (NROWS,) + ROW, dtype, moment=moment,
                       centered=rule.get("centered", False), counters=False)
    rows = dense.copy()
    for g in grad_stream(5, NROWS, ROW, 30, dtype, cold=COLD):
        step_dense(dense, g, **hyper)
        step_rows(rows, g, "dense", **hyper)
        for name in ("param", "mean_square", "moment", "mean_grad"):
            if getattr(dense, name) is not None:
                np.testing.assert_array_equal(getattr(rows, name), getattr(dense, name), err_msg=name)


def test_dense_mode_keeps_a_step_counter_when_given_one():
    t = make_table(np.random.default_rng(0), (5, 2), counters=False)
    step = np.zeros(1, np.int64)
    rmsprop_ops.rmsprop_rows_(t.param, np.array([1]), np.ones((1, 2), np.float32), t.mean_square, step=step,
                              mode="dense", **HYPER)
    assert step.tolist() == [1]


def test_rows_untouched_in_exact_mode_are_not_written():
    """Nothing but the given rows (and the step counter) changes: the table's other bytes are the same."""
    t = make_table(np.random.default_rng(0), (20, 3), moment=True, centered=True)
    for g in grad_stream(6, 20, (3,), 5):
        step_rows(t, g, "exact", **HYPER)
    before = t.copy()
    g = Grad(np.array([4, 9, 4]), np.ones((3, 3), np.float32))
    step_rows(t, g, "exact", **HYPER)
    others = np.setdiff1d(np.arange(20), [4, 9])
    for name in ("param", "mean_square", "moment", "mean_grad", "last_step"):
        np.testing.assert_array_equal(getattr(t, name)[others], getattr(before, name)[others], err_msg=name)
    assert t.step[0] == before.step[0] + 1 and t.last_step[4] == t.last_step[9] == t.step[0]


@pytest.mark.parametrize("mode", ["exact", "dense"])
def test_results_do_not_depend_on_the_thread_count(mode):
    """Big enough for the pool: thousands of rows of 64; every element is computed by the same code."""
    rng = np.random.default_rng(7)
    base = make_table(rng, (20000, 64), centered=True, moment=True, counters=mode != "dense")
    grads = [Grad(rng.integers(0, 20000, 6000), rng.standard_normal((6000, 64)).astype(np.float32))
             for _ in range(3)]
    results = []
    old = rmsprop_ops.get_num_threads()
    try:
        for threads in (1, 2, 3):
            rmsprop_ops.set_num_threads(threads)
            t = base.copy()
            for g in grads:
                step_rows(t, g, mode, **HYPER)
            results.append(t)
    finally:
        rmsprop_ops.set_num_threads(old)
    for t in results[1:]:
        for name in ("param", "mean_square", "moment", "mean_grad"):
            np.testing.assert_array_equal(getattr(t, name), getattr(results[0], name), err_msg=name)


def test_int32_indices_give_the_int64_bits():
    a = make_table(np.random.default_rng(0), (30, 4), centered=True)
    b = a.copy()
    for g in grad_stream(8, 30, (4,), 20):
        step_rows(a, g, "exact", **HYPER)
        step_rows(b, Grad(g.indices.astype(np.int32), g.values), "exact", **HYPER)
    np.testing.assert_array_equal(a.param, b.param)
    np.testing.assert_array_equal(a.mean_square, b.mean_square)


@pytest.mark.parametrize("mode", ["exact", "lazy", "dense"])
def test_skip_update_leaves_everything(mode):
    t = make_table(np.random.default_rng(0), (10, 2), moment=True, counters=mode != "dense")
    hyper = dict(HYPER, momentum=0.9 if mode != "exact" else 0.0)
    for g in grad_stream(9, 10, (2,), 4):
        step_rows(t, g, mode, **hyper)
    before = t.copy()
    for skip in (True, np.array([1.0], np.float32), np.array(True)):
        step_rows(t, Grad(np.array([1, 2]), np.ones((2, 2), np.float32)), mode, skip_update=skip, **hyper)
        for name in ("param", "mean_square", "moment", "last_step", "step"):
            if getattr(t, name) is not None:
                np.testing.assert_array_equal(getattr(t, name), getattr(before, name), err_msg=name)


def test_learning_rate_as_an_array():
    a = make_table(np.random.default_rng(0), (10, 2))
    b = a.copy()
    g = Grad(np.array([3, 1]), np.ones((2, 2), np.float32))
    step_rows(a, g, "exact", **HYPER)
    step_rows(b, g, "exact", **dict(HYPER, lr=np.array([HYPER["lr"]], np.float64)))
    np.testing.assert_array_equal(a.param, b.param)


def test_empty_gradients_only_advance_the_step():
    t = make_table(np.random.default_rng(0), (6, 2))
    before = t.copy()
    for _ in range(3):
        step_rows(t, Grad(np.zeros(0, np.int64), np.zeros((0, 2), np.float32)), "exact", **HYPER)
    np.testing.assert_array_equal(t.param, before.param)
    assert t.step.tolist() == [3] and t.last_step.tolist() == [0] * 6


def test_catch_up_of_given_rows_matches_catch_up_of_all():
    t = make_table(np.random.default_rng(0), (15, 3), centered=True, moment=True)
    for g in grad_stream(10, 15, (3,), 25):
        step_rows(t, g, "exact", **HYPER)
    some, every = t.copy(), t.copy()
    rows = np.array([0, 7, 7, 14])
    rmsprop_ops.catch_up_rows_(some.param, some.mean_square, last_step=some.last_step, step=some.step, rho=0.9,
                               centered=True, moment=some.moment, mean_grad=some.mean_grad, indices=rows)
    catch_up(every, "exact", **HYPER)
    for name in ("mean_square", "moment", "mean_grad", "last_step"):
        a, b, orig = getattr(some, name), getattr(every, name), getattr(t, name)
        np.testing.assert_array_equal(a[rows], b[rows], err_msg=name)
        others = np.setdiff1d(np.arange(15), rows)
        np.testing.assert_array_equal(a[others], orig[others], err_msg=name)
    assert some.step.tolist() == t.step.tolist()


def test_catching_up_twice_changes_nothing_and_a_resumed_copy_continues_bit_for_bit():
    """A copy of the state (the counters included) taken mid-way continues exactly like the original."""
    t = make_table(np.random.default_rng(0), (25, 4), centered=True)
    grads = grad_stream(11, 25, (4,), 60, cold=(24,))
    for g in grads[:30]:
        step_rows(t, g, "exact", **HYPER)
    resumed = t.copy()
    for g in grads[30:]:
        step_rows(t, g, "exact", **HYPER)
        step_rows(resumed, g, "exact", **HYPER)
    for name in ("param", "mean_square", "mean_grad", "last_step", "step"):
        np.testing.assert_array_equal(getattr(t, name), getattr(resumed, name), err_msg=name)
    catch_up(t, "exact", **HYPER)
    again = t.copy()
    catch_up(again, "exact", **HYPER)
    np.testing.assert_array_equal(again.mean_square, t.mean_square)


def test_a_one_dimensional_table_has_rows_of_one():
    dense = make_table(np.random.default_rng(0), (9,), counters=False)
    sparse = dense.copy()
    sparse.last_step, sparse.step = np.zeros(9, np.int64), np.zeros(1, np.int64)
    for g in grad_stream(12, 9, (), 30):
        step_dense(dense, g, **HYPER)
        step_rows(sparse, g, "exact", **HYPER)
    catch_up(sparse, "exact", **HYPER)
    np.testing.assert_allclose(sparse.param, dense.param, rtol=2e-6)
    np.testing.assert_allclose(sparse.mean_square, dense.mean_square, rtol=2e-5)


def test_torch_tensors_through_dlpack():
    torch = pytest.importorskip("torch")
    a = make_table(np.random.default_rng(0), (8, 3), centered=True)
    b = a.copy()
    g = Grad(np.array([5, 2, 5]), np.random.default_rng(1).standard_normal((3, 3)).astype(np.float32))
    step_rows(a, g, "exact", **HYPER)
    tb = {k: torch.from_numpy(v) for k, v in vars(b).items() if v is not None}
    rmsprop_ops.rmsprop_rows_(tb["param"], torch.from_numpy(g.indices), torch.from_numpy(g.values),
                              tb["mean_square"], mean_grad=tb["mean_grad"], centered=True,
                              last_step=tb["last_step"], step=tb["step"], **HYPER)
    np.testing.assert_array_equal(b.param, a.param)
    np.testing.assert_array_equal(b.last_step, a.last_step)
