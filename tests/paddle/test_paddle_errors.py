"""Bad input at every Paddle entry: the custom ops (single and multi-tensor, dynamic and in a PIR program)
and ``rmsprop_ops.paddle.RMSProp`` (constructor, parameter groups, ``set_lr``, LR schedulers).

Every case checks the exception type, a message naming the argument with expected-vs-received wording,
and that every tensor involved (params, grads, every accumulator, the base of a view) is bitwise unchanged.
Paddle tensors have no read-only flag, and Paddle refuses to build a misaligned view
(``test_paddle_cannot_make_misaligned_views``), so those two core cases have no Paddle counterpart.
"""

from __future__ import annotations

import ast
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from rmsprop_ops.paddle import RMSProp, load_ops
from rmsprop_ops.paddle._launch import invoke as _invoke

pytestmark = pytest.mark.paddle

NAN, INF = float("nan"), float("inf")


@pytest.fixture(autouse=True)
def dynamic_mode():
    paddle.disable_static()
    load_ops()


def T(a, dtype=None):
    return paddle.to_tensor(np.asarray(a, dtype=dtype))


def _rand(shape, seed, dtype="float32", positive=False):
    rs = np.random.RandomState(seed)
    return (rs.rand(*shape) + 0.1 if positive else rs.randn(*shape)).astype(dtype)


def _tensors(x):
    if isinstance(x, paddle.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for y in x for t in _tensors(y)]
    if isinstance(x, dict):
        return [t for y in x.values() for t in _tensors(y)]
    return []


def snapshot(*objs):
    """Every tensor reachable from objs with a bitwise copy of its contents."""
    return [(t, t.numpy().tobytes()) for o in objs for t in _tensors(o)]


def assert_unchanged(snap):
    for i, (t, before) in enumerate(snap):
        assert t.numpy().tobytes() == before, f"tensor #{i} ({t.name}) was modified"


def assert_raises(exc, pattern, fn):
    with pytest.raises(Exception) as info:
        fn()
    err = info.value
    assert type(err) is exc or isinstance(err, exc), f"expected {exc.__name__}, got {type(err).__name__}: {err}"
    assert re.search(pattern, str(err)), f"message {str(err)!r} does not match {pattern!r}"


# ---------------------------------------------------------------------------------------------- single op
def single_base(centered=False, dtype="float32", shape=(3,)):
    state = "float32" if dtype in ("float16", "bfloat16") else dtype
    t = {"Param": T(_rand(shape, 1, state)).astype(dtype), "Grad": T(_rand(shape, 2, state)).astype(dtype),
         "MeanSquare": T(_rand(shape, 3, state, True)), "Moment": T(_rand(shape, 4, state))}
    if centered:
        t["MeanGrad"] = T(_rand(shape, 5, state) * 0.1)
    a = dict(learning_rate=0.1, rho=0.9, epsilon=1e-6, momentum=0.5)
    return t, a


def _set(**kv):
    """A change to the op's tensors: values are tensors, or callables of the current tensors."""
    def change(t, a, keep):
        for k, v in kv.items():
            t[k] = v(t) if callable(v) else v
    return change


def _attr(**kv):
    def change(t, a, keep):
        a.update(kv)
    return change


def _alias(dst, src):
    def change(t, a, keep):
        t[dst] = t[src]
    return change


def _overlap(a_name, b_name):
    """Two inputs as overlapping slices (both contiguous) of one buffer."""
    def change(t, a, keep):
        buf = T(np.zeros(5, "float32"))
        keep.append(buf)
        t[a_name], t[b_name] = buf[0:3], buf[2:5]
    return change


def _strided(name, how):
    def change(t, a, keep):
        shape = t["Param"].shape
        if how == "column":  # a column of a wider matrix: strides (4,)
            base = T(np.zeros((shape[0], 4), "float32"))
            view = base[:, 1]
        else:  # a row of a transpose
            base = T(np.zeros((shape[0], 4), "float32"))
            view = base.transpose([1, 0])[2]
        keep.append(base)
        assert not view.is_contiguous()
        t[name] = view
    return change


def _leaf_param():
    def change(t, a, keep):
        p = paddle.create_parameter([3], "float32")
        assert not p.stop_gradient
        t["Param"] = p
    return change


def _fp16(**extra):
    def change(t, a, keep):
        t["Param"] = t["Param"].astype("float16")
        t["Grad"] = t["Grad"].astype("float16")
        for k, v in extra.items():
            t[k] = v
    return change


