"""rmsprop_ops.RMSProp refuses what it cannot do safely, and a refused step changes nothing.

Memory overlap between params, overflow after the non-finite check (float16 accumulation, unscaling),
multi-launch steps validated before the first write (bad grads, schedules returning bad rates, rates
that overflow), NumPy scalars and huge ints as hyper-parameters, schedules validated at construction.
Every refused case checks that params, state buffers, EMA averages, accumulators and counters are
bitwise what they were.
"""

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops import schedules


def snapshot(opt, params):
    return [np.array(p, copy=True) for p in params], opt.state_dict()


def assert_unchanged(opt, params, snap):
    for p, q in zip(params, snap[0]):
        np.testing.assert_array_equal(np.asarray(p), q)
    now = opt.state_dict()
    assert set(now) == set(snap[1])
    for k, v in snap[1].items():
        np.testing.assert_array_equal(np.asarray(now[k]), np.asarray(v), err_msg=k)


# ------------------------------------------------------------------------------ memory overlap
def _overlap_cases():
    buf = np.zeros(12, np.float32)
    mat = np.zeros((4, 4), np.float32)
    return [
        ("same array, two groups", lambda: [{"params": [buf]}, {"params": [buf], "rho": 0.5}]),
        ("overlapping slices, two groups", lambda: [{"params": [buf[:6]]}, {"params": [buf[4:10]], "rho": 0.5}]),
        ("overlapping slices, one group", lambda: [buf[:6], buf[5:]]),
        ("slice inside another", lambda: [buf, buf[3:5]]),
        ("reshaped view of the same memory", lambda: [mat, mat.reshape(16)[8:]]),
        ("row view of a matrix", lambda: [{"params": [mat]}, {"params": [mat[2]], "momentum": 0.9}]),
    ]


@pytest.mark.parametrize("name,spec", _overlap_cases(), ids=[c[0] for c in _overlap_cases()])
def test_overlapping_params_are_refused(name, spec):
    with pytest.raises(ValueError, match=r"^params: .*(overlaps|twice)") as info:
        rmsprop_ops.RMSProp(spec())
    assert "params[" in str(info.value)


def test_overlap_through_dlpack_views_is_refused():
    torch = pytest.importorskip("torch")
    t = torch.zeros(10)
    with pytest.raises(ValueError, match="overlaps"):
        rmsprop_ops.RMSProp([{"params": [t[:6]]}, {"params": [t[4:]]}])


def test_adjacent_slices_of_one_buffer_train_like_separate_arrays():
    rng = np.random.default_rng(0)
    init = rng.standard_normal(10).astype(np.float32)
    buf = init.copy()
    sep = [init[:4].copy(), init[4:].copy()]
    o1 = rmsprop_ops.RMSProp([{"params": [buf[:4]]}, {"params": [buf[4:]], "rho": 0.5}], momentum=0.9)
    o2 = rmsprop_ops.RMSProp([{"params": [sep[0]]}, {"params": [sep[1]], "rho": 0.5}], momentum=0.9)
    for _ in range(5):
        o1.step([2 * buf[:4], 2 * buf[4:]])
        o2.step([2 * sep[0], 2 * sep[1]])
    np.testing.assert_array_equal(buf, np.concatenate(sep))


def test_empty_params_may_share_an_address():
    buf = np.zeros(4, np.float32)
    opt = rmsprop_ops.RMSProp([buf, buf[:0], buf[4:]])
    assert opt.step([np.ones(4, np.float32), np.ones(0, np.float32), np.ones(0, np.float32)])


def test_a_grad_sharing_memory_with_a_param_of_another_launch_is_refused_untouched():
    a, b = np.ones(3, np.float32), np.ones(3, np.float32)
    opt = rmsprop_ops.RMSProp([{"params": [a]}, {"params": [b], "rho": 0.5}])
    snap = snapshot(opt, [a, b])
    with pytest.raises(ValueError, match=r"grads\[0\]: memory overlaps params\[1\]\[0\]"):
        opt.step([b, np.ones(3, np.float32)])
    assert_unchanged(opt, [a, b], snap)


