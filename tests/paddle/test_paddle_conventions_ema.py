"""Moving averages of the weights in ``rmsprop_ops.paddle.RMSProp`` (``use_ema``; issue #21).

The averages follow ``rmsprop_ops._toolkit.ema``, the semantics the neutral optimizer implements and
tests/optimizer checks against Keras 3 (``use_ema``, ``ema_overwrite_frequency``), the TF1
``ExponentialMovingAverage(num_updates=global_step)`` and PaddleClas' EMA. Here the Paddle front end runs
next to the neutral optimizer, dynamic mode and PIR static programs: every schedule, with and without
overwrites, every state layout; the swap for evaluation is bit for bit and refuses training inside; the
averages and their step count travel with ``state_dict``; an overflowed step moves nothing.
"""

import numpy as np
import pytest

import paddle_conventions as C

paddle = pytest.importorskip("paddle")
from rmsprop_ops.paddle import RMSProp  # noqa: E402

STEPS = 9
FP32 = 2e-6
SCHEDULES = ["keras", "tf1", "constant"]


def _kw(schedule, frequency, convention="tf1"):
    return dict(convention=convention, learning_rate=0.02, momentum=0.9, use_ema=True, ema_momentum=0.7,
                ema_schedule=schedule, ema_overwrite_frequency=frequency)


# (mode, layout): fused=False shapes static programs only
LAYOUTS = {"dynamic-fused": {}, "dynamic-flat": {"flat_state": True}, "static-fused": {},
           "static-flat": {"flat_state": True}, "static-one_op_per_param": {"fused": False}}


@pytest.mark.parametrize("frequency", [None, 4])
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_averages_match_the_neutral_optimizer(layout, schedule, frequency):
    prob = C.problem(seed=30, steps=STEPS)
    kw = _kw(schedule, frequency)
    run = (C.run_dygraph if layout.startswith("dynamic") else C.run_static)(prob, STEPS, **kw, **LAYOUTS[layout])
    ref = C.run_neutral(prob, STEPS, **kw)
    assert {k for k in ref.state if k.startswith("ema.")} == {f"ema.{i}" for i in range(len(C.SHAPES))}
    C.compare(run, ref, FP32)
    if frequency is None:  # the averages lag the weights
        assert max(np.max(np.abs(run.state[f"ema.{i}"] - run.history[-1][i])) for i in range(3)) > 1e-4


@pytest.mark.parametrize("convention", ["keras", "paddle", "torch"])
def test_averages_under_other_conventions(convention):
    prob = C.problem(seed=31, steps=STEPS)
    kw = _kw("keras", 3, convention)
    C.compare(C.run_dygraph(prob, STEPS, **kw), C.run_neutral(prob, STEPS, **kw), FP32)
    C.compare(C.run_static(prob, STEPS, **kw), C.run_neutral(prob, STEPS, **kw), FP32)


def _trained(steps=4, **kw):
    paddle.disable_static()
    prob = C.problem(seed=32, steps=8)
    run = C.run_dygraph(prob, steps, **dict(_kw("tf1", None), **kw))
    return prob, run


def test_swap_is_bit_for_bit_and_refuses_training_inside():
    prob, run = _trained()
    opt, params = run.opt, run.extra["params"]
    before = [p.numpy().copy() for p in params]
    averages = [run.state[f"ema.{i}"] for i in range(3)]
    with opt.swap_ema_weights():
        for p, a in zip(params, averages):
            np.testing.assert_array_equal(p.numpy(), a)
        sum((p * 1.0).sum() for p in params).backward()
        with pytest.raises(RuntimeError, match="step: the moving averages are swapped into the params"):
            opt.step()
        with pytest.raises(RuntimeError, match="already swapped in"):
            with opt.swap_ema_weights():
                pass
        with pytest.raises(RuntimeError, match="finalize_variable_values: the moving averages are swapped"):
            opt.finalize_variable_values()
        opt.clear_grad()
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.numpy(), b)
    opt.finalize_variable_values()
    for p, a in zip(params, averages):
        np.testing.assert_array_equal(p.numpy(), a)
    with pytest.raises(ValueError, match="swap_ema_weights: expected an optimizer with use_ema=True"):
        RMSProp(0.1, parameters=params).swap_ema_weights()


