"""Hostile input at the core's boundary: lists changed while a call reads them, lying DLPack producers and
descriptors, byte order, one memory seen through two exporters, torch views and autograd, the C ABI.

The crash-prone table (tests/scripts/boundary_cases.py) runs in one subprocess: a crash fails the cases it
takes down, named, and pytest survives. Each case must raise the named error with nothing modified, or
succeed with the right result.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import numbers
import os
import subprocess
import sys

import numpy as np
import pytest

import rmsprop_ops

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "boundary_cases.py")
_spec = importlib.util.spec_from_file_location("boundary_cases", SCRIPT)
boundary_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(boundary_cases)
CASES = boundary_cases.CASES
OK = dict(lr=0.1, rho=0.9, epsilon=1e-6)


@pytest.fixture(scope="module")
def table():
    proc = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=600)
    results, begun = {}, None
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        if row.get("begin"):
            begun = row["case"]
        else:
            results[row["case"]] = row
            begun = None
    return results, begun, proc


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(table, case):
    results, crashed_in, proc = table
    if case.id not in results:
        where = f"the subprocess died in case {crashed_in!r}" if crashed_in else "no result"
        pytest.fail(f"{where} (exit {proc.returncode}): {proc.stderr[-2000:]}")
    row = results[case.id]
    if row.get("skipped"):
        pytest.skip(f"needs {case.requires}")
    assert row["exc"] == case.exc, row
    assert row["msg"].startswith(case.prefix), row["msg"]
    assert row["unchanged"], f"a refused call modified an array: {row}"
    assert row["check"] == "", row["check"]


# ---- numbers: any real number, named errors for the rest -------------------------------------------------

def _step(**kw):
    p, g, ms, mom = (np.linspace(-1, 1, 7).astype(np.float32), np.full(7, 0.3, np.float32),
                     np.full(7, 0.1, np.float32), np.zeros(7, np.float32))
    rmsprop_ops.rmsprop_(p, g, ms, moment=mom, **kw)
    return p, ms, mom


def test_numpy_scalars_are_numbers():
    as_floats = dict(lr=0.1, rho=0.9, epsilon=1e-6, momentum=0.5, weight_decay=0.01, rescale_grad=2.0,
                     clip_gradient=5.0, clip_weights=3.0)
    kinds = dict(lr=np.float32(0.1), rho=np.float16(0.9), epsilon=np.float64(1e-6), momentum=np.float32(0.5),
                 weight_decay=np.float32(0.01), rescale_grad=np.int64(2), clip_gradient=np.int32(5),
                 clip_weights=np.uint8(3))
    # Each NumPy scalar means its own value: np.float32(0.1) is the float 0.10000000149..., not 0.1.
    want = _step(**{k: float(v) for k, v in kinds.items()}, centered=False)
    got = _step(**kinds, centered=np.bool_(False), eps_in_sqrt=np.bool_(True), skip_update=np.bool_(False))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(got[0], _step(**as_floats)[0])  # np.float16(0.9) is not 0.9: it was read as is
    untouched = _step(**as_floats, skip_update=np.bool_(True))
    np.testing.assert_array_equal(untouched[0], np.linspace(-1, 1, 7).astype(np.float32))


class BadFloat(numbers.Real):
    """A numbers.Real whose __float__ raises (everything else is never reached)."""

    def __float__(self):
        raise RuntimeError("no float today")

    __abs__ = __add__ = __ceil__ = __eq__ = __floor__ = __floordiv__ = __le__ = __lt__ = __mod__ = __mul__ = \
        __neg__ = __pos__ = __pow__ = __radd__ = __rfloordiv__ = __rmod__ = __rmul__ = __round__ = __rpow__ = \
        __rtruediv__ = __truediv__ = __trunc__ = lambda *a: NotImplemented


@pytest.mark.parametrize("kw, exc, prefix", [
    (dict(rho=10 ** 400), ValueError, "rho: expected a finite number, got an int of 1329 bits (too large"),
    (dict(lr=10 ** 400), ValueError, "lr: expected a finite number, got an int of 1329 bits"),
    (dict(momentum=-(10 ** 400)), ValueError, "momentum: expected a finite number"),
    (dict(epsilon=BadFloat()), TypeError, "epsilon: expected a float, but float() of BadFloat raised RuntimeError: "
     "no float today"),
    (dict(rho=np.float64("nan")), ValueError, "rho: expected a finite number, got nan"),
    (dict(rho=np.array(0.9)), TypeError, "rho: expected a float, got ndarray"),
    (dict(lr="0.1"), TypeError, "lr: expected a float or a one-element array, got str"),
    (dict(skip_update=1), TypeError, "skip_update: expected a bool or a one-element array, got int"),
])
def test_bad_numbers_are_named(kw, exc, prefix):
    p = np.ones(3, np.float32)
    with pytest.raises(exc) as info:
        rmsprop_ops.rmsprop_(p, np.ones(3, np.float32), np.zeros(3, np.float32), **{**OK, **kw})
    assert str(info.value).startswith(prefix), str(info.value)
    np.testing.assert_array_equal(p, np.ones(3, np.float32))


def test_per_tensor_lists_take_numpy_scalars_and_name_huge_ints():
    ps = [np.ones(3, np.float32), np.ones(3, np.float32)]
    args = ([np.ones(3, np.float32)] * 2, [np.zeros(3, np.float32), np.zeros(3, np.float32)])
    rmsprop_ops.rmsprop_multi_(ps, *args, lr=[np.float32(0.1), np.int64(0)], weight_decay=[np.float16(0.5), 0],
                               rho=0.9, epsilon=1e-6)
    assert ps[0][0] < 1 and ps[1][0] == 1
    with pytest.raises(ValueError, match=r"^weight_decay\[1\]: expected a finite number, got an int of"):
        rmsprop_ops.rmsprop_multi_(ps, *args, lr=0.1, weight_decay=[0.0, 10 ** 400], rho=0.9, epsilon=1e-6)


def test_numbers_in_messages_read_as_python_writes_them():
    with pytest.raises(ValueError) as info:
        rmsprop_ops.rmsprop_(np.ones(2, np.float32), np.ones(2, np.float32), np.zeros(2, np.float32), lr=0.1,
                             rho=0.9, epsilon=1e-6, momentum=0.9)
    assert "momentum=0.9 > 0" in str(info.value), str(info.value)
    ps = [np.ones(2, np.float32), np.ones(3, np.float32)]
    with pytest.raises(ValueError, match=r"^lr\[1\]: expected a finite value >= 0, got -0.2$"):
        rmsprop_ops.rmsprop_multi_(ps, [np.ones(2, np.float32), np.ones(3, np.float32)],
                                   [np.zeros(2, np.float32), np.zeros(3, np.float32)], lr=[0.1, -0.2], rho=0.9,
                                   epsilon=1e-6)
    with pytest.raises(ValueError, match=r"^rho: expected a value in \[0, 1\], got 1.1$"):
        rmsprop_ops.rmsprop_multi_(ps, ps, ps, lr=0.1, rho=1.1, epsilon=1e-6)


# ---- threads -------------------------------------------------------------------------------------------

def test_set_num_threads_range_and_c_abi_cap():
    old = rmsprop_ops.get_num_threads()
    try:
        for bad in (0, -3, rmsprop_ops._core.MAX_THREADS + 1, 2 ** 31, 10 ** 400):
            with pytest.raises(ValueError, match=r"^n: expected an int in \[1, 1024\], got "):
                rmsprop_ops.set_num_threads(bad)
        rmsprop_ops.set_num_threads(np.int64(3))
        assert rmsprop_ops.get_num_threads() == 3
        lib = ctypes.CDLL(rmsprop_ops.get_library())
        lib.rmsprop_ops_set_num_threads(2 ** 30)  # the C ABI caps what it cannot refuse
        assert rmsprop_ops.get_num_threads() == rmsprop_ops._core.MAX_THREADS
    finally:
        rmsprop_ops.set_num_threads(old)


# ---- torch autograd ------------------------------------------------------------------------------------

def test_torch_update_is_seen_by_autograd_like_an_inplace_op():
    torch = pytest.importorskip("torch")

    def backward_after(update):
        w = torch.ones(4, requires_grad=True)
        loss = (w * w).sum()  # saves w for the backward pass
        with torch.no_grad():
            update(w)
        loss.backward()

    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        backward_after(lambda w: w.add_(1.0))  # torch's own behaviour: the reference
    for to_core in (lambda w: w, lambda w: w.detach()):  # fast path, and a detached view sharing the counter
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            backward_after(lambda w: rmsprop_ops.rmsprop_(to_core(w), torch.full((4,), 0.5), torch.zeros(4), **OK))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):  # the protocol path
        backward_after(lambda w: rmsprop_ops.rmsprop_multi_([np.ones(4, np.float32), w.detach()],
                                                            [np.ones(4, np.float32), torch.ones(4)],
                                                            [np.zeros(4, np.float32), torch.zeros(4)], **OK))


def test_torch_untracked_update_still_fine():
    torch = pytest.importorskip("torch")
    w = torch.ones(4, requires_grad=True)
    with torch.no_grad():
        rmsprop_ops.rmsprop_(w, torch.full((4,), 0.5), torch.zeros(4), **OK)
    (w * w).sum().backward()  # the graph is built after the update: nothing stale
    torch.testing.assert_close(w.grad, 2 * w.detach())