SINGLE = [
    # dtypes, per input
    ("grad-f64", _set(Grad=lambda t: t["Grad"].astype("float64")), TypeError,
     r"grad: expected dtype float32 \(the param's dtype\), got float64"),
    ("grad-int", _set(Grad=T(np.ones(3, "int32"))), TypeError, r"grad: expected dtype float32.*got int32"),
    ("ms-f64", _set(MeanSquare=lambda t: t["MeanSquare"].astype("float64")), TypeError,
     r"mean_square: expected dtype float32.*got float64"),
    ("ms-f16-for-f16", _fp16(MeanSquare=T(np.ones(3, "float16"))), TypeError,
     r"mean_square: expected dtype float32 \(the param's math type\), got float16"),
    ("moment-f64", _set(Moment=lambda t: t["Moment"].astype("float64")), TypeError,
     r"moment: expected dtype float32.*got float64"),
    ("master-f64", _fp16(MasterParam=T(np.ones(3, "float64"))), TypeError,
     r"master_param: expected dtype float32.*got float64"),
    ("master-for-f32", _set(MasterParam=T(np.ones(3, "float32"))), TypeError,
     r"master_param: master weights are for float16/bfloat16 params, got a float32 param"),
    ("param-int", _set(Param=T(np.ones(3, "int32")), Grad=T(np.ones(3, "int32"))), TypeError,
     r"param: expected a floating-point dtype \(float32, float64, float16, bfloat16\), got int32"),
    ("param-bool", _set(Param=T(np.ones(3, bool)), Grad=T(np.ones(3, bool))), TypeError,
     r"param: expected a floating-point dtype.*got bool"),
    ("param-complex", _set(Param=T(np.ones(3, "complex64")), Grad=T(np.ones(3, "complex64"))), TypeError,
     r"Param: expected a floating-point dtype.*got complex64"),
    ("param-uint8", _set(Param=T(np.ones(3, "uint8")), Grad=T(np.ones(3, "uint8"))), TypeError,
     r"Param: expected a floating-point dtype.*got uint8"),
    ("lr-int", _set(LearningRate=T(np.array(1, "int32"))), TypeError,
     r"lr: expected a floating-point scalar, got dtype int32"),
    ("lr-int64", _set(LearningRate=T(np.array([1], "int64"))), TypeError, r"lr: expected a floating-point scalar"),
    ("gradscale-int", _set(GradScale=T(np.array(1, "int32"))), TypeError,
     r"rescale_grad: expected a floating-point scalar, got dtype int32"),
    ("skip-uint8", _set(SkipUpdate=T(np.array(0, "uint8"))), TypeError,
     r"SkipUpdate: expected a bool or numeric dtype, got uint8"),
    # shapes, per input
    ("grad-shape", _set(Grad=T(np.ones(4, "float32"))), ValueError,
     r"grad: expected shape \(3,\) like param, got \(4,\)"),
    ("grad-rank", _set(Grad=T(np.ones((3, 1), "float32"))), ValueError, r"grad: expected shape \(3,\).*got \(3, 1\)"),
    ("ms-shape", _set(MeanSquare=T(np.ones(2, "float32"))), ValueError,
     r"mean_square: expected shape \(3,\).*got \(2,\)"),
    ("moment-shape", _set(Moment=T(np.ones(4, "float32"))), ValueError, r"moment: expected shape \(3,\).*got \(4,\)"),
    ("master-shape", _fp16(MasterParam=T(np.ones(4, "float32"))), ValueError, r"master_param: expected shape \(3,\)"),
    ("lr-two", _set(LearningRate=T(np.array([0.1, 0.2], "float32"))), ValueError,
     r"LearningRate: expected a tensor holding exactly one element, got shape \[2\]"),
    ("lr-empty", _set(LearningRate=T(np.zeros(0, "float32"))), ValueError,
     r"LearningRate: expected a tensor holding exactly one element, got shape \[0\]"),
    ("gradscale-two", _set(GradScale=T(np.ones((1, 2), "float32"))), ValueError,
     r"GradScale: expected a tensor holding exactly one element, got shape \[1, 2\]"),
    ("skip-two", _set(SkipUpdate=T(np.array([True, False]))), ValueError,
     r"SkipUpdate: expected a tensor holding exactly one element"),
    # Python types of the tensor inputs
    ("grad-numpy", _set(Grad=np.ones(3, "float32")), TypeError, r"Grad: expected a paddle.Tensor, got ndarray"),
    ("grad-none", _set(Grad=None), TypeError, r"Grad: expected a paddle.Tensor, got None"),
    ("param-list", _set(Param=lambda t: [t["Param"]]), TypeError, r"Param: expected a paddle.Tensor, got list of 1"),
    ("ms-float", _set(MeanSquare=0.0), TypeError, r"MeanSquare: expected a paddle.Tensor, got float"),
    ("moment-missing", _set(Moment=None), ValueError,
     r"moment: expected an array \(momentum=0.5\d* > 0 needs a moment buffer\), got None"),
    ("lr-float", _set(LearningRate=0.1), TypeError, r"LearningRate: expected a paddle.Tensor, got float"),
    # attribute types
    ("rho-str", _attr(rho="0.9"), TypeError, r"rho: expected a float, got str \('0.9'\)"),
    ("rho-bool", _attr(rho=True), TypeError, r"rho: expected a float, got bool"),
    ("lr-none", _attr(learning_rate=None), TypeError, r"learning_rate: expected a float, got NoneType"),
    ("eps-tensor", _attr(epsilon=T(np.float32(1e-6))), TypeError, r"epsilon: expected a float, got Tensor"),
    ("eps_in_sqrt-int", _attr(eps_in_sqrt=1), TypeError, r"eps_in_sqrt: expected a bool, got int"),
    ("lr_in_momentum-str", _attr(lr_in_momentum="no"), TypeError, r"lr_in_momentum: expected a bool, got str"),
    ("cawd-none", _attr(clip_after_weight_decay=None), TypeError, r"clip_after_weight_decay: expected a bool"),
    ("wdmode-float", _attr(weight_decay_mode=1.0), TypeError,
     r"weight_decay_mode: expected an int code of \['l2', 'l1', 'decoupled'\] \(0..2\), got float"),
    ("wdmode-str", _attr(weight_decay_mode="l1"), TypeError, r"weight_decay_mode: expected an int code.*got str"),
    ("wdmode-3", _attr(weight_decay_mode=3), ValueError, r"weight_decay_mode: expected an int code.*got 3"),
    ("wdmode-neg", _attr(weight_decay_mode=-1), ValueError, r"weight_decay_mode: expected an int code.*got -1"),
    # attribute ranges (non-finite values: the table below)
    ("rho-neg", _attr(rho=-0.1), ValueError, r"rho: expected a value in \[0, 1\], got -0.1"),
    ("rho-high", _attr(rho=1.5), ValueError, r"rho: expected a value in \[0, 1\], got 1.5"),
    ("eps-zero", _attr(epsilon=0.0), ValueError, r"epsilon: expected a value > 0, got 0"),
    ("eps-neg", _attr(epsilon=-1e-8), ValueError, r"epsilon: expected a value > 0"),
    ("momentum-neg", _attr(momentum=-0.5), ValueError, r"momentum: expected a value >= 0, got -0.5"),
    ("lr-neg", _attr(learning_rate=-0.1), ValueError, r"learning_rate: expected a value >= 0, got -0.1"),
    ("wd-neg", _attr(weight_decay=-0.1), ValueError, r"weight_decay: expected a value >= 0, got -0.1"),
    ("rescale-zero", _attr(rescale_grad=0.0), ValueError, r"rescale_grad: expected a value > 0, got 0"),
    ("rescale-neg", _attr(rescale_grad=-2.0), ValueError, r"rescale_grad: expected a value > 0, got -2"),
    ("lr-over-f32", _attr(learning_rate=1e39), ValueError,
     r"learning_rate: expected a value representable as float32 .*got 1e\+39"),
    ("clip-over-f32", _attr(clip_gradient=-1e300), ValueError,
     r"clip_gradient: expected a value representable as float32"),
    ("gradscale-and-rescale", lambda t, a, k: (t.update(GradScale=T(np.float32(0.5))), a.update(rescale_grad=2.0)),
     ValueError, r"rescale_grad: expected the default 1 when a GradScale tensor is given.*got 2"),
    # values of scalar tensors on the CPU (read on the host: no device sync)
    ("lr-tensor-nan", _set(LearningRate=T(np.float32(NAN))), ValueError,
     r"LearningRate: expected a finite number, got nan"),
    ("lr-tensor-inf", _set(LearningRate=T(np.float64(INF))), ValueError,
     r"LearningRate: expected a finite number, got inf"),
    ("lr-tensor-neg", _set(LearningRate=T(np.float32(-0.1))), ValueError, r"LearningRate: expected a value >= 0"),
    ("gradscale-tensor-nan", _set(GradScale=T(np.float32(NAN))), ValueError,
     r"GradScale: expected a finite number, got nan"),
    ("gradscale-tensor-zero", _set(GradScale=T(np.float32(0))), ValueError, r"GradScale: expected a value > 0, got 0"),
    # memory: aliasing, overlap, strides, autograd leaves
    ("alias-param-ms", _alias("MeanSquare", "Param"), ValueError,
     r"mean_square: memory overlaps param \(every updated buffer needs memory of its own\)"),
    ("alias-grad-param", _alias("Grad", "Param"), ValueError, r"grad: memory overlaps param"),
    ("alias-moment-ms", _alias("Moment", "MeanSquare"), ValueError, r"moment: memory overlaps mean_square"),
    ("overlap-ms-moment", _overlap("MeanSquare", "Moment"), ValueError, r"moment: memory overlaps mean_square"),
    ("overlap-param-grad", _overlap("Param", "Grad"), ValueError, r"grad: memory overlaps param"),
    ("strided-param", _strided("Param", "column"), ValueError,
     r"Param: expected a contiguous tensor .*got a view with strides \[4\]"),
    ("strided-ms", _strided("MeanSquare", "transpose"), ValueError, r"MeanSquare: expected a contiguous tensor"),
    ("strided-moment", _strided("Moment", "column"), ValueError, r"Moment: expected a contiguous tensor"),
    ("leaf-param", _leaf_param(), ValueError,
     r"Param: expected a tensor with stop_gradient=True .*got a leaf with stop_gradient=False; pass param.detach\(\)"),
]

