"""Fuzzes the Paddle custom ops (through ``load_ops()``) with random shapes, dtypes, Python types, views,
aliases and attribute values, nan and inf included. Run by test_paddle_errors.py in a subprocess, so a crash
fails the test instead of killing pytest.

Every call must either succeed or raise TypeError/ValueError, a failed call must leave every tensor
untouched, and a successful single-tensor call on well-formed input must give the core's result bit for bit.
"""

from __future__ import annotations

import sys

import numpy as np
import paddle
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import rmsprop_ops
from rmsprop_ops.paddle import load_ops
from rmsprop_ops.paddle._launch import invoke as _invoke

paddle.disable_static()
load_ops()

KINDS = ["dtype", "shape", "zero", "strided", "none", "numpy", "float", "list", "alias"]
BAD_DTYPES = ["float64", "float16", "int32", "bool", "uint8", "complex64"]
FLOATS = ["learning_rate", "rho", "epsilon", "momentum", "weight_decay", "rescale_grad", "clip_gradient",
          "clip_weights"]
VALID = dict(learning_rate=st.floats(0, 1), rho=st.floats(0, 1), epsilon=st.floats(1e-8, 1),
             momentum=st.floats(0, 0.99), weight_decay=st.floats(0, 0.1), rescale_grad=st.floats(0.1, 4),
             clip_gradient=st.sampled_from([-1.0, 0.5, 2.0]), clip_weights=st.sampled_from([-1.0, 0.7, 3.0]))
wild = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.none(),
                 st.text(max_size=2), st.booleans())


def _tensor(kind, shape, dtype, seed, draw):
    rs = np.random.RandomState(seed)
    a = (np.asarray(rs.rand(*shape)) + 0.1).astype(dtype)
    if kind == "dtype":
        return paddle.to_tensor(a.astype(draw(st.sampled_from(BAD_DTYPES))))
    if kind == "shape":
        return paddle.to_tensor(np.ones([s + 1 for s in shape] or [2], dtype))
    if kind == "zero":
        return paddle.to_tensor(np.ones([0] + list(shape[1:]), dtype))
    if kind == "strided":
        base = paddle.to_tensor(np.ones(list(shape) + [2], dtype))
        return base[..., 1]
    if kind == "none":
        return None
    if kind == "numpy":
        return a
    if kind == "float":
        return 1.0
    if kind == "list":
        return [paddle.to_tensor(a)]
    return paddle.to_tensor(a)


def _flat(x):
    if isinstance(x, paddle.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for y in x for t in _flat(y)]
    return []


@st.composite
def calls(draw):
    multi = draw(st.booleans())
    centered = draw(st.booleans())
    n = draw(st.integers(0, 3)) if multi else 1
    dtype = draw(st.sampled_from(["float32", "float32", "float64", "float16"]))
    state = "float64" if dtype == "float64" else "float32"
    names = ["Param", "Grad", "MeanSquare", "Moment"] + (["MeanGrad"] if centered else [])
    if dtype == "float16" and draw(st.booleans()):
        names.append("MasterParam")
    lists = {k: [] for k in names}
    clean = True
    faulty = draw(st.booleans())  # half the calls are well-formed and compared with the core
    fault = lambda odds: faulty and draw(st.integers(0, odds)) == 0  # noqa: E731
    for i in range(n):
        shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=3))
        for j, k in enumerate(names):
            kind = draw(st.sampled_from(KINDS)) if fault(2 * len(names)) else "ok"
            clean &= kind == "ok"
            dt = dtype if k in ("Param", "Grad") else state
            if kind == "alias" and lists["Param"]:
                lists[k].append(lists["Param"][-1])
            else:
                lists[k].append(_tensor(kind if kind != "alias" else "ok", shape, dt, 7 * i + j, draw))
    tensors = lists if multi else {k: v[0] for k, v in lists.items()}
    if not multi and draw(st.booleans()):
        lr = draw(st.sampled_from([float("nan"), float("inf"), -1.0])) if fault(3) else draw(st.floats(0, 1))
        tensors["LearningRate"] = paddle.to_tensor(np.array(lr, "float32"))
        clean = False  # the core takes the rate as a number: compared through the attribute only
    attrs = {}
    for a in FLOATS:
        if fault(12):
            attrs[a] = draw(wild)
            clean = False
        else:
            attrs[a] = draw(VALID[a])
    attrs["weight_decay_mode"] = draw(st.sampled_from([5, -1, 1.0, "l1"] if fault(8) else [0, 1, 2]))
    clean &= attrs["weight_decay_mode"] in (0, 1, 2) and not isinstance(attrs["weight_decay_mode"], float)
    for b in ("eps_in_sqrt", "lr_in_momentum", "clip_after_weight_decay"):
        attrs[b] = draw(st.sampled_from([1, None] if fault(8) else [True, False]))
        clean &= isinstance(attrs[b], bool)
    if multi:
        attrs["lr_mults"] = draw(st.one_of(st.just([]), st.lists(st.floats(0, 2), min_size=n, max_size=n),
                                           st.lists(st.floats(0, 2), min_size=n, max_size=n),
                                           st.lists(wild, max_size=4)))
        attrs["weight_decays"] = draw(st.one_of(st.just([]), st.lists(st.floats(0, 0.1), min_size=n, max_size=n)))
    op = ("rmsprop_centered" if centered else "rmsprop") + ("_multi" if multi else "")
    return op, tensors, attrs, clean and not multi