def test_swap_and_finalize_in_a_static_program():
    prob = C.problem(seed=33, steps=STEPS)
    run = C.run_static(prob, STEPS, **_kw("keras", None))
    opt, scope, names = run.opt, run.extra["scope"], run.extra["names"]
    trained = [np.array(scope.var(n).get_tensor()).copy() for n in names]
    averages = [run.state[f"ema.{i}"] for i in range(3)]
    with opt.swap_ema_weights(scope):
        for n, a in zip(names, averages):
            np.testing.assert_array_equal(np.array(scope.var(n).get_tensor()), a)
    for n, t in zip(names, trained):
        np.testing.assert_array_equal(np.array(scope.var(n).get_tensor()), t)
    opt.finalize_variable_values(scope)
    for n, a in zip(names, averages):
        np.testing.assert_array_equal(np.array(scope.var(n).get_tensor()), a)
    with pytest.raises(ValueError, match="the scope holds no variable"):
        with opt.swap_ema_weights(paddle.static.Scope()):
            pass


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("when", ["after_a_step", "before_the_first_step"])
def test_averages_and_their_count_survive_state_dict(when, flat):
    """A checkpoint taken after 4 steps, loaded into a new optimizer over new parameters (holding the
    step-4 weights; before its first step, or after a throwaway one), continues like 8 uninterrupted steps,
    bit for bit."""
    prob = C.problem(seed=34, steps=8)
    kw = dict(_kw("keras", 5), flat_state=flat)
    whole = C.run_dygraph(prob, 8, **kw)
    first = C.run_dygraph(prob, 4, **kw)
    sd = first.opt.state_dict()
    assert sd["iterations"] == 4 and sum("_ema_" in k for k in sd) == 3
    paddle.disable_static()
    values = [p.numpy().copy() for p in first.extra["params"]]
    params = [paddle.create_parameter(list(v.shape), "float32", default_initializer=paddle.nn.initializer.Assign(v))
              for v in values]
    opt = RMSProp(parameters=params, **kw)
    if when == "after_a_step":
        _steps(opt, params, C.problem(seed=99, steps=1), range(1))
        for p, v in zip(params, values):
            p.set_value(v)
    opt.set_state_dict({_rename(k, first, params): v for k, v in sd.items()})
    assert opt.iterations == 4
    _steps(opt, params, prob, range(4, 8))
    for p, w in zip(params, whole.history[-1]):
        np.testing.assert_array_equal(p.numpy(), w)
    averages = opt._accumulators[opt._acc_name("ema")]
    for i, p in enumerate(params):
        np.testing.assert_array_equal(averages[p.name].numpy(), whole.state[f"ema.{i}"])


def _rename(key, run, params):
    for old, new in zip(run.extra["params"], params):
        if key.startswith(old.name + "_"):
            return new.name + key[len(old.name):]
    return key


def _steps(opt, params, prob, steps):
    for t in steps:
        g = prob.grads([p.numpy() for p in params], t)
        sum((p * paddle.to_tensor(x)).sum() for p, x in zip(params, g)).backward()
        opt.step()
        opt.clear_grad()


def test_checkpoints_without_the_averages_or_their_count_are_refused_untouched():
    prob, run = _trained()
    sd = run.opt.state_dict()
    opt = run.opt
    before = {k: (v.numpy().copy() if hasattr(v, "numpy") else v) for k, v in opt.state_dict().items()}
    without_count = {k: v for k, v in sd.items() if k != "iterations"}
    with pytest.raises(ValueError, match="expected an 'iterations' entry with the averages"):
        opt.set_state_dict(without_count)
    without_averages = {k: v for k, v in sd.items() if "_ema_" not in k}
    with pytest.raises(ValueError, match="no 'ema' accumulator for parameter"):
        opt.set_state_dict(without_averages)
    with pytest.raises(ValueError, match="iterations: expected an int >= 0"):
        opt.set_state_dict(dict(sd, iterations=-1))
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v.numpy() if hasattr(v, "numpy") else v), np.asarray(before[k]))


def test_an_overflowed_step_moves_neither_the_weights_nor_the_averages():
    """GradScaler's protocol (it is disabled on CPU, so driven directly): the scaler sets the optimizer's
    'found_inf' auxiliary variable to its flag and calls step(); the op skips the update on the device, and
    the averages and the count skip it too."""
    prob, run = _trained(steps=3)
    opt, params = run.opt, run.extra["params"]
    averages = opt._accumulators[opt._acc_name("ema")]
    snap = [(p.numpy().copy(), averages[p.name].numpy().copy()) for p in params]
    bad = [np.full(p.shape, np.inf, np.float32) for p in params]
    sum((p * paddle.to_tensor(x)).sum() for p, x in zip(params, bad)).backward()
    opt._set_auxiliary_var("found_inf", paddle.to_tensor(True))
    opt.step()
    opt.clear_grad()
    assert opt.iterations == 3
    for p, (w, a) in zip(params, snap):
        np.testing.assert_array_equal(p.numpy(), w)
        np.testing.assert_array_equal(averages[p.name].numpy(), a)
    good = prob.grads([p.numpy() for p in params], 3)
    sum((p * paddle.to_tensor(x)).sum() for p, x in zip(params, good)).backward()
    opt._set_auxiliary_var("found_inf", paddle.to_tensor(False))
    opt.step()
    opt.clear_grad()
    assert opt.iterations == 4
    whole = C.run_dygraph(prob, 4, **_kw("tf1", None))
    for i, p in enumerate(params):
        np.testing.assert_array_equal(p.numpy(), whole.history[-1][i])
        np.testing.assert_array_equal(averages[p.name].numpy(), whole.state[f"ema.{i}"])


