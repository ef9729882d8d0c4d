"""Bad input: a TypeError/ValueError naming the argument, expected vs received, and no array modified."""

from __future__ import annotations

import numpy as np
import pytest

import rmsprop_ops

OK = dict(lr=0.1, rho=0.9, epsilon=1e-6)


def f32(*shape, fill=1.0):
    return np.full(shape, fill, np.float32)


def base():
    return dict(param=f32(4), grad=f32(4, fill=0.5), mean_square=f32(4, fill=0.0))


def readonly(a):
    a.setflags(write=False)
    return a


def misaligned(n):
    raw = np.zeros(n * 4 + 1, np.uint8)
    return raw[1:].view(np.float32)


def overlapping_pair():
    buf = np.zeros(9, np.float32)
    return buf[0:6], buf[3:9]


SINGLE_CASES = [
    # (id, changes to the args, exception, message prefix)
    ("param-list", dict(param=[1.0, 2.0]), TypeError, "param: expected a NumPy array or a DLPack"),
    ("grad-int", dict(grad=np.ones(4, np.int64)), TypeError, "grad: expected a floating-point array"),
    ("grad-dtype", dict(grad=np.ones(4, np.float64)), TypeError, "grad: expected dtype float32"),
    ("ms-dtype-f16", dict(param=np.ones(4, np.float16), grad=np.ones(4, np.float16),
                         mean_square=np.zeros(4, np.float16)), TypeError, "mean_square: expected dtype float32"),
    ("grad-shape", dict(grad=f32(2, 2)), ValueError, "grad: expected shape (4,)"),
    ("param-readonly", dict(param=readonly(f32(4))), ValueError, "param: expected a writable array"),
    ("ms-readonly", dict(mean_square=readonly(f32(4))), ValueError, "mean_square: expected a writable array"),
    ("noncontiguous", dict(param=f32(8)[::2]), ValueError, "param: expected a C-contiguous array"),
    ("misaligned", dict(param=misaligned(4)), ValueError, "param: expected memory aligned to 4 bytes"),
    ("overlap-param-ms", "alias", ValueError, "mean_square: memory overlaps param"),
    ("eps-zero", dict(epsilon=0.0), ValueError, "epsilon: expected a value > 0"),
    ("eps-nan", dict(epsilon=float("nan")), ValueError, "epsilon: expected a finite number"),
    ("rho-high", dict(rho=1.5), ValueError, "rho: expected a value in [0, 1]"),
    ("rho-neg", dict(rho=-0.1), ValueError, "rho: expected a value in [0, 1]"),
    ("rho-str", dict(rho="0.9"), TypeError, "rho: expected a float"),
    ("momentum-neg", dict(momentum=-0.5), ValueError, "momentum: expected a value >= 0"),
    ("lr-neg", dict(lr=-0.1), ValueError, "lr: expected a value >= 0"),
    ("lr-inf", dict(lr=float("inf")), ValueError, "lr: expected a finite number"),
    ("lr-int-array", dict(lr=np.array(1)), TypeError, "lr: expected a floating-point scalar"),
    # An array lr lives in host memory on the CPU, so it is checked like a number.
    ("lr-neg-array", dict(lr=np.array(-0.1)), ValueError, "lr: expected a value >= 0"),
    ("lr-nan-array", dict(lr=np.array([np.nan], np.float32)), ValueError, "lr: expected a finite number"),
    ("rescale-neg-array", dict(rescale_grad=np.array(-1.0)), ValueError, "rescale_grad: expected a value > 0"),
    ("lr-long-array", dict(lr=np.ones(3)), ValueError, "lr: expected a number or a one-element array"),
    ("lr-none", dict(lr=None), TypeError, "lr: expected a float"),
    ("wd-neg", dict(weight_decay=-0.1), ValueError, "weight_decay: expected a value >= 0, got -0.1"),
    ("wd-mode", dict(weight_decay_mode="l3"), ValueError, "weight_decay_mode: expected one of"),
    ("rescale-zero", dict(rescale_grad=0.0), ValueError, "rescale_grad: expected a value > 0"),
    ("centered-str", dict(centered="yes"), TypeError, "centered: expected a bool"),
    ("centered-no-mg", dict(centered=True), ValueError, "mean_grad: expected an array"),
    ("mg-not-centered", dict(mean_grad=f32(4)), ValueError, "mean_grad: expected None when centered=False"),
    ("momentum-no-moment", dict(momentum=0.9), ValueError, "moment: expected an array"),
    ("master-f32", dict(master_param=f32(4)), TypeError, "master_param: master weights are for float16"),
    ("master-f64", dict(param=np.ones(4, np.float16), grad=np.ones(4, np.float16),
                       master_param=np.ones(4, np.float64)), TypeError, "master_param: expected dtype float32"),
    ("skip-str", dict(skip_update="no"), TypeError, "skip_update: expected a bool"),
    ("clip-str", dict(clip_gradient="1"), TypeError, "clip_gradient: expected a float"),
    ("moment-overlap-ms", "overlap", ValueError, "moment: memory overlaps mean_square"),
]