CENTERED = [
    ("mg-missing", _set(MeanGrad=None), TypeError, r"MeanGrad: expected a paddle.Tensor, got None"),
    ("mg-f64", _set(MeanGrad=lambda t: t["MeanGrad"].astype("float64")), TypeError,
     r"mean_grad: expected dtype float32.*got float64"),
    ("mg-shape", _set(MeanGrad=T(np.ones(4, "float32"))), ValueError, r"mean_grad: expected shape \(3,\).*got \(4,\)"),
    ("mg-alias-moment", _alias("MeanGrad", "Moment"), ValueError,
     r"mean_grad: memory overlaps moment|moment: memory overlaps mean_grad"),
    ("mg-strided", _strided("MeanGrad", "transpose"), ValueError, r"MeanGrad: expected a contiguous tensor"),
]

FLOAT_ATTRS = ["learning_rate", "rho", "epsilon", "momentum", "weight_decay", "rescale_grad", "clip_gradient",
               "clip_weights"]
NONFINITE = [(f"{a}-{v}", _attr(**{a: v}), ValueError, rf"{a}: expected a finite number, got {v}")
             for a in FLOAT_ATTRS for v in (NAN, INF, -INF)]


def _run_single_case(op, centered, change, exc, pattern):
    t, a = single_base(centered)
    keep = []
    change(t, a, keep)
    snap = snapshot(t, keep)
    assert_raises(exc, pattern, lambda: _invoke(op, t, a))
    assert_unchanged(snap)


@pytest.mark.parametrize("case", SINGLE + NONFINITE, ids=[c[0] for c in SINGLE + NONFINITE])
@pytest.mark.parametrize("centered", [False, True])
def test_single_op_bad_input(case, centered):
    _, change, exc, pattern = case
    _run_single_case("rmsprop_centered" if centered else "rmsprop", centered, change, exc, pattern)


@pytest.mark.parametrize("case", CENTERED, ids=[c[0] for c in CENTERED])
def test_centered_op_bad_mean_grad(case):
    _, change, exc, pattern = case
    _run_single_case("rmsprop_centered", True, change, exc, pattern)


def test_base_of_a_good_call_changes():
    """The control for the tables: the same base call without the change updates the tensors."""
    t, a = single_base()
    snap = snapshot(t["Param"], t["MeanSquare"], t["Moment"])
    _invoke("rmsprop", t, a)
    for x, before in snap:
        assert x.numpy().tobytes() != before


def test_keyword_call_of_the_public_function_is_checked():
    t, a = single_base()
    fn = load_ops().rmsprop_ops_rmsprop
    kw = dict(param=t["Param"], grad=T(np.ones(4, "float32")), meansquare=t["MeanSquare"], moment=t["Moment"],
              masterparam=None, learningrate=None, gradscale=None, skipupdate=None, currentstep=None,
              eps_in_sqrt=True, lr_in_momentum=True, weight_decay=0.0, weight_decay_mode=0, rescale_grad=1.0,
              clip_gradient=-1.0, clip_after_weight_decay=True, clip_weights=-1.0, step=1.0, nesterov=False,
              bias_correction=False, maximize=False, **a)
    snap = snapshot(t)
    assert_raises(TypeError, r"Grad: expected a paddle.Tensor, got ndarray",
                  lambda: fn(**dict(kw, grad=np.ones(3, "float32"))))
    assert_raises(ValueError, r"grad: expected shape \(3,\)", lambda: fn(**kw))
    assert_raises(TypeError, r"missing a required argument: 'clip_weights'",
                  lambda: fn(**{k: v for k, v in kw.items() if k != "clip_weights"}))
    assert_unchanged(snap)


def test_strided_grad_is_read_correctly():
    """A strided Grad is only read, so Paddle's contiguous copy of it is harmless: same result."""
    t1, a = single_base()
    t2, _ = single_base()
    base = T(np.zeros((3, 4), "float32"))
    base[:, 2] = t2["Grad"]
    t2["Grad"] = base[:, 2]
    assert not t2["Grad"].is_contiguous()
    _invoke("rmsprop", t1, a)
    _invoke("rmsprop", t2, a)
    for k in ("Param", "MeanSquare", "Moment"):
        np.testing.assert_array_equal(t1[k].numpy(), t2[k].numpy())


def test_paddle_cannot_make_misaligned_views():
    raw = T(np.zeros(13, "uint8"))
    with pytest.raises(ValueError, match="must be multiple of 4"):
        raw[1:].view(paddle.float32)


def test_lr_tensor_values_are_checked_only_where_reading_them_is_free():
    """A CPU LearningRate tensor is read on the host; the nan is rejected before anything is written (GPU
    tensors are read by the kernel only; see docs/guarantees.md)."""
    t, a = single_base()
    t["LearningRate"] = T(np.float32(NAN))
    snap = snapshot(t)
    assert_raises(ValueError, "LearningRate: expected a finite number", lambda: _invoke("rmsprop", t, a))
    assert_unchanged(snap)
    t["LearningRate"] = T(np.float32(0.05))
    _invoke("rmsprop", t, a)
    assert np.isfinite(t["Param"].numpy()).all()


# ----------------------------------------------------------------------------------------------- multi op
N = 3


def multi_base(centered=False):
    shapes = [(3,), (2, 2), (5,)]
    t = {"Param": [T(_rand(s, 10 + i)) for i, s in enumerate(shapes)],
         "Grad": [T(_rand(s, 20 + i)) for i, s in enumerate(shapes)],
         "MeanSquare": [T(_rand(s, 30 + i, positive=True)) for i, s in enumerate(shapes)],
         "Moment": [T(_rand(s, 40 + i)) for i, s in enumerate(shapes)]}
    if centered:
        t["MeanGrad"] = [T(_rand(s, 50 + i) * 0.1) for i, s in enumerate(shapes)]
    a = dict(learning_rate=0.1, rho=0.9, epsilon=1e-6, momentum=0.5, lr_mults=[1.0, 0.5, 2.0],
             weight_decays=[0.0, 0.01, 0.1])
    return t, a


def _item(name, i, value):
    def change(t, a, keep):
        lst = list(t[name])
        lst[i] = value(t) if callable(value) else value
        t[name] = lst
    return change


def _mlist(name, fn):
    def change(t, a, keep):
        t[name] = fn(t[name])
    return change


def _mstrided(name, i):
    def change(t, a, keep):
        shape = t["Param"][i].shape
        base = T(np.zeros(shape + [2], "float32"))
        keep.append(base)
        lst = list(t[name])
        lst[i] = base[..., 0]
        assert not lst[i].is_contiguous()
        t[name] = lst
    return change


