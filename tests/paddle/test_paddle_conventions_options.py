"""The core's rule options through ``rmsprop_ops.paddle.RMSProp``: torch's ``maximize`` and optax's
``nesterov`` and ``bias_correction`` (registry attributes; bias_correction reads the update count as the
op's CurrentStep input), in dynamic mode (Paddle's path and the fast path, per-parameter and flat state)
and in static programs (fused, flat, one op per parameter), against the float64 reference
``rmsprop_ops.reference.rmsprop_step`` with optax's count (update t from 1), float64 parameters within
1e-12 (each option is also compared with the neutral optimizer, float32, in test_paddle_conventions.py).
Also: the count survives ``state_dict()`` / ``set_state_dict`` and ``paddle.static.save`` and skips
overflowed updates (GradScaler, static AMP); SelectedRows gradients take the options (made dense where
the rows update lacks them).
"""

import numpy as np
import pytest

import paddle_conventions as C

paddle = pytest.importorskip("paddle")
from rmsprop_ops.paddle import RMSProp  # noqa: E402

pytestmark = pytest.mark.paddle

STEPS = 8
FP64 = 1e-12
# Hyper-parameters float32 holds exactly (the op's attributes are float32).
HYPER = dict(learning_rate=2.0 ** -6, rho=0.875, epsilon=2.0 ** -20)
OPTIONS = {
    "maximize": dict(maximize=True, momentum=0.75, weight_decay=2.0 ** -5),
    "nesterov": dict(nesterov=True, momentum=0.75),
    "bias_correction": dict(bias_correction=True),
    # from zeros a centered, bias-corrected variance is exactly 0 at the first update (ms/b = g^2 = (mg/b)^2),
    # and no two evaluations of that cancellation agree: the mean square starts above it, as optax's does
    "bias_correction_centered": dict(bias_correction=True, centered=True, momentum=0.5,
                                     initial_accumulator_value=0.125),
    "all_three_torch": dict(convention="torch", maximize=True, nesterov=True, bias_correction=True, momentum=0.75),
    "bias_correction_tf1_start": dict(convention="tf1", bias_correction=True, momentum=0.75),
}
LAYOUTS = {"dynamic_per_param": ("dynamic", {"flat_state": False}), "dynamic_flat": ("dynamic", {}),
           "static_fused": ("static", {}), "static_flat": ("static", {"flat_state": True}),
           "static_one_op_per_param": ("static", {"fused": False})}


def _kw(name):
    return dict(HYPER, **OPTIONS[name])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", OPTIONS)
def test_options_match_the_float64_reference(name, layout):
    prob = C.problem(seed=40 + list(OPTIONS).index(name), steps=STEPS, dtype="float64")
    mode, extra = LAYOUTS[layout]
    kw = _kw(name)
    run = (C.run_dygraph if mode == "dynamic" else C.run_static)(prob, STEPS, **kw, **extra)
    ref = C.run_reference(prob, STEPS, **kw)
    C.compare(run, ref, FP64)
    # the option changes the numbers, or the comparison would prove nothing
    off = {k: v for k, v in kw.items() if k not in ("maximize", "nesterov", "bias_correction")}
    plain = C.run_reference(prob, STEPS, **off)
    assert max(np.max(np.abs(a - b)) for a, b in zip(ref.history[-1], plain.history[-1])) > 1e-4
    if mode == "dynamic" and "flat_state" not in extra:
        assert run.opt._plan is not None  # the fast path took the steps after the first


def test_bias_correction_count_survives_a_checkpoint_in_dynamic_mode():
    prob = C.problem(seed=50, steps=STEPS, dtype="float64")
    kw = _kw("all_three_torch")
    ref = C.run_reference(prob, STEPS, **kw)
    first = C.run_dygraph(prob, 4, **kw)
    sd = first.opt.state_dict()
    assert sd["iterations"] == 4
    paddle.disable_static()
    params = [paddle.create_parameter(list(p.shape), "float64", default_initializer=paddle.nn.initializer.Assign(p))
              for p in first.history[-1]]
    opt = RMSProp(parameters=params, **kw)
    opt.set_state_dict(sd)
    assert opt.iterations == 4
    for t in range(4, STEPS):
        g = prob.grads([p.numpy() for p in params], t)
        sum((p * paddle.to_tensor(gi)).sum() for p, gi in zip(params, g)).backward()
        opt.step()
        opt.clear_grad()
    for p, want in zip(params, ref.history[-1]):
        np.testing.assert_allclose(p.numpy(), want, rtol=0, atol=FP64)
    # a count restarted at 0 gives other numbers: the entry matters
    fresh = RMSProp(parameters=params, **kw)
    fresh.set_state_dict({k: v for k, v in sd.items() if k != "iterations"})
    assert fresh.iterations == 0