def _views_of(buf):
    """The same memory seen through other exporters: a DLPack round trip and the buffer protocol."""
    out = [np.frombuffer(buf, dtype=buf.dtype)]
    try:
        import torch

        out.append(np.from_dlpack(torch.from_numpy(buf)))
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("launches", [1, 2])
def test_a_grad_viewing_a_params_memory_through_another_exporter_is_refused(launches):
    a, b = np.ones(3, np.float32), np.ones(3, np.float32)
    groups = [{"params": [a]}, {"params": [b], "rho": 0.5 if launches == 2 else 0.9}]
    opt = rmsprop_ops.RMSProp(groups)
    snap = snapshot(opt, [a, b])
    for view in _views_of(b):
        # the core words it from the param's side when it sees both in its one call
        either = r"grads\[0\]: memory overlaps params\[1\]|params\[1\]: memory overlaps grads\[0\]"
        with pytest.raises(ValueError, match=either):
            opt.step([view, np.ones(3, np.float32)])
        assert_unchanged(opt, [a, b], snap)


def test_grads_on_fresh_memory_pass_with_dlpack_params():
    torch = pytest.importorskip("torch")
    t = torch.zeros(8)
    opt = rmsprop_ops.RMSProp([{"params": [t[:4]]}, {"params": [t[4:]], "rho": 0.5}])
    assert opt.step([torch.ones(4), np.ones(4, np.float32)])
    with pytest.raises(ValueError, match="overlaps"):
        opt.step([t[4:], np.ones(4, np.float32)])


# ------------------------------------------------------------------------------ skip_nonfinite
F16_MAX = float(np.finfo(np.float16).max)


def _f16(*values):
    return np.array(values, np.float16)


NONFINITE_CASES = [
    # (name, optimizer kwargs, the gradients of successive calls; the last call must be skipped)
    ("accumulation overflows", {"gradient_accumulation_steps": 3},
     [[_f16(40000.0, 1.0)], [_f16(40000.0, 1.0)]]),
    ("averaging (g + acc) / N overflows", {"gradient_accumulation_steps": 2},
     [[_f16(40000.0, 1.0)], [_f16(40000.0, 1.0)]]),
    ("unscaling overflows", {"loss_scale_factor": 0.5}, [[_f16(40000.0, 1.0)]]),
    ("unscaling then accumulation", {"loss_scale_factor": 0.75, "gradient_accumulation_steps": 2},
     [[_f16(30000.0, 1.0)], [_f16(30000.0, 1.0)]]),
    ("inf clipped to a finite value", {"clipvalue": 1.0}, [[_f16(np.inf, 1.0)]]),
    ("nan with clipnorm", {"clipnorm": 1.0}, [[_f16(np.nan, 1.0)]]),
]


@pytest.mark.parametrize("name,kw,calls", NONFINITE_CASES, ids=[c[0] for c in NONFINITE_CASES])
def test_skip_nonfinite_sees_the_gradient_that_would_be_applied(name, kw, calls):
    p = _f16(1.0, 2.0)
    opt = rmsprop_ops.RMSProp([p], skip_nonfinite=True, use_ema=True, momentum=0.9, **kw)
    for grads in calls[:-1]:
        assert opt.step(grads) is True
    snap = snapshot(opt, [p])
    assert opt.step(calls[-1]) is False
    assert opt.skipped_steps == 1
    snap[1]["skipped_steps"] = 1
    assert_unchanged(opt, [p], snap)
    assert np.isfinite(p).all()


def test_without_skip_nonfinite_the_overflow_reaches_the_params():
    """The cases above are real overflows: without skip_nonfinite the step is taken and poisons p."""
    p = _f16(1.0, 2.0)
    opt = rmsprop_ops.RMSProp([p], gradient_accumulation_steps=2)
    assert opt.step([_f16(40000.0, 1.0)]) is True
    with np.errstate(over="ignore"):
        assert opt.step([_f16(40000.0, 1.0)]) is True
    assert not np.isfinite(p).all()


def test_skipped_accumulation_call_keeps_accumulators_and_counts():
    p = _f16(1.0, 2.0)
    opt = rmsprop_ops.RMSProp([p], skip_nonfinite=True, gradient_accumulation_steps=4)
    opt.step([_f16(40000.0, 0.5)])
    assert opt.step([_f16(40000.0, 0.5)]) is False
    assert opt.calls == 1 and opt.state_dict()["accumulator.0"].tolist() == [40000.0, 0.5]