MULTI = [
    ("grad-len", _mlist("Grad", lambda v: v[:2]), ValueError, r"Grad: expected 3 tensors \(one per Param\), got 2"),
    ("ms-len", _mlist("MeanSquare", lambda v: v + v[:1]), ValueError, r"MeanSquare: expected 3 tensors.*got 4"),
    ("moment-len", _mlist("Moment", lambda v: v[:1]), ValueError, r"Moment: expected 3 tensors.*got 1"),
    ("param-len", _mlist("Param", lambda v: v[:2]), ValueError, r"Grad: expected 2 tensors.*got 3"),
    ("grad-tensor", _mlist("Grad", lambda v: v[0]), TypeError,
     r"Grad: expected a list of paddle.Tensor \(one per Param\), got Tensor"),
    ("param-none", _set(Param=None), TypeError, r"Param: expected a list of paddle.Tensor, got None"),
    ("grad-item-none", _item("Grad", 1, None), TypeError, r"Grad\[1\]: expected a paddle.Tensor, got NoneType"),
    ("grad-item-numpy", _item("Grad", 2, np.ones(5, "float32")), TypeError,
     r"Grad\[2\]: expected a paddle.Tensor, got ndarray"),
    ("grad-item-shape", _item("Grad", 2, T(np.ones(6, "float32"))), ValueError,
     r"grads\[2\]: expected shape \(5,\) like params\[2\], got \(6,\)"),
    ("grad-item-dtype", _item("Grad", 1, lambda t: t["Grad"][1].astype("float64")), TypeError,
     r"grads\[1\]: expected dtype float32.*got float64"),
    ("ms-item-dtype", _item("MeanSquare", 2, lambda t: t["MeanSquare"][2].astype("float16")), TypeError,
     r"mean_squares\[2\]: expected dtype float32.*got float16"),
    ("moment-item-shape", _item("Moment", 1, T(np.ones(4, "float32"))), ValueError,
     r"moments\[1\]: expected shape \(2, 2\) like params\[1\], got \(4,\)"),
    ("mixed-param-dtypes", lambda t, a, k: [_item(n, 1, lambda t, n=n: t[n][1].astype("float64"))(t, a, k)
                                             for n in ("Param", "Grad", "MeanSquare", "Moment")],
     TypeError, r"params\[1\]: expected float32 like params\[0\], got float64"),
    ("param-item-int", lambda t, a, k: (_item("Param", 0, T(np.ones(3, "int32")))(t, a, k),
                                        _item("Grad", 0, T(np.ones(3, "int32")))(t, a, k)),
     TypeError, r"params\[0\]: expected a floating-point dtype.*got int32"),
    ("param-item-complex", lambda t, a, k: (_item("Param", 1, T(np.ones(2, "complex64")))(t, a, k),
                                            _item("Grad", 1, T(np.ones(2, "complex64")))(t, a, k)),
     TypeError, r"Param\[1\]: expected a floating-point dtype.*got complex64"),
    ("alias-params", lambda t, a, k: [_item(n, 2, lambda t, n=n: t[n][0] if n == "Param" else t[n][0].clone())(t, a, k)
                                       for n in t], ValueError, r"params\[2\]: memory overlaps params\[0\]"),
    ("alias-ms-param", _item("MeanSquare", 0, lambda t: t["Param"][0]), ValueError,
     r"mean_squares\[0\]: memory overlaps params\[0\]|params\[0\]: memory overlaps mean_squares\[0\]"),
    ("alias-grad-other-param", _item("Grad", 0, lambda t: t["Param"][0]), ValueError,
     r"grads\[0\]: memory overlaps params\[0\]"),
    ("strided-param-item", _mstrided("Param", 1), ValueError, r"Param\[1\]: expected a contiguous tensor"),
    ("strided-moment-item", _mstrided("Moment", 2), ValueError, r"Moment\[2\]: expected a contiguous tensor"),
    ("lr_mults-len", _attr(lr_mults=[1.0, 2.0]), ValueError,
     r"lr_mults: expected 3 values \(one per Param\) or \[\], got 2"),
    ("lr_mults-type", _attr(lr_mults="abc"), TypeError, r"lr_mults: expected a list of floats .*got str"),
    ("lr_mults-item-bool", _attr(lr_mults=[1.0, True, 1.0]), TypeError, r"lr_mults\[1\]: expected a float, got bool"),
    ("lr_mults-nan", _attr(lr_mults=[1.0, NAN, 1.0]), ValueError,
     r"lr_mults\[1\]: expected a finite value >= 0, got nan"),
    ("lr_mults-inf", _attr(lr_mults=[INF, 1.0, 1.0]), ValueError,
     r"lr_mults\[0\]: expected a finite value >= 0, got inf"),
    ("lr_mults-neg", _attr(lr_mults=[1.0, 1.0, -1.0]), ValueError,
     r"lr_mults\[2\]: expected a finite value >= 0, got -1"),
    ("weight_decays-nan", _attr(weight_decays=[0.0, NAN, 0.0]), ValueError,
     r"weight_decays\[1\]: expected a finite value >= 0, got nan"),
    ("weight_decays--inf", _attr(weight_decays=[-INF, 0.0, 0.0]), ValueError,
     r"weight_decays\[0\]: expected a finite value >= 0, got -inf"),
    ("weight_decays-neg", _attr(weight_decays=[0.0, 0.0, -0.5]), ValueError,
     r"weight_decays\[2\]: expected a finite value >= 0"),
    ("weight_decays-len", _attr(weight_decays=[0.0]), ValueError, r"weight_decays: expected 3 values"),
    ("lr-tensor-nan", _set(LearningRate=T(np.float32(NAN))), ValueError,
     r"LearningRate: expected a finite number, got nan"),
    ("skip-two", _set(SkipUpdate=T(np.array([True, True]))), ValueError,
     r"SkipUpdate: expected a tensor holding exactly one"),
    ("moment-missing", _set(Moment=None), ValueError, r"moments\[0\]: expected an array \(momentum=0.5\d* > 0"),
] + [(f"{a}-{v}", _attr(**{a: v}), ValueError, rf"{a}: expected a finite number, got {v}")
     for a in FLOAT_ATTRS for v in (NAN, INF, -INF)]

MULTI_CENTERED = [
    ("mg-len", _mlist("MeanGrad", lambda v: v[:2]), ValueError, r"MeanGrad: expected 3 tensors.*got 2"),
    ("mg-none", _set(MeanGrad=None), TypeError, r"MeanGrad: expected a list of paddle.Tensor, got None"),
    ("mg-item-shape", _item("MeanGrad", 0, T(np.ones(2, "float32"))), ValueError,
     r"mean_grads\[0\]: expected shape \(3,\)"),
    ("mg-alias-ms", _item("MeanGrad", 1, lambda t: t["MeanSquare"][1]), ValueError,
     r"mean_grads\[1\]: memory overlaps mean_squares\[1\]|mean_squares\[1\]: memory overlaps mean_grads\[1\]"),
]


def _run_multi_case(centered, change, exc, pattern):
    t, a = multi_base(centered)
    keep = []
    change(t, a, keep)
    snap = snapshot(t, keep)
    assert_raises(exc, pattern, lambda: _invoke("rmsprop_centered_multi" if centered else "rmsprop_multi", t, a))
    assert_unchanged(snap)


@pytest.mark.parametrize("case", MULTI, ids=[c[0] for c in MULTI])
@pytest.mark.parametrize("centered", [False, True])
def test_multi_op_bad_input(case, centered):
    _run_multi_case(centered, *case[1:])


@pytest.mark.parametrize("case", MULTI_CENTERED, ids=[c[0] for c in MULTI_CENTERED])
def test_centered_multi_op_bad_mean_grad(case):
    _run_multi_case(True, *case[1:])


# ------------------------------------------------------------------------------------------ zero-size / empty
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 4)])
def test_zero_size_tensors_are_a_no_op(centered, shape):
    t, a = single_base(centered, shape=shape)
    snap = snapshot(t)
    _invoke("rmsprop_centered" if centered else "rmsprop", t, a)
    assert_unchanged(snap)
    assert all(x.shape == list(shape) for x in _tensors(t))


def test_zero_size_float16_with_master_is_a_no_op():
    t, a = single_base(dtype="float16", shape=(0,))
    t["MasterParam"] = T(np.zeros(0, "float32"))
    _invoke("rmsprop", t, a)