def _core_expected(tensors, attrs, centered):
    f32 = lambda v: float(np.float32(v))  # noqa: E731  (Paddle op attributes are float32)
    arr = {k: v.astype("float32").numpy() if v.dtype == paddle.bfloat16 else v.numpy().copy()
           for k, v in tensors.items()}
    rmsprop_ops.rmsprop_(
        arr["Param"], arr["Grad"], arr["MeanSquare"], lr=f32(attrs["learning_rate"]), rho=f32(attrs["rho"]),
        epsilon=f32(attrs["epsilon"]), momentum=f32(attrs["momentum"]), moment=arr["Moment"],
        centered=centered, mean_grad=arr.get("MeanGrad"), master_param=arr.get("MasterParam"),
        weight_decay=f32(attrs["weight_decay"]),
        weight_decay_mode=["l2", "l1", "decoupled"][attrs["weight_decay_mode"]],
        rescale_grad=f32(attrs["rescale_grad"]),
        clip_gradient=None if attrs["clip_gradient"] < 0 else f32(attrs["clip_gradient"]),
        clip_weights=None if attrs["clip_weights"] < 0 else f32(attrs["clip_weights"]),
        eps_in_sqrt=attrs["eps_in_sqrt"], lr_in_momentum=attrs["lr_in_momentum"],
        clip_after_weight_decay=attrs["clip_after_weight_decay"])
    return arr


COUNTS = {"raised": 0, "succeeded": 0, "compared": 0}


@settings(max_examples=int(sys.argv[2]) if len(sys.argv) > 2 else 200, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(call=calls())
def fuzz(call):
    op, tensors, attrs, clean = call
    every = _flat(list(tensors.values()))
    before = [t.numpy().tobytes() for t in every]
    expected = None
    if clean:
        try:
            expected = _core_expected(tensors, attrs, "centered" in op)
        except (TypeError, ValueError):
            expected = "error"
    try:
        _invoke(op, tensors, attrs)
    except (TypeError, ValueError) as e:
        COUNTS["raised"] += 1
        for t, b in zip(every, before):
            assert t.numpy().tobytes() == b, f"{op}: failed call ({e}) modified a tensor"
        assert expected is None or expected == "error", f"{op}: the core accepted what Paddle refused: {e}"
        return
    COUNTS["succeeded"] += 1
    if isinstance(expected, dict):
        COUNTS["compared"] += 1
        for k, v in expected.items():
            got = tensors[k].numpy()
            assert got.tobytes() == v.tobytes(), f"{op}: {k} differs from the core: {got} vs {v}"
    assert expected != "error", f"{op}: Paddle accepted what the core refused"


if __name__ == "__main__":
    seed(int(sys.argv[1]) if len(sys.argv) > 1 else 0)(fuzz)()
    print("fuzz ok", COUNTS)