# ------------------------------------------------------------------------------ multi-launch steps
def _two_launches(**kw):
    ps = [np.ones(3, np.float32), np.full(2, 2.0, np.float32), np.full(4, 3.0, np.float32)]
    groups = [{"params": [ps[0]]}, {"params": [ps[1], ps[2]], "rho": 0.5, "momentum": 0.9}]
    return ps, groups, kw


def _good_grads():
    return [np.full(3, 0.1, np.float32), np.full(2, 0.2, np.float32), np.full(4, 0.3, np.float32)]


def _bad(index, value):
    def grads():
        g = _good_grads()
        g[index] = value
        return g
    return grads


BAD_STEPS = [
    # (name, optimizer kwargs / group overrides, grads factory, exception, message start)
    ("wrong dtype in the second launch", {}, _bad(2, np.ones(4, np.float64)), ValueError, "grads[2]"),
    ("wrong shape in the second launch", {}, _bad(1, np.ones(3, np.float32)), ValueError, "grads[1]"),
    ("byte-swapped grad", {}, _bad(2, np.ones(4, ">f4")), ValueError, "grads[2]"),
    ("not an array", {}, _bad(1, "gradient"), TypeError, "grads[1]"),
    ("NaN rate from group 1's schedule", {"lr1": lambda step: float("nan")}, _good_grads, ValueError,
     "learning_rate: the schedule of group 1"),
    ("negative rate from a schedule", {"lr1": lambda step: -0.1}, _good_grads, ValueError,
     "learning_rate: the schedule of group 1"),
    ("inf rate from a schedule", {"lr1": lambda step: np.float32("inf")}, _good_grads, ValueError,
     "learning_rate: the schedule of group 1"),
    ("complex rate from a schedule", {"lr1": lambda step: 0.1 + 0.1j}, _good_grads, TypeError,
     "learning_rate: the schedule of group 1"),
    ("schedule that raises", {"lr1": lambda step: 1 / 0}, _good_grads, ZeroDivisionError, "division"),
    ("rate x lr_mult overflows", {"lr1": 1e300, "lr_mult1": 1e300}, _good_grads, ValueError,
     "learning_rate: the rate of params[1][0]"),
]


@pytest.mark.parametrize("extra", [{}, {"use_ema": True, "clipnorm": 1.0}, {"gradient_accumulation_steps": 2},
                                   {"skip_nonfinite": True}], ids=["plain", "ema_clip", "accumulation", "skip"])
@pytest.mark.parametrize("name,over,grads,exc,start", BAD_STEPS, ids=[c[0] for c in BAD_STEPS])
def test_a_bad_later_launch_leaves_everything_untouched(name, over, grads, exc, start, extra):
    ps, groups, _ = _two_launches()
    if "lr1" in over:
        groups[1]["learning_rate"] = over["lr1"]
    if "lr_mult1" in over:
        groups[1]["lr_mult"] = over["lr_mult1"]
    opt = rmsprop_ops.RMSProp(groups, learning_rate=0.01, **extra)
    assert len(opt._plans) == 2
    if extra.get("gradient_accumulation_steps"):
        opt.step(_good_grads())  # the next call applies
    snap = snapshot(opt, ps)
    with pytest.raises(exc) as info:
        opt.step(grads())
    assert str(info.value).startswith(start), str(info.value)
    assert_unchanged(opt, ps, snap)
    # the optimizer still works, and nothing was counted
    opt.param_groups  # noqa: B018
    assert opt.skipped_steps == snap[1]["skipped_steps"]


@pytest.mark.parametrize("rate", [np.float32(0.01), np.array(0.01), np.int64(0)])
def test_schedules_may_return_numpy_and_0d_values(rate):
    p = np.ones(2, np.float32)
    assert rmsprop_ops.RMSProp([p], learning_rate=lambda step: rate).step([np.ones(2, np.float32)])


def test_keras_schedules_returning_tensors_work():
    torch = pytest.importorskip("torch")
    p = np.ones(2, np.float32)
    opt = rmsprop_ops.RMSProp([p], learning_rate=lambda step: torch.tensor(0.01) * 0.5 ** step)
    assert opt.step([np.ones(2, np.float32)]) and opt.learning_rates() == [pytest.approx(0.005)]