@pytest.mark.parametrize("change,exc,pattern", [
    (_set(Grad=T(np.ones(0, "float64"))), TypeError, r"grad: expected dtype float32.*got float64"),
    (_set(Grad=T(np.ones((0, 2), "float32"))), ValueError, r"grad: expected shape \(0,\) like param, got \(0, 2\)"),
    (_set(Param=T(np.ones(0, "int32")), Grad=T(np.ones(0, "int32"))), TypeError, r"param: expected a floating-point"),
], ids=["dtype", "shape", "int-param"])
def test_zero_size_tensors_are_still_checked(change, exc, pattern):
    t, a = single_base(shape=(0,))
    a["momentum"] = 0.0
    t.pop("Moment")
    change(t, a, [])
    assert_raises(exc, pattern, lambda: _invoke("rmsprop", t, a))


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("where", [0, 1, 2])
def test_multi_op_with_zero_size_sets_updates_the_others_exactly(centered, where):
    """Paddle drops an optional list input holding a zero-size tensor before the kernel sees it; the
    wrapper leaves such no-op sets out, so the other sets get exactly the per-tensor op's result."""
    t, a = multi_base(centered)
    for name in t:
        lst = list(t[name])
        lst[where] = T(np.zeros((0, 2), "float32"))
        t[name] = lst
    ref = {k: [x.clone() for x in v] for k, v in t.items()}
    _invoke("rmsprop_centered_multi" if centered else "rmsprop_multi", t, a)
    for i in range(N):
        if i == where:
            continue
        one = {k: ref[k][i] for k in ref}
        attrs = {k: v for k, v in a.items() if k not in ("lr_mults", "weight_decays")}
        attrs.update(learning_rate=float(np.float32(a["learning_rate"] * a["lr_mults"][i])),
                     weight_decay=a["weight_decays"][i])
        _invoke("rmsprop_centered" if centered else "rmsprop", one, attrs)
        for k in t:
            np.testing.assert_array_equal(t[k][i].numpy(), one[k].numpy())
    assert t["Param"][where].shape == [0, 2]


@pytest.mark.parametrize("op", ["rmsprop_multi", "rmsprop_centered_multi"])
def test_multi_op_with_empty_lists_is_a_no_op(op):
    t = {"Param": [], "Grad": [], "MeanSquare": [], "Moment": []}
    if "centered" in op:
        t["MeanGrad"] = []
    _invoke(op, t, dict(learning_rate=0.1, rho=0.9, momentum=0.5))


# ------------------------------------------------------------------------------------ static (PIR) programs
def _static_op_program(g_shape=(3,), g_dtype="float32", attrs=None, lr_value=None):
    """A program applying the checked single op to persistable param / accumulators and a fed grad."""
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        const = paddle.nn.initializer.Constant
        p = paddle.static.create_parameter([3], "float32", default_initializer=const(0.5))
        ms = paddle.static.create_parameter([3], "float32", default_initializer=const(0.25))
        mom = paddle.static.create_parameter([3], "float32", default_initializer=const(0.125))
        g = paddle.static.data("g", list(g_shape), g_dtype)
        lr = paddle.static.data("lr", [], "float32") if lr_value is not None else None
        a = dict(learning_rate=0.1, rho=0.9, epsilon=1e-6, momentum=0.5)
        a.update(attrs or {})
        _invoke("rmsprop", {"Param": p, "Grad": g, "MeanSquare": ms, "Moment": mom, "LearningRate": lr}, a)
    return main, startup, [p.name, ms.name, mom.name]


@pytest.mark.parametrize("attrs,exc,pattern", [
    (dict(rho=NAN), ValueError, r"rho: expected a finite number, got nan"),
    (dict(epsilon=-INF), ValueError, r"epsilon: expected a finite number, got -inf"),
    (dict(rho="0.9"), TypeError, r"rho: expected a float, got str"),
    (dict(momentum=-1.0), ValueError, r"momentum: expected a value >= 0"),
    (dict(weight_decay_mode=7), ValueError, r"weight_decay_mode: expected an int code"),
], ids=["rho-nan", "eps--inf", "rho-str", "momentum-neg", "wdmode"])
def test_static_program_rejects_bad_attributes_while_building(attrs, exc, pattern):
    paddle.enable_static()
    try:
        assert_raises(exc, pattern, lambda: _static_op_program(attrs=attrs))
    finally:
        paddle.disable_static()


@pytest.mark.parametrize("g_shape,g_dtype,lr,exc,pattern", [
    ((4,), "float32", None, ValueError, r"grad: expected shape \(3,\) like param, got \(4,\)"),
    ((3,), "float64", None, TypeError, r"grad: expected dtype float32 \(the param's dtype\), got float64"),
    ((3,), "float32", NAN, ValueError, r"LearningRate: expected a finite number, got nan"),
    ((3,), "float32", -1.0, ValueError, r"LearningRate: expected a value >= 0"),
], ids=["grad-shape", "grad-dtype", "lr-nan", "lr-neg"])
def test_static_program_rejects_bad_tensors_at_run_and_writes_nothing(g_shape, g_dtype, lr, exc, pattern):
    paddle.enable_static()
    try:
        main, startup, names = _static_op_program(g_shape, g_dtype, lr_value=lr)
        exe, scope = paddle.static.Executor(paddle.CPUPlace()), paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            before = [np.array(scope.var(n).get_tensor()).copy() for n in names]
            feed = {"g": np.ones(g_shape, g_dtype)}
            if lr is not None:
                feed["lr"] = np.array(lr, "float32")
            assert_raises(exc, pattern, lambda: exe.run(main, feed=feed))
            for n, b in zip(names, before):
                np.testing.assert_array_equal(np.array(scope.var(n).get_tensor()), b)
            if lr is not None:  # the same program runs with a good learning rate
                exe.run(main, feed={"g": np.ones(g_shape, g_dtype), "lr": np.array(0.1, "float32")})
                assert not np.array_equal(np.array(scope.var(names[0]).get_tensor()), before[0])
    finally:
        paddle.disable_static()


# ------------------------------------------------------------------------------------- optimizer: construction
def _layer():
    layer = paddle.nn.Linear(3, 2)
    return layer, layer.parameters()