@pytest.mark.parametrize("case", SINGLE_CASES, ids=[c[0] for c in SINGLE_CASES])
def test_single_tensor_bad_input(case):
    _, change, exc, prefix = case
    args = base()
    if change == "alias":
        args["mean_square"] = args["param"]
    elif change == "overlap":
        ms, mom = overlapping_pair()
        args.update(param=f32(6), grad=f32(6), mean_square=ms, moment=mom)
    else:
        args.update(change)
    kwargs = {**OK, **{k: v for k, v in args.items() if k not in ("param", "grad", "mean_square")}}
    arrays = [v for v in args.values() if isinstance(v, np.ndarray)]
    before = [a.copy() for a in arrays]
    with pytest.raises(exc) as info:
        rmsprop_ops.rmsprop_(args["param"], args["grad"], args["mean_square"], **kwargs)
    assert str(info.value).startswith(prefix), str(info.value)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


def test_readonly_grad_is_fine():
    g = readonly(f32(4, fill=0.5))
    p = f32(4)
    rmsprop_ops.rmsprop_(p, g, f32(4, fill=0.0), **OK)
    assert np.all(p < 1)


def multi_base(n=3):
    return dict(params=[f32(5) for _ in range(n)], grads=[f32(5, fill=0.5) for _ in range(n)],
                mean_squares=[f32(5, fill=0.0) for _ in range(n)])


def _shared_param():
    m = multi_base()
    m["params"][2] = m["params"][0]
    return m


MULTI_CASES = [
    ("lengths", lambda m: m.update(grads=m["grads"][:2]), ValueError, "grads: expected 3 entries"),
    ("late-shape", lambda m: m["grads"].__setitem__(2, f32(6)), ValueError, "grads[2]: expected shape (5,)"),
    ("mixed-dtypes", lambda m: (m["params"].__setitem__(1, np.ones(5)), m["grads"].__setitem__(1, np.ones(5)),
                                m["mean_squares"].__setitem__(1, np.zeros(5))),
     TypeError, "params[1]: expected float32 like params[0]"),
    ("params-array", lambda m: m.update(params=np.ones((3, 5), np.float32)), TypeError,
     "params: expected a list or tuple of arrays"),
    ("partial-moments", lambda m: m.update(moments=[f32(5), None, f32(5)]), ValueError,
     "moments[1]: expected an array"),
    ("lr-list-length", lambda m: m.update(lr=[0.1, 0.2]), ValueError,
     "lr: expected a number or a list of 3 values (one per param), got 2 values"),
    ("lr-list-negative", lambda m: m.update(lr=[0.1, -0.2, 0.1]), ValueError, "lr[1]: expected a finite value >= 0, got -0.2"),
    ("none-param", lambda m: m["params"].__setitem__(1, None), TypeError, "params[1]: expected an array"),
]


@pytest.mark.parametrize("case", MULTI_CASES, ids=[c[0] for c in MULTI_CASES])
def test_multi_tensor_bad_input_touches_nothing(case):
    _, change, exc, prefix = case
    m = multi_base()
    m.setdefault("lr", 0.1)
    change(m)
    arrays = []
    for k in ("params", "grads", "mean_squares", "moments"):
        v = m.get(k)
        arrays += [v] if isinstance(v, np.ndarray) else [a for a in v or [] if isinstance(a, np.ndarray)]
    before = [a.copy() for a in arrays]
    kwargs = {k: v for k, v in m.items() if k not in ("params", "grads", "mean_squares")}
    with pytest.raises(exc) as info:
        rmsprop_ops.rmsprop_multi_(m["params"], m["grads"], m["mean_squares"], rho=0.9, epsilon=1e-6, **kwargs)
    assert str(info.value).startswith(prefix), str(info.value)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


def test_same_param_twice_is_an_overlap():
    m = _shared_param()
    with pytest.raises(ValueError, match=r"params\[\d\]: memory overlaps params\[\d\]"):
        rmsprop_ops.rmsprop_multi_(m["params"], m["grads"], m["mean_squares"], lr=0.1, rho=0.9, epsilon=1e-6)
    np.testing.assert_array_equal(m["params"][0], f32(5))


def test_set_num_threads_validates():
    for bad in (0, -1, 1025, 2 ** 31, 10 ** 400):
        with pytest.raises(ValueError, match=r"n: expected an int in \[1, 1024\], got "):
            rmsprop_ops.set_num_threads(bad)
    with pytest.raises(TypeError, match="n: expected an int"):
        rmsprop_ops.set_num_threads(2.0)