def test_a_static_overflow_flag_leaves_the_averages_and_their_count():
    """paddle.static.amp hands the optimizer its found-inf flag as an auxiliary variable; the same flag
    here (fed) skips the update, the averages and the count."""
    paddle.enable_static()
    try:
        prob = C.problem(seed=35, steps=4)
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            params = [paddle.create_parameter(list(p.shape), "float32",
                                              default_initializer=paddle.nn.initializer.Assign(p)) for p in prob.init]
            feeds = [paddle.static.data(f"g{i}", list(p.shape), "float32") for i, p in enumerate(prob.init)]
            found_inf = paddle.static.data("found_inf", [1], "bool")
            opt = RMSProp(**_kw("keras", 2))
            opt._set_auxiliary_var("found_inf", found_inf)
            opt.minimize(C.static_loss(params, feeds))
        exe, scope = paddle.static.Executor(paddle.CPUPlace()), paddle.static.Scope()
        names = [p.name for p in params]
        by_param = {s.param: s.average for s in opt._static_averages}
        avg_names = [by_param[n] for n in names]
        with paddle.static.scope_guard(scope):
            exe.run(startup)

            def run(t, skip):
                cur = [np.array(scope.var(n).get_tensor()) for n in names]
                feed = C.static_feed(prob.grads(cur, t))
                exe.run(main, feed=dict(feed, found_inf=np.array([skip])))
                return [np.array(scope.var(n).get_tensor()).copy() for n in names + avg_names]

            first = run(0, False)
            skipped = run(1, True)
            for a, b in zip(first, skipped):
                np.testing.assert_array_equal(a, b)
            moved = run(1, False)
            moved2 = run(2, False)
        ref = C.run_neutral(prob, 3, **_kw("keras", 2))
        for i in range(3):
            np.testing.assert_allclose(moved2[i], ref.history[-1][i], rtol=0, atol=FP32)
            np.testing.assert_allclose(moved2[3 + i], ref.state[f"ema.{i}"], rtol=0, atol=FP32)
        assert any(np.any(a != b) for a, b in zip(moved, skipped))
    finally:
        paddle.disable_static()


def test_static_averages_survive_paddle_static_save_and_load(tmp_path):
    prob = C.problem(seed=36, steps=8)
    kw = _kw("tf1", None)
    whole = C.run_static(prob, 8, **kw)
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            params = [paddle.create_parameter(list(p.shape), "float32",
                                              default_initializer=paddle.nn.initializer.Assign(p)) for p in prob.init]
            feeds = [paddle.static.data(f"g{i}", list(p.shape), "float32") for i, p in enumerate(prob.init)]
            opt = RMSProp(**kw)
            opt.minimize(C.static_loss(params, feeds))
        names = [p.name for p in params]
        exe = paddle.static.Executor(paddle.CPUPlace())

        def train(scope, steps):
            for t in steps:
                cur = [np.array(scope.var(n).get_tensor()) for n in names]
                exe.run(main, feed=C.static_feed(prob.grads(cur, t)))

        first, second = paddle.static.Scope(), paddle.static.Scope()
        with paddle.static.scope_guard(first):
            exe.run(startup)
            train(first, range(4))
            paddle.static.save(main, str(tmp_path / "ckpt"))
        with paddle.static.scope_guard(second):
            exe.run(startup)
            paddle.static.load(main, str(tmp_path / "ckpt"), exe)
            train(second, range(4, 8))
            got = [np.array(second.var(n).get_tensor()) for n in names]
            by_param = {s.param: s.average for s in opt._static_averages}
            avgs = [np.array(second.var(by_param[n]).get_tensor()) for n in names]
    finally:
        paddle.disable_static()
    for g, w in zip(got, whole.history[-1]):
        np.testing.assert_array_equal(g, w)
    for i, a in enumerate(avgs):
        np.testing.assert_array_equal(a, whole.state[f"ema.{i}"])