CTOR = [
    # parameters
    ("params-empty", dict(parameters=[]), ValueError,
     r"parameters: expected at least one parameter or parameter group, got an empty list"),
    ("params-empty-tuple", dict(parameters=()), ValueError, r"parameters: expected at least one parameter"),
    ("params-empty-group", dict(parameters=[{"params": []}]), ValueError,
     r"parameters\[0\]\['params'\]: expected at least one parameter, got an empty list"),
    ("params-tensor", lambda p: dict(parameters=p[0]), TypeError,
     r"parameters: expected a list of parameters or of parameter-group dicts, got EagerParamBase"),
    ("params-dict", lambda p: dict(parameters={"params": p}), TypeError, r"parameters: expected a list.*got dict"),
    ("params-str", dict(parameters="weights"), TypeError, r"parameters: expected a list.*got str"),
    ("params-int", dict(parameters=3), TypeError, r"parameters: expected a list.*got int"),
    ("params-ints", dict(parameters=[1, 2]), TypeError,
     r"parameters\[0\]: expected a parameter \(paddle Tensor\), got int"),
    ("params-numpy", dict(parameters=[np.ones(3)]), TypeError, r"parameters\[0\]: expected a parameter.*got ndarray"),
    ("params-none-item", lambda p: dict(parameters=[p[0], None]), TypeError,
     r"parameters\[1\]: expected a parameter.*got NoneType"),
    ("params-mixed", lambda p: dict(parameters=[p[0], {"params": [p[1]]}]), TypeError,
     r"parameters: expected a list of parameters or a list of parameter-group dicts, got a mix"),
    ("group-no-params", lambda p: dict(parameters=[{"weight": p}]), ValueError,
     r"parameters\[0\]: expected a parameter group with a 'params' entry, got keys \['weight'\]"),
    ("group-params-str", dict(parameters=[{"params": "w"}]), TypeError,
     r"parameters\[0\]\['params'\]: expected a list of parameters.*got str"),
    ("group-params-item", lambda p: dict(parameters=[{"params": [p[0], 1.0]}]), TypeError,
     r"parameters\[0\]\['params'\]\[1\]: expected a parameter.*got float"),
    # grad_clip, name
    ("grad_clip-str", dict(grad_clip="norm"), TypeError,
     r"grad_clip: expected None or a paddle.nn.ClipGradByGlobalNorm, ClipGradByNorm or ClipGradByValue, got str"),
    ("grad_clip-float", dict(grad_clip=1.0), TypeError, r"grad_clip: expected None or .*got float"),
    ("grad_clip-class", dict(grad_clip=paddle.nn.ClipGradByValue), TypeError,
     r"grad_clip: expected None or .*got type"),
    ("name-int", dict(name=3), TypeError, r"name: expected None or a str, got int"),
    # weight_decay
    ("wd-str", dict(weight_decay="0.1"), TypeError, r"weight_decay: expected a float, L1Decay or L2Decay, got str"),
    ("wd-neg", dict(weight_decay=-0.1), ValueError, r"weight_decay: expected a value >= 0"),
    ("wd-l2-nan", dict(weight_decay=paddle.regularizer.L2Decay(NAN)), ValueError,
     r"weight_decay: expected a finite number, got nan"),
    ("wd-l1-inf", dict(weight_decay=paddle.regularizer.L1Decay(INF)), ValueError,
     r"weight_decay: expected a finite number, got inf"),
    ("wd-l2-neg", dict(weight_decay=paddle.regularizer.L2Decay(-1.0)), ValueError,
     r"weight_decay: expected a value >= 0"),
    # learning_rate
    ("lr-none", dict(learning_rate=None), ValueError, r"learning_rate: expected a float or an LRScheduler, got None"),
    ("lr-str", dict(learning_rate="0.1"), TypeError, r"learning_rate: expected a float or an LRScheduler, got str"),
    ("lr-bool", dict(learning_rate=True), TypeError, r"learning_rate: expected a float or an LRScheduler, got bool"),
    ("lr-tensor", dict(learning_rate=T(np.float32(0.1))), TypeError,
     r"learning_rate: expected a float or an LRScheduler, got Tensor"),
    ("lr-neg", dict(learning_rate=-0.1), ValueError, r"learning_rate: expected a value >= 0, got -0.1"),
    # rule hyper-parameters
    ("rho-neg", dict(rho=-0.1), ValueError, r"rho: expected a value in \[0, 1\]"),
    ("rho-high", dict(rho=1.5), ValueError, r"rho: expected a value in \[0, 1\]"),
    ("rho-none", dict(rho=None), ValueError, r"rho: expected a number, got None"),
    ("rho-str", dict(rho="0.9"), TypeError, r"rho: expected a float, got str"),
    ("rho-bool", dict(rho=True), TypeError, r"rho: expected a float, got bool"),
    ("eps-zero", dict(epsilon=0.0), ValueError, r"epsilon: expected a value > 0, got 0"),
    ("eps-neg", dict(epsilon=-1e-8), ValueError, r"epsilon: expected a value > 0"),
    ("eps-str", dict(epsilon="1e-6"), TypeError, r"epsilon: expected a float, got str"),
    ("momentum-neg", dict(momentum=-0.5), ValueError, r"momentum: expected a value >= 0"),
    ("momentum-list", dict(momentum=[0.9]), TypeError, r"momentum: expected a float, got list"),
    ("clip_weights-str", dict(clip_weights="1"), TypeError, r"clip_weights: expected a float, got str"),
] + [(f"{k}-{v!r}", dict(**{k: v}), TypeError, rf"{k}: expected a bool, got")
     for k in ("centered", "fused", "multi_precision", "eps_in_sqrt", "lr_in_momentum") for v in (1, "yes", None)
     ] + [(f"{k}-{v}", dict(**{k: v}), ValueError, rf"{k}: expected a finite number, got {v}")
          for k in ("learning_rate", "rho", "epsilon", "momentum", "weight_decay", "clip_weights")
          for v in (NAN, INF, -INF)]

GROUPS = [
    ("g-rho-nan", {"rho": NAN}, ValueError, r"parameters\[0\]: rho: expected a finite number, got nan"),
    ("g-rho-high", {"rho": 2.0}, ValueError, r"parameters\[0\]: rho: expected a value in \[0, 1\]"),
    ("g-eps-zero", {"epsilon": 0.0}, ValueError, r"parameters\[0\]: epsilon: expected a value > 0"),
    ("g-eps-inf", {"epsilon": INF}, ValueError, r"parameters\[0\]: epsilon: expected a finite number, got inf"),
    ("g-momentum--inf", {"momentum": -INF}, ValueError,
     r"parameters\[0\]: momentum: expected a finite number, got -inf"),
    ("g-lr-nan", {"learning_rate": NAN}, ValueError, r"parameters\[0\].learning_rate: expected a scale >= 0, got nan"),
    ("g-lr-inf", {"learning_rate": INF}, ValueError, r"parameters\[0\].learning_rate: expected a scale >= 0, got inf"),
    ("g-lr-neg", {"learning_rate": -1.0}, ValueError, r"parameters\[0\].learning_rate: expected a scale >= 0, got -1"),
    ("g-lr-str", {"learning_rate": "1"}, ValueError, r"parameters\[0\].learning_rate: expected a scale >= 0, got '1'"),
    ("g-wd-nan", {"weight_decay": NAN}, ValueError, r"weight_decay: expected a finite number, got nan"),
    ("g-wd-str", {"weight_decay": "x"}, TypeError,
     r"parameters\[0\].weight_decay: expected a float, L1Decay or L2Decay, got str"),
    ("g-centered-str", {"centered": "yes"}, TypeError, r"parameters\[0\].centered: expected a bool, got str"),
]


@pytest.mark.parametrize("case", CTOR, ids=[c[0] for c in CTOR])
@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_constructor_bad_arguments(case, mode):
    _, kw, exc, pattern = case
    layer, params = _layer()
    snap = snapshot(params)
    if callable(kw):
        kw = kw(params)
    args = dict(learning_rate=0.01, parameters=params)
    args.update(kw)
    if mode == "static":
        paddle.enable_static()
        if args["parameters"] is params:
            args["parameters"] = None  # a program's parameters: all of them
    try:
        assert_raises(exc, pattern, lambda: RMSProp(**args))
    finally:
        paddle.disable_static()
    assert_unchanged(snap)


@pytest.mark.parametrize("case", GROUPS, ids=[c[0] for c in GROUPS])
def test_parameter_group_bad_values(case):
    _, group, exc, pattern = case
    layer, params = _layer()
    assert_raises(exc, pattern, lambda: RMSProp(0.01, parameters=[{"params": params[:1], **group},
                                                                    {"params": params[1:]}]))