def test_bias_correction_counter_is_saved_with_the_static_program(tmp_path):
    prob = C.problem(seed=51, steps=STEPS, dtype="float64")
    run = C.run_static(prob, 5, **_kw("bias_correction"))
    path = str(tmp_path / "model")
    with paddle.static.scope_guard(run.extra["scope"]):
        paddle.enable_static()
        try:
            paddle.static.save(run.extra["main"], path)
            state = paddle.static.load_program_state(path)
        finally:
            paddle.disable_static()
    counters = {k: v for k, v in state.items() if "bias_correction_step" in k}
    assert len(counters) == 1 and float(np.asarray(next(iter(counters.values()))).reshape(-1)[0]) == 5.0


def test_static_amp_overflow_leaves_the_count():
    """paddle.static.amp's found-inf flag: the op skips the update and the counter stays; the next update
    is the one after the last applied (the reference skips the same step)."""
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            p = paddle.create_parameter([4], "float32", default_initializer=paddle.nn.initializer.Constant(0.5))
            g = paddle.static.data("g", [4], "float32")
            loss = paddle.mean(p * g)
            opt = RMSProp(learning_rate=0.01, bias_correction=True)
            params_grads = paddle.static.append_backward(loss, parameter_list=[p])
            found = paddle.static.data("found_inf", [1], "bool")
            opt._set_auxiliary_var("found_inf", found)
            opt.apply_gradients(params_grads)
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            counter = [n for n in scope.local_var_names() if "bias_correction_step" in n][0]
            flags = [False, True, False]
            for skip in flags:
                exe.run(main, feed={"g": np.full(4, 4.0, np.float32), "found_inf": np.array([skip])})
            assert float(np.array(scope.var(counter).get_tensor())[0]) == 2.0
    finally:
        paddle.disable_static()


def _embedding_run(sparse, sparse_mode="auto", **kw):
    paddle.disable_static()
    paddle.seed(3)
    emb = paddle.nn.Embedding(10, 4, sparse=sparse)
    emb.weight.set_value(np.linspace(-1, 1, 40).reshape(10, 4).astype("float32"))
    opt = RMSProp(learning_rate=0.01, parameters=emb.parameters(), sparse_mode=sparse_mode, **kw)
    for ids in ([1, 3, 3], [2, 3], [7, 1]):
        emb(paddle.to_tensor(ids)).pow(2).sum().backward()
        opt.step()
        opt.clear_grad()
    return emb.weight.numpy()


@pytest.mark.parametrize("kw", [dict(maximize=True), dict(nesterov=True, momentum=0.9),
                                dict(bias_correction=True)], ids=["maximize", "nesterov", "bias_correction"])
def test_selected_rows_gradients_take_the_options(kw):
    dense = _embedding_run(False, **kw)
    np.testing.assert_allclose(_embedding_run(True, **kw), dense, rtol=0, atol=2e-6)
    assert np.abs(dense - _embedding_run(False)).max() > 1e-4
    if "maximize" in kw:  # the rows update takes it (values negated), in every mode
        for mode in ("exact", "lazy", "dense"):
            np.testing.assert_allclose(_embedding_run(True, mode, **kw), dense, rtol=0, atol=2e-6)
    else:
        for mode in ("exact", "lazy"):
            with pytest.raises(ValueError, match=rf"sparse_mode: expected 'auto' or 'dense' with "
                                                 rf"{next(iter(kw))}=True .*got '{mode}'"):
                _embedding_run(True, mode, **kw)


def test_an_overflowed_update_is_not_counted_in_dynamic_mode():
    """GradScaler's protocol (it is disabled on CPU, so driven directly, as in test_paddle_optimizer.py):
    the op skips the update, and bias_correction's count skips it too; the next update is number 4."""
    prob = C.problem(seed=52, steps=STEPS, dtype="float64")
    kw = _kw("all_three_torch")
    run = C.run_dygraph(prob, 3, **kw)
    opt, params = run.opt, run.extra["params"]
    snap = [p.numpy().copy() for p in params]
    sum((p * paddle.to_tensor(np.full(p.shape, np.inf))).sum() for p in params).backward()
    opt._set_auxiliary_var("found_inf", paddle.to_tensor(True))
    opt.step()
    opt.clear_grad()
    assert opt.iterations == 3
    for p, w in zip(params, snap):
        np.testing.assert_array_equal(p.numpy(), w)
    good = prob.grads([p.numpy() for p in params], 3)
    sum((p * paddle.to_tensor(x)).sum() for p, x in zip(params, good)).backward()
    opt._set_auxiliary_var("found_inf", paddle.to_tensor(False))
    opt.step()
    opt.clear_grad()
    assert opt.iterations == 4
    ref = C.run_reference(prob, 4, **kw)
    for p, want in zip(params, ref.history[-1]):
        np.testing.assert_allclose(p.numpy(), want, rtol=0, atol=FP64)