def test_errors_name_the_entry_of_the_callers_list():
    ps, groups, _ = _two_launches()
    opt = rmsprop_ops.RMSProp(groups)
    for i in range(3):
        g = _good_grads()
        g[i] = g[i][:1]
        like = rf"params\[{0 if i == 0 else 1}\]\[{max(i - 1, 0)}\]"
        with pytest.raises(ValueError, match=rf"^grads\[{i}\]: .*like {like}"):
            opt.step(g)


# ------------------------------------------------------------------------------ numbers
NUMPY_SCALARS = [
    ("learning_rate", np.float32(0.05)), ("learning_rate", np.float16(0.05)), ("rho", np.float32(0.8)),
    ("momentum", np.float64(0.5)), ("momentum", np.int64(0)), ("epsilon", np.float32(1e-6)),
    ("weight_decay", np.float16(0.01)), ("clipnorm", np.float32(1.0)), ("clipvalue", np.int32(1)),
    ("global_clipnorm", np.float64(2.0)), ("loss_scale_factor", np.int64(8)), ("rescale_grad", np.float32(0.5)),
    ("ema_momentum", np.float32(0.9)), ("initial_accumulator_value", np.int8(1)),
    ("gradient_accumulation_steps", np.int64(2)), ("ema_overwrite_frequency", np.uint8(3)),
    ("clip_gradient", np.float32(0.5)), ("clip_weights", np.float64(4.0)), ("centered", np.bool_(True)),
]


@pytest.mark.parametrize("name,value", NUMPY_SCALARS, ids=[f"{n}-{type(v).__name__}" for n, v in NUMPY_SCALARS])
def test_numpy_scalars_are_hyper_parameters_like_python_numbers(name, value):
    extra = {"use_ema": True} if name.startswith("ema") else {}
    py = value.item()
    results = []
    for v in (value, py):
        p = np.array([1.0, -2.0, 3.0], np.float32)
        opt = rmsprop_ops.RMSProp([p], **{name: v}, **extra)
        for _ in range(4):
            opt.step([p * 2])
        results.append(p)
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("name,value", [(n, np.float32(0.5)) for n in ("rho", "momentum", "epsilon", "weight_decay",
                                                                      "lr_mult", "wd_mult", "learning_rate")])
def test_numpy_scalars_in_groups(name, value):
    p = np.ones(2, np.float32)
    opt = rmsprop_ops.RMSProp([{"params": [p], name: value}])
    assert opt.step([np.ones(2, np.float32)])


HUGE = 10 ** 400
HUGE_ARGS = ["learning_rate", "rho", "momentum", "epsilon", "weight_decay", "clipnorm", "clipvalue",
             "global_clipnorm", "loss_scale_factor", "rescale_grad", "ema_momentum", "initial_accumulator_value",
             "clip_gradient", "clip_weights"]


@pytest.mark.parametrize("name", HUGE_ARGS)
def test_huge_ints_are_a_value_error_naming_the_argument(name):
    with pytest.raises(ValueError, match=rf"^{name}: "):
        rmsprop_ops.RMSProp([np.ones(2, np.float32)], **{name: HUGE})


@pytest.mark.parametrize("name", ["rho", "learning_rate", "lr_mult", "wd_mult", "weight_decay"])
def test_huge_ints_in_groups(name):
    with pytest.raises(ValueError, match=rf"^{name}: "):
        rmsprop_ops.RMSProp([{"params": [np.ones(2, np.float32)], name: HUGE}])


@pytest.mark.parametrize("name,value,exc", [("rho", True, TypeError), ("epsilon", "1e-7", TypeError),
                                            ("momentum", float("nan"), ValueError),
                                            ("learning_rate", float("inf"), ValueError),
                                            ("weight_decay", 1e300, None), ("lr_mult", float("inf"), ValueError)])
def test_other_bad_numbers(name, value, exc):
    spec = [{"params": [np.ones(2, np.float32)], name: value}] if name == "lr_mult" else [np.ones(2, np.float32)]
    kw = {} if name == "lr_mult" else {name: value}
    if exc is None:  # a huge but finite decay is a valid float
        rmsprop_ops.RMSProp(spec, **kw)
        return
    with pytest.raises(exc, match=rf"^{name}: "):
        rmsprop_ops.RMSProp(spec, **kw)