def test_paddle_rmsprop_itself_fails_on_an_empty_parameter_list():
    """Why ours raises ValueError: Paddle's RMSProp has no defined behaviour for [] (IndexError)."""
    with pytest.raises(IndexError):
        paddle.optimizer.RMSProp(0.01, parameters=[]).step()


def test_integer_learning_rate_and_generator_parameters_are_accepted():
    """Where Paddle's own checks are stricter than needed (an int learning rate) or looser (any iterable of
    parameters), ours accepts what is unambiguous, and gets the same result as the float / list form."""
    results = []
    for lr, gen in ((1, True), (1.0, False)):
        paddle.seed(0)
        layer, params = _layer()
        opt = RMSProp(lr, parameters=(p for p in params) if gen else params)
        layer(paddle.ones([2, 3])).sum().backward()
        opt.step()
        results.append([p.numpy() for p in params])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- optimizer: learning-rate values
def _trained(fused, lr=0.01, steps=2):
    paddle.seed(1)
    layer = paddle.nn.Linear(3, 2)
    opt = RMSProp(lr, parameters=layer.parameters(), momentum=0.5, centered=True, fused=fused)
    for _ in range(steps):
        layer(paddle.ones([2, 3])).sum().backward()
        opt.step()
        opt.clear_grad()
    layer(paddle.ones([2, 3])).sum().backward()  # grads present for the failing step
    return layer, opt


def _opt_state(layer, opt):
    accs = [v for per in opt._accumulators.values() for v in per.values()]
    return [*layer.parameters(), *[p.grad for p in layer.parameters()], *accs]


@pytest.mark.parametrize("value,exc,pattern", [
    (NAN, ValueError, r"set_lr: value: expected a finite number, got nan"),
    (INF, ValueError, r"set_lr: value: expected a finite number, got inf"),
    (-INF, ValueError, r"set_lr: value: expected a finite number, got -inf"),
    (-0.1, ValueError, r"set_lr: value: expected a value >= 0, got -0.1"),
    ("0.1", TypeError, r"set_lr: value: expected a float, got str"),
    (None, TypeError, r"set_lr: value: expected a float, got NoneType"),
    (True, TypeError, r"set_lr: value: expected a float, got bool"),
    (np.ones(1), TypeError, r"set_lr: value: expected a float, got ndarray"),
], ids=["nan", "inf", "-inf", "neg", "str", "none", "bool", "array"])
@pytest.mark.parametrize("fused", [False, True])
def test_set_lr_bad_value_is_rejected_and_changes_nothing(value, exc, pattern, fused):
    layer, opt = _trained(fused)
    snap = snapshot(_opt_state(layer, opt), opt._global_learning_rate())
    assert_raises(exc, pattern, lambda: opt.set_lr(value))
    assert opt.get_lr() == 0.01
    assert_unchanged(snap)
    opt.set_lr(0.02)  # the optimizer still works
    assert opt.get_lr() == 0.02
    opt.step()


def test_paddle_set_lr_accepts_nan():
    """Why ours checks: Paddle's own set_lr takes nan (and the next step writes nan into every param)."""
    layer = paddle.nn.Linear(3, 2)
    opt = paddle.optimizer.RMSProp(0.01, parameters=layer.parameters())
    opt.set_lr(NAN)
    assert math.isnan(opt.get_lr())


@pytest.mark.parametrize("bad", [NAN, INF, -INF, -1.0], ids=["nan", "inf", "-inf", "neg"])
@pytest.mark.parametrize("fused", [False, True])
def test_scheduler_bad_value_stops_the_step_before_anything_is_written(bad, fused):
    paddle.seed(1)
    layer = paddle.nn.Linear(3, 2)
    sched = paddle.optimizer.lr.LambdaDecay(0.01, lambda epoch: 1.0 if epoch < 2 else bad)
    opt = RMSProp(sched, parameters=layer.parameters(), momentum=0.5, fused=fused)
    for _ in range(2):
        layer(paddle.ones([2, 3])).sum().backward()
        opt.step()
        opt.clear_grad()
        sched.step()
    layer(paddle.ones([2, 3])).sum().backward()
    snap = snapshot(_opt_state(layer, opt))
    assert_raises(ValueError, r"learning_rate: the LambdaDecay scheduler returned .* \(last_epoch=2\); expected a",
                  lambda: opt.step())
    assert_unchanged(snap)


def test_scheduler_bad_value_in_a_static_program_is_caught_by_the_op():
    """In a program Paddle's executor feeds the scheduler's value to the LearningRate tensor on every run;
    on the CPU the op reads it and refuses a nan before writing anything."""
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", [2, 3], "float32")
            layer = paddle.nn.Linear(3, 2)
            sched = paddle.optimizer.lr.LambdaDecay(0.01, lambda epoch: 1.0 if epoch < 1 else NAN)
            RMSProp(sched, momentum=0.5, fused=True).minimize(layer(x).sum())
        names = [p.name for p in layer.parameters()]
        exe, scope = paddle.static.Executor(paddle.CPUPlace()), paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            exe.run(main, feed={"x": np.ones((2, 3), "float32")})
            sched.step()
            before = [np.array(scope.var(n).get_tensor()).copy() for n in names]
            assert_raises(ValueError, r"LearningRate: expected a finite number, got nan",
                          lambda: exe.run(main, feed={"x": np.ones((2, 3), "float32")}))
            for n, b in zip(names, before):
                np.testing.assert_array_equal(np.array(scope.var(n).get_tensor()), b)
    finally:
        paddle.disable_static()


def test_scheduler_bad_value_at_program_build_is_rejected():
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", [2, 3], "float32")
            loss = paddle.nn.Linear(3, 2)(x).sum()
            sched = paddle.optimizer.lr.LambdaDecay(0.01, lambda epoch: NAN)
            assert_raises(ValueError, r"learning_rate: the LambdaDecay scheduler returned nan",
                          lambda: RMSProp(sched).minimize(loss))
    finally:
        paddle.disable_static()


def test_set_lr_scheduler_wrong_type():
    layer, opt = _trained(False, lr=paddle.optimizer.lr.StepDecay(0.01, 2), steps=0)
    assert_raises(TypeError, r"scheduler.*must be LRScheduler", lambda: opt.set_lr_scheduler(0.1))


@pytest.mark.parametrize("fused", [False, True])
def test_zero_size_parameter_trains_like_paddle(fused):
    """A zero-size parameter next to ordinary ones: the step is valid and equals Paddle's RMSProp."""
    out = []
    for cls in (RMSProp, paddle.optimizer.RMSProp):
        paddle.seed(3)
        empty = paddle.create_parameter([0, 3], "float32")
        lin = paddle.nn.Linear(3, 2)
        params = [empty, *lin.parameters()]
        kw = dict(fused=fused) if cls is RMSProp else {}
        opt = cls(0.01, parameters=params, momentum=0.5, **kw)
        for _ in range(3):
            (lin(paddle.ones([2, 3])).sum() + empty.sum()).backward()
            opt.step()
            opt.clear_grad()
        out.append([p.numpy() for p in params])
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert out[0][0].shape == (0, 3)