def test_float16_parameters_are_averaged_in_float32_from_their_master_weights():
    paddle.disable_static()
    p = paddle.create_parameter([4], "float16", default_initializer=paddle.nn.initializer.Assign(
        np.linspace(-1, 1, 4).astype(np.float16)))
    opt = RMSProp(0.01, parameters=[p], multi_precision=True, use_ema=True, ema_momentum=0.5)
    for _ in range(3):
        (p.astype("float32") * paddle.to_tensor(np.full(4, 0.5, np.float32))).sum().backward()
        opt.step()
        opt.clear_grad()
    avg = opt._accumulators[opt._acc_name("ema")][p.name]
    master = opt._master_weights[p.name]
    assert avg.dtype == paddle.float32
    assert np.max(np.abs(avg.numpy() - master.numpy())) > 0  # an average of the float32 masters
    with opt.swap_ema_weights():
        np.testing.assert_array_equal(p.numpy(), avg.numpy().astype(np.float16))


def test_a_parameter_without_a_gradient_keeps_its_state_and_is_still_averaged():
    """Keras 3 skips a variable whose gradient is None (its state kept) and still averages it; Paddle skips
    a parameter without a gradient the same way (``clear_grad(set_to_zero=False)``: Paddle's default
    clears to zeros, a gradient that moves the parameter by its momentum)."""
    paddle.disable_static()
    prob = C.problem(seed=37, steps=6)
    params = [paddle.create_parameter(list(p.shape), "float32", default_initializer=paddle.nn.initializer.Assign(p))
              for p in prob.init]
    kw = _kw("keras", None, "keras")
    opt = RMSProp(parameters=params, **kw)
    ref_ps = [p.copy() for p in prob.init]
    ref = __import__("rmsprop_ops").RMSProp(ref_ps, **kw)
    for t in range(6):
        g = prob.grads([p.numpy() for p in params], t)
        present = [i for i in range(3) if not (t % 2 and i == 1)]  # params[1] has no gradient every other step
        sum((params[i] * paddle.to_tensor(g[i])).sum() for i in present).backward()
        opt.step()
        opt.clear_grad(set_to_zero=False)
        ref.step([g[i] if i in present else None for i in range(3)])
    averages = opt._accumulators[opt._acc_name("ema")]
    sd = ref.state_dict()
    for i, p in enumerate(params):
        np.testing.assert_allclose(p.numpy(), ref_ps[i], rtol=0, atol=FP32)
        np.testing.assert_allclose(averages[p.name].numpy(), sd[f"ema.{i}"], rtol=0, atol=FP32)


@pytest.mark.parametrize("schedule", ["keras", "tf1"])
def test_static_averages_of_float16_parameters_follow_their_master_weights(schedule):
    """A static program with multi_precision averages the float32 masters (from the startup program's
    master value), in float32, as the neutral optimizer's update would from the same weights."""
    from rmsprop_ops._toolkit import ema as ema_rules

    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", [4, 3], "float32")
            w = paddle.create_parameter([3, 2], "float16")
            loss = (x @ w.astype("float32")).pow(2).mean()  # no float16 matmul on CPU
            opt = RMSProp(0.02, momentum=0.5, multi_precision=True, use_ema=True, ema_momentum=0.6,
                          ema_schedule=schedule, ema_overwrite_frequency=3)
            opt.minimize(loss)
        (avg_name,) = [s.average for s in opt._static_averages]
        master_name = opt._master_weights[w.name].name
        exe, scope = paddle.static.Executor(paddle.CPUPlace()), paddle.static.Scope()
        rng = np.random.default_rng(8)
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            read = lambda name: np.array(scope.var(name).get_tensor()).copy()  # noqa: E731
            expected = read(master_name)
            np.testing.assert_array_equal(read(avg_name), expected)
            rule = ema_rules.make_ema(0.6, schedule, 3)
            for t in range(5):
                exe.run(main, feed={"x": rng.normal(size=(4, 3)).astype("float32")})
                master = read(master_name)
                d = ema_rules.decay_at(rule, t)
                if ema_rules.subtracts(rule):
                    expected = expected - np.float32(1 - d) * (expected - master)
                else:
                    expected = expected * np.float32(d) + np.float32(1 - d) * master
                avg = read(avg_name)
                assert avg.dtype == np.float32
                if ema_rules.should_overwrite(rule, t):  # the weights took their averages
                    np.testing.assert_array_equal(master, avg)
                    np.testing.assert_array_equal(read(w.name), avg.astype(np.float16))
                    expected = avg
                np.testing.assert_allclose(avg, expected, rtol=0, atol=FP32)
    finally:
        paddle.disable_static()
