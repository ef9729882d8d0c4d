"""Lying descriptors at the rows C ABI (rows_api.h), handed in through ctypes as a C caller would: the same
structural checks as the dense update (checks.h: counts, shape against numel, memory inside the address
space) run on every tensor before anything is read or written."""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
from ctypes import POINTER, Structure, c_char_p, c_double, c_int32, c_size_t, c_uint32, c_void_p

import numpy as np
import pytest

from c_abi import INT64, HParams, Tensor, library, tensor

EXACT = 1


class Rows(Structure):
    _fields_ = [("param", Tensor), ("mean_square", Tensor), ("moment", Tensor), ("mean_grad", Tensor),
                ("master_param", Tensor), ("last_step", Tensor), ("step", Tensor), ("indices", Tensor),
                ("values", Tensor), ("lr_mult", c_double), ("weight_decay", c_double),
                ("weight_decay_mode", c_int32), ("mode", c_int32)]


def _int64(a, **override):
    t = tensor(None, **{"shape": list(a.shape), **override})
    t.data, t.dtype, t.writable, t.device = a.ctypes.data, INT64, 1, 0
    t.numel = override.get("numel", a.size)
    return t


def _call(lie):
    lib = library()
    lib.rmsprop_ops_rows_update.restype = ctypes.c_int
    lib.rmsprop_ops_rows_update.argtypes = [POINTER(Rows), POINTER(HParams), c_void_p, c_uint32, c_char_p, c_size_t]
    p = np.ones((4, 3), np.float32)
    ms = np.zeros_like(p)
    last, step = np.zeros(4, np.int64), np.zeros(1, np.int64)
    idx, vals = np.array([0, 2], np.int64), np.ones((2, 3), np.float32)
    keep = (p, ms, last, step, idx, vals)
    r = Rows(param=tensor(p), mean_square=tensor(ms), last_step=_int64(last), step=_int64(step),
             indices=_int64(idx), values=tensor(vals), lr_mult=1.0, mode=EXACT)
    lie(r)
    hp = HParams()
    lib.rmsprop_ops_default_hparams(ctypes.byref(hp))
    hp.lr.value = 0.1
    err = ctypes.create_string_buffer(1024)
    rc = lib.rmsprop_ops_rows_update(ctypes.byref(r), ctypes.byref(hp), None, 0, err, len(err))
    untouched = bool((p == 1).all() and (ms == 0).all() and (last == 0).all() and (step == 0).all())
    del keep
    return rc, err.value.decode(), untouched


LIES = {
    # more indices than the buffer holds: the kernel would read past it
    "indices-numel-past-shape": (lambda r: setattr(r.indices, "numel", 5),
                                 r"^indices: expected numel to match shape \(2,\)"),
    "indices-negative-count": (lambda r: (setattr(r.indices, "numel", -1), setattr(r.indices, "shape", None)),
                               r"^indices: expected an element count >= 0, got -1"),
    "last-step-past-address-space": (lambda r: setattr(r.last_step, "data", 2**64 - 16),
                                     r"^last_step: expected 4 elements of int64 to fit in the address space"),
    "values-past-address-space": (lambda r: setattr(r.values, "data", 2**64 - 8),
                                  r"^values: expected 6 elements of float32 to fit"),
    "step-negative-ndim": (lambda r: setattr(r.step, "ndim", -1), r"^step: expected ndim >= 0"),
}


def test_an_honest_call_updates():
    rc, msg, untouched = _call(lambda r: None)
    assert (rc, msg) == (0, "") and not untouched


@pytest.mark.parametrize("case", sorted(LIES))
def test_lying_descriptors_are_refused_by_name_with_nothing_written(case):
    # In a process of its own: a library that trusted the descriptor would read or write wild memory.
    out = subprocess.run([sys.executable, __file__, case], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.returncode == 0, f"the process died ({out.returncode}): {out.stderr[-2000:]}"
    rc, msg, untouched = json.loads(out.stdout)
    assert rc == 2, msg
    assert untouched
    assert re.search(LIES[case][1], msg), msg


if __name__ == "__main__":
    print(json.dumps(_call(LIES[sys.argv[1]][0])))