# ------------------------------------------------------------------------------------------------------ fuzz
FUZZ = os.path.join(os.path.dirname(__file__), "..", "scripts", "fuzz_paddle_boundary.py")


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzz_op_boundary_in_subprocess(seed):
    """Random shapes, dtypes, Python types, views, aliases and attributes (nan/inf included): each call
    succeeds (equal to the core, bit for bit, where well-formed) or raises TypeError/ValueError having
    modified nothing; a crash fails this test instead of killing pytest."""
    proc = subprocess.run([sys.executable, FUZZ, str(seed), "300"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "fuzz ok" in proc.stdout
    counts = ast.literal_eval(proc.stdout.split("fuzz ok", 1)[1].strip())
    assert counts["raised"] > 0 and counts["succeeded"] > 0 and counts["compared"] > 0, counts


@pytest.mark.parametrize("attr,pattern", [
    (dict(learning_rate=NAN), r"linear_\d+.b_0: ParamAttr learning_rate: expected a finite scale >= 0, got nan"),
    (dict(learning_rate=-1.0), r"ParamAttr learning_rate: expected a finite scale >= 0, got -1"),
    (dict(regularizer=paddle.regularizer.L2Decay(INF)),
     r"ParamAttr regularizer: weight_decay: expected a finite number"),
    (dict(regularizer=paddle.regularizer.L1Decay(-0.5)), r"ParamAttr regularizer: weight_decay: expected a value >= 0"),
], ids=["lr-nan", "lr-neg", "l2-inf", "l1-neg"])
@pytest.mark.parametrize("fused", [False, True])
def test_param_attr_bad_values_stop_the_step_before_any_op(attr, pattern, fused):
    """Per-parameter values set through ParamAttr bypass the constructor; they are checked for every
    parameter before the first op runs, so no parameter is left updated (one op per parameter otherwise
    updates the weight before failing on the bias)."""
    layer = paddle.nn.Linear(3, 2, bias_attr=paddle.ParamAttr(**attr))
    opt = RMSProp(0.01, parameters=layer.parameters(), momentum=0.5, fused=fused)
    layer(paddle.ones([2, 3])).sum().backward()
    opt._create_accumulators(None, layer.parameters())
    snap = snapshot(_opt_state(layer, opt))
    assert_raises(ValueError, pattern, lambda: opt.step())
    assert_unchanged(snap)


@pytest.mark.parametrize("fused", [False, True])
def test_param_attr_bad_value_in_a_static_program_is_rejected_while_building(fused):
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", [2, 3], "float32")
            layer = paddle.nn.Linear(3, 2, bias_attr=paddle.ParamAttr(learning_rate=INF))
            loss = layer(x).sum()
            assert_raises(ValueError, r"b_0: ParamAttr learning_rate: expected a finite scale >= 0, got inf",
                          lambda: RMSProp(0.01, fused=fused).minimize(loss))
        assert not [op.name() for op in main.global_block().ops if "rmsprop" in op.name()]
    finally:
        paddle.disable_static()


@pytest.mark.parametrize("fused", [False, True])
def test_bad_param_attr_next_to_a_sparse_gradient_stops_the_step_before_any_op(fused):
    """Embedding(sparse=True) gives a SelectedRows gradient, which the optimizer densifies; the checks
    still come first, so a bad ParamAttr on the Linear after it leaves the embedding, its gradient and
    the state untouched."""
    emb = paddle.nn.Embedding(10, 3, sparse=True)
    lin = paddle.nn.Linear(3, 1, bias_attr=paddle.ParamAttr(learning_rate=NAN))
    opt = RMSProp(0.1, parameters=emb.parameters() + lin.parameters(), momentum=0.5, fused=fused)
    lin(emb(paddle.to_tensor([1, 2, 1]))).sum().backward()
    assert emb.weight.grad.is_selected_rows()
    opt._create_accumulators(None, emb.parameters() + lin.parameters())
    accs = [v for per in opt._accumulators.values() for v in per.values()]
    snap = snapshot(emb.weight, lin.parameters(), [p.grad for p in lin.parameters()], accs,
                    emb.weight.grad._get_tensor_from_selected_rows())
    assert_raises(ValueError, r"b_0: ParamAttr learning_rate: expected a finite scale >= 0, got nan",
                  lambda: opt.step())
    assert_unchanged(snap)


@pytest.mark.parametrize("fused", [False, True])
def test_selected_rows_value_in_a_static_program_is_refused_while_building(fused):
    """Paddle's PIR backward gives Embedding(sparse=True) a dense gradient, and PIR has no op turning a
    SelectedRows value into a dense one (pd_op.add_n refuses it); a hand-built program with a SelectedRows
    gradient gets a ValueError naming the parameter and Grad, and no update op."""
    from paddle.base.libpaddle.pir import create_selected_rows_type_by_dense_tensor

    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            ids = paddle.static.data("ids", [2, 3], "int64")
            emb = paddle.nn.Embedding(10, 3, sparse=True)
            loss = emb(ids).sum()
            (param, grad), = paddle.static.append_backward(loss)
            grad.set_type(create_selected_rows_type_by_dense_tensor(grad.type()))
            assert grad.is_selected_row_type()
            assert_raises(ValueError, r"embedding_\d+.w_0: Grad: expected a dense tensor, got a SelectedRows value",
                          lambda: RMSProp(0.1, fused=fused).apply_gradients([(param, grad)]))
        assert not [op.name() for op in main.global_block().ops if "rmsprop" in op.name()]
    finally:
        paddle.disable_static()


def test_raw_ops_refuse_a_selected_rows_input_in_dygraph_and_in_a_program():
    """A SelectedRows value handed straight to the custom ops: in a PIR program it used to crash Paddle's
    op builder (segfault), so the check runs in a subprocess and must end in a ValueError naming Grad."""
    script = r"""
import re, paddle
from rmsprop_ops.paddle import load_ops
from paddle.base.libpaddle.pir import create_selected_rows_type_by_dense_tensor
ops = load_ops()
attrs = (0.1, 0.9, 1e-6, 0.0, True, True, 0.0, 0, 1.0, -1.0, True, -1.0, 1.0, False, False, False)
emb = paddle.nn.Embedding(10, 3, sparse=True)
emb(paddle.to_tensor([1, 2, 1])).sum().backward()
p, ms, mom = paddle.ones([10, 3]), paddle.ones([10, 3]), paddle.zeros([10, 3])
for fn, args, extra in ((ops.rmsprop_ops_rmsprop, (p, emb.weight.grad, ms, mom), ()),
                        (ops.rmsprop_ops_rmsprop_multi, ([p], [emb.weight.grad], [ms], [mom]), ([], []))):
    try:
        fn(*args, None, None, None, None, None, *attrs, *extra)
    except ValueError as e:
        assert re.search(r"Grad(\[0\])?: expected a dense tensor, got SelectedRows", str(e)), str(e)
    else:
        raise SystemExit("no error in dygraph")
assert float(p.sum()) == 30.0 and float(ms.sum()) == 30.0 and float(mom.sum()) == 0.0
paddle.enable_static()
main, startup = paddle.static.Program(), paddle.static.Program()
with paddle.static.program_guard(main, startup):
    ids = paddle.static.data("ids", [2, 3], "int64")
    loss = paddle.nn.Embedding(10, 3, sparse=True)(ids).sum()
    (param, grad), = paddle.static.append_backward(loss)
    grad.set_type(create_selected_rows_type_by_dense_tensor(grad.type()))
    s1, s2 = paddle.create_parameter([10, 3], "float32"), paddle.create_parameter([10, 3], "float32")
    try:
        ops.rmsprop_ops_rmsprop(param, grad, s1, s2, None, None, None, None, None, *attrs)
    except ValueError as e:
        assert "Grad: expected a dense tensor, got SelectedRows" in str(e), str(e)
    else:
        raise SystemExit("no error in a program")
print("OK")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "OK" in r.stdout, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
