"""Bad input at every MindSpore entry, table-driven: ``rmsprop_multi_`` (in GRAPH_MODE and PYNATIVE_MODE
context), the raw ``ops.Custom`` op (typed and untyped, eager and inside a compiled Cell) and
``rmsprop_ops.mindspore.RMSProp`` (constructor and step).

Every case asserts the exception type, a message that names the argument (expected vs received), that
every Parameter and state buffer is bitwise unchanged and that no launch of our kernel succeeded. Where
``mindspore.nn.RMSProp`` raises for the same input, ours raises the same exception type. The raw op gets
unchecked input straight into the kernel, so its table runs in a subprocess (ms_raw_op_errors.py).
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, Tensor, nn
from mindspore.nn.learning_rate_schedule import LearningRateSchedule

import rmsprop_ops.mindspore as rms
from rmsprop_ops.mindspore._build import FUNC_NAME, kernel_handle

from ms_raw_op_errors import RAW_CASES

pytestmark = pytest.mark.mindspore

NAN, INF = float("nan"), float("inf")
_names = itertools.count()


def P(shape=(3,), dtype=np.float32, fill=None):
    """A Parameter with distinct values, so that "unchanged" is a real check."""
    n = int(np.prod(shape))
    data = np.linspace(-1, 1, n) if fill is None else np.full(n, fill)
    return Parameter(Tensor(data.reshape(shape).astype(dtype)), name=f"e{next(_names)}")


def T(shape=(3,), dtype=np.float32, fill=0.5):
    return Tensor(np.full(shape, fill, dtype))


def _parameters(*objs):
    """Every Parameter in nested lists/tuples/dicts."""
    out = []
    for o in objs:
        if isinstance(o, Parameter):
            out.append(o)
        elif isinstance(o, (list, tuple)):
            out += _parameters(*o)
        elif isinstance(o, dict):
            out += _parameters(*o.values())
    return out


class Snapshot:
    """Bytes of Parameters (and NumPy buffers shared with Tensors) before a failing call."""

    def __init__(self, params, arrays=()):
        self.params = list({id(p): p for p in params}.values())
        self.arrays = list(arrays)
        self.before = [p.asnumpy().tobytes() for p in self.params]
        self.array_before = [a.tobytes() for a in self.arrays]
        self.launches = rms.kernel_stats()["launches"]

    def assert_unchanged(self):
        for p, b in zip(self.params, self.before):
            assert p.asnumpy().tobytes() == b, f"{p.name} modified by a failed call"
        for a, b in zip(self.arrays, self.array_before):
            assert a.tobytes() == b, "a NumPy buffer was modified by a failed call"
        assert rms.kernel_stats()["launches"] == self.launches, "a launch succeeded"


def _clear_last_error():
    kernel_handle().rmsprop_ops_ms_clear_error()


# ---------------------------------------------------------------------------------------------------------
# rmsprop_multi_
# ---------------------------------------------------------------------------------------------------------

SHAPES = [(3,), (2, 2)]


def functional_args(centered=False):
    a = dict(params=[P(s) for s in SHAPES], grads=[T(s) for s in SHAPES],
             mean_squares=[P(s, fill=1.0) for s in SHAPES], moments=[P(s, fill=0.25) for s in SHAPES], lr=0.1,
             kw=dict(rho=0.9, epsilon=1e-6, momentum=0.5), arrays=[])
    if centered:
        a["kw"].update(centered=True, mean_grads=[P(s, fill=0.125) for s in SHAPES])
    return a


def put(block, k, make):
    def change(a):
        (a["kw"] if block == "mean_grads" else a)[block][k] = make(a)
    return change


def setarg(name, make):
    def change(a):
        value = make(a) if callable(make) else make
        if name in ("params", "grads", "mean_squares", "moments", "lr"):
            a[name] = value
        else:
            a["kw"][name] = value
    return change


def _readonly_numpy_tensor(a):
    buf = np.linspace(-1, 1, 3).astype(np.float32)
    buf.setflags(write=False)
    a["arrays"].append(buf)
    return Tensor.from_numpy(buf)


def _misaligned_numpy(a, n=3):
    raw = np.zeros(n * 4 + 1, np.uint8)
    view = raw[1:].view(np.float32)
    view[:] = 0.5
    a["arrays"].append(raw)
    return view


def _misaligned_param(a):
    p = P()
    p.set_data(Tensor.from_numpy(_misaligned_numpy(a)))  # set_data shares the NumPy memory
    return p


def _mixed_dtypes(a):
    a["params"][1] = P((2, 2), np.float64)
    a["grads"][1] = T((2, 2), np.float64)
    a["mean_squares"][1] = P((2, 2), np.float64, fill=1.0)
    a["moments"][1] = P((2, 2), np.float64, fill=0.0)


def _all_float16(a):
    a["params"] = [P(s, np.float16) for s in SHAPES]
    a["grads"] = [T(s, np.float16) for s in SHAPES]
    a["mean_squares"] = [P(s, np.float16, fill=1.0) for s in SHAPES]
    a["moments"] = [P(s, np.float16, fill=0.0) for s in SHAPES]


def _second_set_like_first(make_param):
    """Makes set 1 shaped like set 0, then puts ``make_param(a)`` as its param (for aliasing cases)."""
    def change(a):
        a["grads"][1], a["mean_squares"][1], a["moments"][1] = T(), P(fill=1.0), P(fill=0.25)
        a["params"][1] = make_param(a)
    return change


def _int_params(a):
    a["params"][0] = P(dtype=np.int32)
    a["grads"][0] = T(dtype=np.int32, fill=1)


_HYPER = ("rho", "epsilon", "momentum", "rescale_grad")

FUNCTIONAL_CASES = [
    # Python types of the lists and their elements
    ("params-a-Parameter", setarg("params", lambda a: a["params"][0]), TypeError,
     "params: expected a list or tuple of Parameters/Tensors, got Parameter"),
    ("params-dict", setarg("params", {}), TypeError, "params: expected a list or tuple"),
    ("params-None", setarg("params", None), TypeError, "params: expected a list or tuple"),
    ("grads-iterator", setarg("grads", lambda a: iter(a["grads"])), TypeError, "grads: expected a list or tuple"),
    ("mean-squares-a-Tensor", setarg("mean_squares", lambda a: T()), TypeError, "mean_squares: expected a list"),
    ("moments-None", setarg("moments", None), TypeError, "moments: expected a list or tuple"),
    ("mean-grads-a-Parameter", setarg("mean_grads", lambda a: P()), TypeError, "mean_grads: expected a list",
     True),
    ("param-a-Tensor", put("params", 0, lambda a: T()), TypeError,
     "params[0]: expected a mindspore Parameter, got Tensor"),
    ("param-read-only-numpy-memory", put("params", 0, _readonly_numpy_tensor), TypeError,
     "params[0]: expected a mindspore Parameter, got Tensor"),
    ("param-ndarray", put("params", 1, lambda a: np.ones(4, np.float32)), TypeError,
     "params[1]: expected a mindspore Parameter, got ndarray"),
    ("param-None", put("params", 0, lambda a: None), TypeError, "params[0]: expected a mindspore Parameter, got "
     "NoneType"),
    ("param-float", put("params", 1, lambda a: 1.0), TypeError, "params[1]: expected a mindspore Parameter, got "
     "float"),
    ("grad-ndarray", put("grads", 1, lambda a: np.ones(4, np.float32)), TypeError,
     "grads[1]: expected a mindspore Tensor, got ndarray"),
    ("grad-None", put("grads", 0, lambda a: None), TypeError, "grads[0]: expected a mindspore Tensor, got NoneType"),
    ("grad-list", put("grads", 0, lambda a: [0.5, 0.5, 0.5]), TypeError,
     "grads[0]: expected a mindspore Tensor, got list"),
    ("mean-square-a-Tensor", put("mean_squares", 0, lambda a: T()), TypeError,
     "mean_squares[0]: expected a mindspore Parameter, got Tensor"),
    ("moment-None", put("moments", 1, lambda a: None), TypeError,
     "moments[1]: expected a mindspore Parameter, got NoneType"),
    ("mean-grad-a-Tensor", put("mean_grads", 0, lambda a: T()), TypeError,
     "mean_grads[0]: expected a mindspore Parameter, got Tensor", True),
    # list lengths and consistency
    ("grads-short", setarg("grads", lambda a: a["grads"][:1]), ValueError, "grads: expected 2 tensors like params, "
     "got 1"),
    ("mean-squares-long", setarg("mean_squares", lambda a: a["mean_squares"] + [P()]), ValueError,
     "mean_squares: expected 2 tensors like params, got 3"),
    ("moments-empty", setarg("moments", []), ValueError, "moments: expected 2 tensors like params, got 0"),
    ("mean-grads-short", setarg("mean_grads", lambda a: a["kw"]["mean_grads"][1:]), ValueError,
     "mean_grads: expected 2 tensors like params, got 1", True),
    ("weight-decay-list-long", setarg("weight_decay", [0.1, 0.1, 0.1]), ValueError,
     "weight_decay: expected 2 per-tensor values, got 3"),
    ("centered-without-mean-grads", setarg("centered", True), ValueError, "mean_grads: expected a list "
     "(centered=True needs the mean gradient), got None"),
    ("mean-grads-without-centered", setarg("mean_grads", lambda a: [P(s) for s in SHAPES]), ValueError,
     "mean_grads: expected None when centered=False"),
    # dtypes, per input
    ("grad-float64", put("grads", 0, lambda a: T(dtype=np.float64)), TypeError,
     "grads[0]: expected dtype float32 (the param's dtype), got float64"),
    ("grad-int32", put("grads", 1, lambda a: T((2, 2), np.int32)), TypeError, "grads[1]: expected dtype float32"),
    ("grad-float16", put("grads", 0, lambda a: T(dtype=np.float16)), TypeError, "grads[0]: expected dtype float32"),
    ("mean-square-float64", put("mean_squares", 0, lambda a: P(dtype=np.float64)), TypeError,
     "mean_squares[0]: expected dtype float32 (the param's math type), got float64"),
    ("mean-square-int32", put("mean_squares", 1, lambda a: P((2, 2), np.int32)), TypeError,
     "mean_squares[1]: expected dtype float32"),
    ("moment-float16", put("moments", 1, lambda a: P((2, 2), np.float16)), TypeError,
     "moments[1]: expected dtype float32 (the param's math type), got float16"),
    ("moment-float64", put("moments", 0, lambda a: P(dtype=np.float64)), TypeError, "moments[0]: expected dtype "
     "float32"),
    ("mean-grad-float16", put("mean_grads", 0, lambda a: P(dtype=np.float16)), TypeError,
     "mean_grads[0]: expected dtype float32", True),
    ("params-int32", _int_params, TypeError, "params[0]: expected a floating-point dtype"),
    ("params-mixed-dtypes", _mixed_dtypes, TypeError, "params[1]: expected float32 like params[0]"),
    ("float16-state", _all_float16, TypeError, "mean_squares[0]: expected dtype float32 (the param's math type), "
     "got float16"),
    ("lr-int32-Tensor", setarg("lr", lambda a: Tensor(1, ms.int32)), TypeError,
     "lr: expected a float32 or float64 Tensor, got Int32"),
    ("lr-float16-Tensor", setarg("lr", lambda a: Tensor(0.1, ms.float16)), TypeError,
     "lr: expected a float32 or float64 Tensor, got Float16"),
    # shapes, per input
    ("grad-shape", put("grads", 0, lambda a: T((4,))), ValueError, "grads[0]: expected shape (3,) like params[0], "
     "got (4,)"),
    ("grad-same-size-other-shape", put("grads", 1, lambda a: T((4,))), ValueError,
     "grads[1]: expected shape (2, 2) like params[1], got (4,)"),
    ("mean-square-shape", put("mean_squares", 0, lambda a: P((3, 1))), ValueError,
     "mean_squares[0]: expected shape (3,) like params[0], got (3, 1)"),
    ("moment-scalar", put("moments", 1, lambda a: P(())), ValueError, "moments[1]: expected shape (2, 2) like "
     "params[1], got ()"),
    ("mean-grad-shape", put("mean_grads", 1, lambda a: P((2, 3))), ValueError,
     "mean_grads[1]: expected shape (2, 2) like params[1], got (2, 3)", True),
    ("lr-two-values", setarg("lr", lambda a: Tensor(np.ones(2, np.float32))), ValueError,
     "lr: expected a scalar Tensor, got shape (2,)"),
    # memory: aliasing and alignment
    ("param-is-its-mean-square", put("mean_squares", 0, lambda a: a["params"][0]), ValueError,
     "mean_squares[0]: memory overlaps params[0]"),
    ("same-param-twice", _second_set_like_first(lambda a: a["params"][0]), ValueError,
     r"params\[\d\]: memory overlaps params\[\d\]"),
    ("mean-squares-are-the-moments", setarg("moments", lambda a: a["mean_squares"]), ValueError,
     r"moments\[\d\]: memory overlaps mean_squares\[\d\]"),
    ("grad-is-the-param", put("grads", 0, lambda a: a["params"][0]), ValueError, "grads[0]: memory overlaps "
     "params[0]"),
    ("param-is-another-mean-square", _second_set_like_first(lambda a: a["mean_squares"][0]), ValueError,
     r"(params|mean_squares)\[\d\]: memory overlaps (params|mean_squares)\[\d\]"),
    ("mean-grad-is-a-moment", put("mean_grads", 1, lambda a: a["moments"][1]), ValueError,
     r"(mean_grads|moments)\[1\]: memory overlaps (mean_grads|moments)\[1\]", True),
    ("misaligned-grad", put("grads", 0, lambda a: Tensor.from_numpy(_misaligned_numpy(a))), ValueError,
     "grads[0]: expected memory aligned to 4 bytes for float32"),
    ("misaligned-param", put("params", 0, _misaligned_param), ValueError,
     "params[0]: expected memory aligned to 4 bytes for float32"),
    # wrong Python types of the hyper-parameters
    *[(f"{h}-{kind}", setarg(h, v), TypeError, f"{h}: expected a float, got {t}")
      for h in _HYPER + ("weight_decay",) for kind, v, t in (("str", "0.5", "str"), ("None", None, "NoneType"),
                                                             ("bool", True, "bool"))],
    ("weight-decay-list-of-str", setarg("weight_decay", ["0.1", 0.1]), TypeError,
     "weight_decay[0]: expected a float, got str"),
    ("lr-str", setarg("lr", "0.1"), TypeError, "lr: expected a number or a scalar Tensor, got str"),
    ("lr-None", setarg("lr", None), TypeError, "lr: expected a number or a scalar Tensor, got NoneType"),
    ("lr-bool", setarg("lr", True), TypeError, "lr: expected a number or a scalar Tensor, got bool"),
    ("lr-list", setarg("lr", [0.1, 0.1]), TypeError, "lr: expected a number or a scalar Tensor, got list"),
    ("centered-str", setarg("centered", "yes"), TypeError, "centered: expected a bool, got str"),
    ("centered-int", setarg("centered", 1), TypeError, "centered: expected a bool, got int"),
    # non-finite and out-of-range hyper-parameters
    *[(f"{h}-{v}", setarg(h, v), ValueError, f"{h}: expected a finite number, got {v}")
      for h in _HYPER for v in (NAN, INF, -INF)],
    *[(f"weight_decay-{v}", setarg("weight_decay", v), ValueError,
       f"weight_decay[0]: expected a finite value >= 0, got {v}") for v in (NAN, INF, -INF)],
    ("weight_decay-list-with-nan", setarg("weight_decay", [0.1, NAN]), ValueError,
     "weight_decay[1]: expected a finite value >= 0, got nan"),
    *[(f"lr-{v}", setarg("lr", v), ValueError, f"lr: expected a finite number, got {v}") for v in (NAN, INF, -INF)],
    *[(f"lr-Tensor-{v}", setarg("lr", lambda a, v=v: Tensor(v, ms.float32)), ValueError,
       f"lr: expected a finite number, got {v}") for v in (NAN, INF, -INF)],
    ("lr-float64-Tensor-nan", setarg("lr", lambda a: Tensor(NAN, ms.float64)), ValueError,
     "lr: expected a finite number, got nan"),
    ("rho-above-one", setarg("rho", 1.5), ValueError, "rho: expected a value in [0, 1], got 1.5"),
    ("rho-negative", setarg("rho", -0.1), ValueError, "rho: expected a value in [0, 1]"),
    ("epsilon-zero", setarg("epsilon", 0.0), ValueError, "epsilon: expected a value > 0, got 0"),
    ("epsilon-negative", setarg("epsilon", -1e-8), ValueError, "epsilon: expected a value > 0"),
    ("momentum-negative", setarg("momentum", -0.5), ValueError, "momentum: expected a value >= 0, got -0.5"),
    ("rescale-grad-zero", setarg("rescale_grad", 0.0), ValueError, "rescale_grad: expected a value > 0"),
    ("weight-decay-negative", setarg("weight_decay", -0.1), ValueError, "weight_decay[0]: expected a finite value "
     ">= 0"),
    ("lr-negative", setarg("lr", -0.1), ValueError, "lr: expected a value >= 0"),
    ("lr-Tensor-negative", setarg("lr", lambda a: Tensor(-0.25, ms.float32)), ValueError,
     "lr: expected a value >= 0, got -0.25"),
]


def _matches(message, expected):
    return message.startswith(expected) or re.match(expected, message) is not None


@pytest.mark.parametrize("case", FUNCTIONAL_CASES, ids=[c[0] for c in FUNCTIONAL_CASES])
def test_functional_bad_input(mode, case):
    _, change, exc, expected, *centered = case
    a = functional_args(centered=bool(centered))
    originals = _parameters(a["params"], a["mean_squares"], a["moments"], a["kw"])
    change(a)
    snap = Snapshot(originals + _parameters(a["params"], a["grads"], a["mean_squares"], a["moments"], a["kw"]),
                    a["arrays"])
    _clear_last_error()
    with pytest.raises(exc) as info:
        rms.rmsprop_multi_(a["params"], a["grads"], a["mean_squares"], a["moments"], a["lr"], **a["kw"])
    assert _matches(str(info.value), expected), str(info.value)
    snap.assert_unchanged()


def test_functional_table_covers_every_input_and_hyper_parameter():
    ids = {c[0] for c in FUNCTIONAL_CASES}
    dtype_cases = {"grad-float64", "mean-square-float64", "moment-float16", "mean-grad-float16", "params-int32",
                   "lr-int32-Tensor"}
    shape_cases = {"grad-shape", "mean-square-shape", "moment-scalar", "mean-grad-shape", "lr-two-values"}
    non_finite = {f"{h}-{v}" for h in _HYPER + ("weight_decay", "lr", "lr-Tensor") for v in ("nan", "inf", "-inf")}
    assert dtype_cases | shape_cases | non_finite <= ids, sorted((dtype_cases | shape_cases | non_finite) - ids)


def test_functional_zero_size_and_empty_lists_are_valid(mode):
    # Empty tensors and an empty list are no-ops (as in the core); only the non-empty tensors change.
    rms.rmsprop_multi_([], [], [], [], 0.1)
    shapes = [(0,), (2, 0), (3,)]
    params = [P(s) for s in shapes]
    states = [P(s, fill=1.0) for s in shapes], [P(s, fill=0.0) for s in shapes]
    rms.rmsprop_multi_(params, [T(s) for s in shapes], *states, 0.1, rho=0.9, epsilon=1e-6)
    assert [p.shape for p in params] == [(0,), (2, 0), (3,)]
    expect = np.linspace(-1, 1, 3) - 0.1 * 0.5 / np.sqrt(0.9 + 0.1 * 0.25 + 1e-6)
    np.testing.assert_allclose(params[2].asnumpy(), expect, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# The raw Custom op
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def raw_results():
    """Runs the raw-op table in a subprocess; a case that crashes it is reported as such."""
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "ms_raw_op_errors.py")
    env = dict(os.environ, GLOG_v="3")
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=600, env=env)
    results, last_begin = {}, None
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        if "begin" in row:
            last_begin = (row["begin"], row["graph"])
        elif "case" in row:
            results[(row["case"], row["graph"])] = row
    return results, proc, last_begin


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("case", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_raw_op_bad_input_in_subprocess(raw_results, case, graph):
    results, proc, last_begin = raw_results
    name, _, exc, expected = case
    row = results.get((name, graph))
    assert row is not None, (f"no result: the subprocess exited with {proc.returncode} during {last_begin}\n"
                             f"{proc.stderr[-3000:]}")
    if graph:
        # Inside a compiled graph MindSpore raises its own RuntimeError; the core's message is kept.
        assert row["raised"] == "RuntimeError" and FUNC_NAME in row["message"], row
    else:
        assert row["raised"] == exc.__name__ and row["message"].startswith(expected), row
    assert row["last_error"].startswith(expected), row
    assert all(row["unchanged"]) and row["launched"] == 0, row
    assert f"rmsprop_ops (MindSpore kernel): {expected}" in proc.stderr


class _TypedStep(nn.Cell):
    def __init__(self, op):
        super().__init__()
        self.op = op

    def construct(self, *args):
        return self.op(*args)


def _typed_inputs():
    cfg = rms.make_config(1, rho=0.9, epsilon=1e-10, momentum=0.0, centered=False, weight_decays=[0.0])
    return [Tensor(0.1, ms.float32), cfg, P(), T(), P(fill=1.0), P(fill=0.0)]


TYPED_CASES = [
    # (id, change to [lr, config, param, grad, mean_square, moment], exception, message)
    ("missing-moment", lambda x: x.pop(), ValueError, "inputs: expected 6 shapes (lr, config, params, grads and 2 "
     "lists of 1), got 5"),
    ("lr-shape", lambda x: x.__setitem__(0, Tensor(np.ones(2, np.float32))), ValueError,
     "lr: expected a scalar tensor, got shape (2,)"),
    ("lr-int32", lambda x: x.__setitem__(0, Tensor(1, ms.int32)), TypeError,
     "lr: expected a float32 or float64 tensor, got Int32"),
    ("config-shape", lambda x: x.__setitem__(1, Tensor(np.ones(4))), ValueError,
     f"config: expected shape ({rms.config_layout().size(1, False)},), got (4,)"),
    ("grad-shape", lambda x: x.__setitem__(3, T((4,))), ValueError, "grads[0]: expected shape (3,) like "
     "params[0], got (4,)"),
    ("grad-dtype", lambda x: x.__setitem__(3, T(dtype=np.float64)), TypeError, "grads[0]: expected dtype Float32, "
     "got Float64"),
    ("mean-square-dtype", lambda x: x.__setitem__(4, P(dtype=np.float16)), TypeError,
     "mean_squares[0]: expected dtype Float32, got Float16"),
    ("moment-shape", lambda x: x.__setitem__(5, P((1, 3))), ValueError, "moments[0]: expected shape (3,)"),
    ("params-int32", lambda x: (x.__setitem__(2, P(dtype=np.int32)), x.__setitem__(3, T(dtype=np.int32))),
     TypeError, "params[0]: expected a floating-point dtype"),
]


def _flat_inputs():
    """One param of 3 elements with flat state buffers of 5 (the op declared with flat_size=5)."""
    cfg = rms.make_config(1, rho=0.9, epsilon=1e-10, momentum=0.0, centered=False, weight_decays=[0.0],
                          offsets=[0])
    return [Tensor(0.1, ms.float32), cfg, P(), T(), P((5,), fill=1.0), P((5,), fill=0.0)]


FLAT_TYPED_CASES = [
    ("flat-missing-moment", lambda x: x.pop(), ValueError, "inputs: expected 6 shapes (lr, config, params, grads "
     "and 2 flat state buffers), got 5"),
    ("flat-config-without-offsets", lambda x: x.__setitem__(1, rms.make_config(
        1, rho=0.9, epsilon=1e-10, momentum=0.0, centered=False, weight_decays=[0.0])), ValueError,
     f"config: expected shape ({rms.config_layout().size(1, True)},), got ({rms.config_layout().size(1, False)},)"),
    ("flat-buffer-size", lambda x: x.__setitem__(4, P((3,), fill=1.0)), ValueError,
     "mean_squares: expected a flat buffer of shape (5,), got (3,)"),
    ("flat-buffer-dtype", lambda x: x.__setitem__(5, P((5,), dtype=np.float16)), TypeError,
     "moments: expected a flat buffer of dtype Float32, got Float16"),
]


@pytest.mark.parametrize("case", TYPED_CASES + FLAT_TYPED_CASES, ids=[c[0] for c in TYPED_CASES + FLAT_TYPED_CASES])
def test_typed_raw_op_rejects_bad_input_while_compiling(mode, case):
    # make_op(n) checks shapes and dtypes at inference: when a graph compiles, before anything runs.
    name, change, exc, expected = case
    flat = name.startswith("flat-")
    inputs = _flat_inputs() if flat else _typed_inputs()
    change(inputs)
    snap = Snapshot(_parameters(inputs))
    op = rms.make_op(1, flat_size=5 if flat else None)
    with pytest.raises(exc) as info:
        if mode == "graph":
            _TypedStep(op)(*inputs)
        else:
            op(*inputs).asnumpy()
    assert str(info.value).startswith(expected), str(info.value)
    snap.assert_unchanged()


# ---------------------------------------------------------------------------------------------------------
# rmsprop_ops.mindspore.RMSProp: constructor
# ---------------------------------------------------------------------------------------------------------

def _net_params():
    return [P((3,)), P((2, 2))]


def _group(**extra):
    return lambda: [{"params": _net_params(), **extra}]


# (id, params factory, kwargs, exception, substring naming the argument). nn.RMSProp raises the same type
# with the same message for every case here.
SHARED_CTOR_CASES = [
    *[(f"{name}-{v}", _net_params, {name: v}, ValueError, f"'{label}' must be a legal value, but got '{v}'")
      for name, label in (("learning_rate", "learning rate"), ("decay", "decay"), ("momentum", "momentum"),
                          ("epsilon", "epsilon"), ("weight_decay", "weight_decay"), ("loss_scale", "loss_scale"))
      for v in (NAN, INF, -INF)],
    ("group-lr-nan", _group(lr=NAN), {}, ValueError, "'learning rate' must be a legal value"),
    ("group-weight-decay-inf", _group(weight_decay=INF), {}, ValueError, "'weight_decay' must be a legal value"),
    ("learning_rate-negative", _net_params, {"learning_rate": -0.1}, ValueError, "'learning rate'"),
    ("decay-negative", _net_params, {"decay": -0.1}, ValueError, "'decay'"),
    ("momentum-negative", _net_params, {"momentum": -1.0}, ValueError, "'momentum'"),
    ("epsilon-zero", _net_params, {"epsilon": 0.0}, ValueError, "'epsilon'"),
    ("loss_scale-zero", _net_params, {"loss_scale": 0.0}, ValueError, "'loss_scale'"),
    ("weight_decay-negative", _net_params, {"weight_decay": -1.0}, ValueError, "'weight_decay'"),
    *[(f"{name}-str", _net_params, {name: "0.5"}, TypeError, f"the type of '{name}' should be 'float'")
      for name in ("decay", "momentum", "epsilon", "loss_scale")],
    ("decay-int", _net_params, {"decay": 1}, TypeError, "the type of 'decay' should be 'float'"),
    ("weight_decay-str", _net_params, {"weight_decay": "0.1"}, TypeError, "'Weight_decay' must be int, float or "
     "Cell"),
    ("weight_decay-list", _net_params, {"weight_decay": [0.1]}, TypeError, "'Weight_decay' must be int, float"),
    ("learning_rate-None", _net_params, {"learning_rate": None}, TypeError, "'learning_rate' must be int, float, "
     "Tensor, Iterable or LearningRateSchedule"),
    # MindSpore iterates over the string ('0', '.', '1'): a ValueError, kept for parity.
    ("learning_rate-str", _net_params, {"learning_rate": "0.1"}, ValueError, "could not convert string to float"),
    ("learning_rate-2d-Tensor", _net_params, {"learning_rate": Tensor(np.ones((2, 2), np.float32))}, ValueError,
     "'learning_rate'"),
    ("use_locking-int", _net_params, {"use_locking": 1}, TypeError, "'use_locking'"),
    ("centered-str", _net_params, {"centered": "yes"}, TypeError, "'centered'"),
    ("params-a-Parameter", lambda: P(), {}, TypeError, "the argument 'parameters' must be 'Parameter' or 'dict'"),
    ("params-float-list", lambda: [1.0, 2.0], {}, TypeError, "'parameters' must be 'Parameter' or 'dict'"),
    ("params-Tensor-in-list", lambda: [T()], {}, TypeError, "'parameters' must be 'Parameter' or 'dict'"),
    ("params-empty", lambda: [], {}, ValueError, "the argument parameters must not be empty"),
    ("params-None", lambda: None, {}, ValueError, "the argument parameters can not be None"),
    ("params-group-bad-key", _group(bogus=1), {}, KeyError, "bogus"),
    ("params-same-Parameter-twice", lambda: [P()] * 2, {}, ValueError, "already exists"),
    ("params-duplicate-names", lambda: [Parameter(T(), name="dup"), Parameter(T(), name="dup")], {}, ValueError,
     "its name 'dup' already exists"),
    # MindSpore's initializer refuses zero-size state (so nn.RMSProp cannot hold a zero-size Parameter).
    ("params-zero-size", lambda: [P((0,)), P((3,))], {}, ValueError, "the value of 'shape' must be positive"),
]


@pytest.mark.parametrize("case", SHARED_CTOR_CASES, ids=[c[0] for c in SHARED_CTOR_CASES])
def test_constructor_raises_like_mindspore(case):
    _, make_params, kwargs, exc, expected = case
    with pytest.raises(exc) as ref:
        nn.RMSProp(make_params(), **kwargs)
    params = make_params()
    snap = Snapshot(_parameters(params))
    with pytest.raises(exc) as ours:
        rms.RMSProp(params, **kwargs)
    unnamed = lambda e: re.sub(r"\be\d+\b", "e#", str(e.value))  # noqa: E731 - our Parameters' names differ
    assert unnamed(ours) == unnamed(ref)
    assert expected in str(ours.value), str(ours.value)
    snap.assert_unchanged()


def _wait(outputs):
    """PyNative may run a compiled step asynchronously: reading its outputs waits for it (and raises)."""
    for out in outputs if isinstance(outputs, tuple) else (outputs,):
        out.asnumpy()


class _NanSchedule(LearningRateSchedule):
    """log(step - 1): NaN at step 0, then a finite value from step 2."""

    def construct(self, global_step):
        return ms.ops.log(global_step.astype(ms.float32) - 1.0)


class _NegativeSchedule(LearningRateSchedule):
    def construct(self, global_step):
        return global_step.astype(ms.float32) - 0.5


# Stricter than nn.RMSProp (which accepts these and trains to NaN or diverges): ValueError naming the argument.
STRICT_CTOR_CASES = [
    ("decay-above-one", _net_params, {"decay": 1.5}, "the argument 'decay' is out of range: expected a value "
     "in [0, 1], got 1.5"),
    *[(f"learning_rate-Tensor-{v}", _net_params, {"learning_rate": Tensor(v, ms.float32)},
       f"'learning_rate' must hold finite values >= 0, but got {v} (value 0 of 1)") for v in (NAN, INF, -INF)],
    ("learning_rate-Tensor-negative", _net_params, {"learning_rate": Tensor(-0.5, ms.float32)},
     "'learning_rate' must hold finite values >= 0, but got -0.5"),
    ("learning_rate-1d-Tensor-with-nan", _net_params, {"learning_rate": Tensor(np.array([0.1, NAN], np.float32))},
     "'learning_rate' must hold finite values >= 0, but got nan (value 1 of 2)"),
    ("learning_rate-list-with-inf", _net_params, {"learning_rate": [0.1, 0.2, INF]},
     "'learning_rate' must hold finite values >= 0, but got inf (value 2 of 3)"),
    ("learning_rate-tuple-with-negative", _net_params, {"learning_rate": (0.1, -0.25)},
     "'learning_rate' must hold finite values >= 0, but got -0.25 (value 1 of 2)"),
    ("group-lr-Tensor-nan", _group(lr=Tensor(NAN, ms.float32)), {}, "'learning_rate' must hold finite values"),
    ("group-lr-list-with-negative", _group(lr=[0.1, -1.0]), {}, "'learning_rate' must hold finite values >= 0, "
     "but got -1.0"),
]


@pytest.mark.parametrize("case", STRICT_CTOR_CASES, ids=[c[0] for c in STRICT_CTOR_CASES])
def test_constructor_rejects_non_finite_learning_rates_mindspore_accepts(case):
    _, make_params, kwargs, expected = case
    nn.RMSProp(make_params(), **kwargs)  # accepted by MindSpore
    params = make_params()
    snap = Snapshot(_parameters(params))
    with pytest.raises(ValueError) as info:
        rms.RMSProp(params, **kwargs)
    assert expected in str(info.value), str(info.value)
    assert str(info.value).startswith("For 'RMSProp', the argument '")
    snap.assert_unchanged()


# ---------------------------------------------------------------------------------------------------------
# rmsprop_ops.mindspore.RMSProp: a step with bad gradients or a schedule that goes non-finite
# ---------------------------------------------------------------------------------------------------------

def _grads():
    return (T((3,)), T((2, 2)))


STEP_CASES = [
    # (id, gradients factory, our exception, nn.RMSProp's exception, substring of ours)
    ("grads-short", lambda: _grads()[:1], RuntimeError, RuntimeError,
     "'gradients' must hold one Tensor per parameter: expected 2, got 1"),
    ("grads-long", lambda: _grads() + (T(),), RuntimeError, RuntimeError, "expected 2, got 3"),
    ("grads-list", lambda: list(_grads()), RuntimeError, RuntimeError, "'gradients' must be a tuple of Tensors"),
    ("grad-ndarray", lambda: (np.ones(3, np.float32), T((2, 2))), TypeError, TypeError,
     "'gradients[0]' must be a Tensor, but got ndarray"),
    # nn.RMSProp fails with AttributeError ('NoneType' object has no attribute 'dtype'), naming nothing.
    ("grad-None", lambda: (T((3,)), None), TypeError, AttributeError, "'gradients[1]' must be a Tensor, but got "
     "NoneType"),
    ("grad-float64", lambda: (T((3,), np.float64), T((2, 2))), TypeError, TypeError,
     "grads[0]: expected dtype Float32, got Float64"),
    ("grad-int32", lambda: (T((3,)), T((2, 2), np.int32)), TypeError, TypeError,
     "grads[1]: expected dtype Float32, got Int32"),
    ("grad-shape", lambda: (T((3,)), T((4,))), ValueError, ValueError,
     "grads[1]: expected shape (2, 2) like params[1], got (4,)"),
    ("grad-rank", lambda: (T((3, 1)), T((2, 2))), ValueError, ValueError,
     "grads[0]: expected shape (3,) like params[0], got (3, 1)"),
]


@pytest.mark.parametrize("case", STEP_CASES, ids=[c[0] for c in STEP_CASES])
def test_step_with_bad_gradients(mode, case):
    _, make_grads, exc, ref_exc, expected = case
    with pytest.raises(ref_exc):
        nn.RMSProp(_net_params(), momentum=0.5)(make_grads())
    opt = rms.RMSProp(_net_params(), momentum=0.5)
    snap = Snapshot(_parameters(list(opt.get_parameters())))
    with pytest.raises(exc) as info:
        opt(make_grads())
    assert expected in str(info.value), str(info.value)
    snap.assert_unchanged()


def test_step_with_int_params_raises_like_mindspore(mode):
    with pytest.raises(TypeError):
        nn.RMSProp([P(dtype=np.int32)])((T(dtype=np.int32),))
    opt = rms.RMSProp([P(dtype=np.int32)])
    snap = Snapshot(_parameters(list(opt.get_parameters())))
    with pytest.raises(TypeError, match=r"params\[0\]: expected a floating-point dtype"):
        opt((T(dtype=np.int32),))
    snap.assert_unchanged()


def _lr_refusal(got):
    """The core's message for a refused lr tensor value (the registry's range check, as for a number)."""
    return f"lr: expected a finite number, got {got}" if got == "nan" else f"lr: expected a value >= 0, got {got}"


@pytest.mark.parametrize("schedule, centered, got", [(_NanSchedule, False, "nan"), (_NanSchedule, True, "nan"),
                                                     (_NegativeSchedule, False, "-0.5")],
                         ids=["nan", "nan-centered", "negative"])
def test_schedule_giving_a_bad_lr_is_refused_by_the_kernel(mode, capfd, schedule, centered, got):
    # The value only exists inside the compiled step: the kernel (on CPU, where it can read it) refuses the
    # launch. MindSpore reports that as its RuntimeError; the core's message is on stderr and in last_error().
    params = _net_params()
    ref = nn.RMSProp([P((3,)), P((2, 2))], learning_rate=schedule(), centered=centered, momentum=0.5)
    ref(_grads())
    if got == "nan":
        assert np.isnan(ref.moment[0].asnumpy()).all()  # MindSpore applies it
    opt = rms.RMSProp(params, learning_rate=schedule(), centered=centered, momentum=0.5)
    snap = Snapshot(_parameters(list(opt.get_parameters())))
    _clear_last_error()
    capfd.readouterr()
    with pytest.raises(RuntimeError) as info:
        _wait(opt(_grads()))
    assert FUNC_NAME in str(info.value)
    message = _lr_refusal(got)
    assert rms.last_error() == message
    assert message in capfd.readouterr().err
    snap.assert_unchanged()  # global_step included: it advances only after a launch
    assert int(opt.global_step.asnumpy()[0]) == 0


def test_schedule_refusal_inside_a_train_cell_leaves_the_network_unchanged(capfd):
    ms.set_context(mode=ms.GRAPH_MODE)
    net = nn.Dense(3, 2)
    opt = rms.RMSProp(net.trainable_params(), learning_rate=_NanSchedule(), momentum=0.9)
    train = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), opt)
    snap = Snapshot(_parameters(list(train.get_parameters())))
    _clear_last_error()
    with pytest.raises(RuntimeError, match=FUNC_NAME):
        train(T((4, 3)), T((4, 2), fill=0.0))
    assert rms.last_error() == _lr_refusal("nan")
    snap.assert_unchanged()


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzz_functional_boundary_in_subprocess(seed):
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "fuzz_ms_boundary.py")
    env = dict(os.environ, GLOG_v="3")
    proc = subprocess.run([sys.executable, script, str(seed), "400"], capture_output=True, text=True, timeout=600,
                          env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "fuzz ok" in proc.stdout
    outcomes = ast.literal_eval(proc.stdout.split("outcomes:", 1)[1].splitlines()[0].strip())
    assert outcomes.get("ok", 0) >= 20 and sum(outcomes.values()) >= 400, outcomes  # both paths exercised


@pytest.mark.parametrize("schedule, got", [(_NanSchedule, "nan"), (_NegativeSchedule, "-0.5")],
                         ids=["nan", "negative"])
def test_a_refused_group_schedule_leaves_every_group_unchanged(mode, schedule, got):
    # One launch per group: a schedule's bad lr is passed to every launch, so the first one is refused.
    opt = rms.RMSProp([{"params": [P((3,))], "lr": 0.1}, {"params": [P((2, 2))], "lr": schedule()},
                       {"params": [P((4,), np.float64)]}], learning_rate=0.05, momentum=0.5)
    assert len(opt._plan.launches) == 3
    snap = Snapshot(_parameters(list(opt.get_parameters())))
    _clear_last_error()
    with pytest.raises(RuntimeError, match=FUNC_NAME):
        _wait(opt((T((3,)), T((2, 2)), T((4,), np.float64))))
    assert rms.last_error() == _lr_refusal(got)
    snap.assert_unchanged()


def test_group_schedules_that_stay_finite_train_like_mindspore(mode):
    # The guard above must not change a healthy step: compare with nn.RMSProp over a few steps.
    results = []
    for cls in (nn.RMSProp, rms.RMSProp):
        ms.set_seed(0)
        params = [P((3,)), P((2, 2))]
        groups = [{"params": params[:1], "lr": nn.ExponentialDecayLR(0.1, 0.5, 1)}, {"params": params[1:]}]
        opt = cls(groups, learning_rate=0.05, momentum=0.5)
        for _ in range(3):
            opt(_grads())
        results.append([p.asnumpy() for p in params])
    for ours, ref in zip(*reversed(results)):
        np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=1e-7)