def test_weight_decay_times_wd_mult_must_stay_finite():
    with pytest.raises(ValueError, match="weight_decay"):
        rmsprop_ops.RMSProp([{"params": [np.ones(2, np.float32)], "weight_decay": 1e300, "wd_mult": 1e300}])


# ------------------------------------------------------------------------------ schedules
BAD_SCHEDULES = [
    ("negative decay rate", lambda: schedules.ExponentialDecay(0.1, 10, -0.5), ValueError, "decay_rate"),
    ("nan decay rate", lambda: schedules.ExponentialDecay(0.1, 10, float("nan")), ValueError, "decay_rate"),
    ("huge initial rate", lambda: schedules.ExponentialDecay(HUGE, 10, 0.5), ValueError, "initial_learning_rate"),
    ("negative initial rate", lambda: schedules.CosineDecay(-0.1, 10), ValueError, "initial_learning_rate"),
    ("zero decay steps", lambda: schedules.ExponentialDecay(0.1, 0, 0.5), ValueError, "decay_steps"),
    ("negative fractional decay steps", lambda: schedules.ExponentialDecay(0.1, -2.4, 0.5), ValueError,
     "decay_steps"),
    ("negative alpha", lambda: schedules.CosineDecay(0.1, 10, alpha=-0.5), ValueError, "alpha"),
    ("negative gamma", lambda: schedules.StepDecay(0.1, 3, -0.5), ValueError, "gamma"),
    ("bool step size", lambda: schedules.StepDecay(0.1, True), TypeError, "step_size"),
    ("negative piecewise value", lambda: schedules.PiecewiseConstant([2], [0.1, -0.1]), ValueError, r"values\[1\]"),
    ("float boundary", lambda: schedules.PiecewiseConstant([2.5], [0.1, 0.2]), TypeError, r"boundaries\[0\]"),
    ("decreasing boundaries", lambda: schedules.PiecewiseConstant([5, 2], [0.1, 0.2, 0.3]), ValueError,
     "boundaries"),
    ("negative warmup start", lambda: schedules.LinearWarmup(0.1, 5, start=-1.0), ValueError, "start"),
    ("zero warmup", lambda: schedules.LinearWarmup(0.1, 0), ValueError, "warmup_steps"),
    ("negative constant", lambda: schedules.Constant(-1.0), ValueError, "value"),
    ("string constant", lambda: schedules.Constant("0.1"), TypeError, "value"),
]


@pytest.mark.parametrize("name,make,exc,match", BAD_SCHEDULES, ids=[c[0] for c in BAD_SCHEDULES])
def test_schedules_refuse_bad_parameters_at_construction(name, make, exc, match):
    with pytest.raises(exc, match=rf"^{match}: "):
        make()


def test_negative_decay_rate_no_longer_fails_at_step_two():
    """It used to build, then produce a complex number at step 1 and a TypeError deep in a step."""
    with pytest.raises(ValueError, match="decay_rate"):
        rmsprop_ops.RMSProp([np.ones(2, np.float32)], learning_rate=schedules.ExponentialDecay(0.1, 10, -0.5))


def test_schedules_accept_numpy_scalars_and_fractional_decay_steps():
    a = schedules.ExponentialDecay(np.float64(0.1), np.int64(4), np.float32(0.5), staircase=np.bool_(True))
    b = schedules.ExponentialDecay(0.1, 4, 0.5, staircase=True)
    assert [a(s) for s in range(10)] == [b(s) for s in range(10)]
    frac = schedules.ExponentialDecay(1.0, 2.4, 0.5, staircase=True)  # TF recipes: every 2.4 epochs of steps
    assert [frac(s) for s in (0, 2, 3, 4, 5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    warm = schedules.LinearWarmup(schedules.StepDecay(1.0, 2, 0.5), np.int64(2), shift=False)
    assert [warm(s) for s in range(6)] == [0.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match="step"):
        b(-1)


def test_a_schedule_overflowing_later_is_a_named_error_at_that_step():
    s = schedules.ExponentialDecay(1.0, 1, 1e300)
    assert s(1) == 1e300
    with pytest.raises(ValueError, match="ExponentialDecay: the rate at step 2 overflows"):
        s(2)
