"""Hostile input at the core's boundary, one table, run by tests/core/test_core_boundary.py in a subprocess
so that a crash fails the cases it takes down instead of killing pytest.

Each case builds a call and the arrays it must leave untouched. Expected: the named exception with a
message starting with the prefix and every watched array bitwise unchanged, or (exc None) success and a
check of the result. Prints one JSON line per case ("begin" first, so that a crash is located).

Classes: lists changed while the call reads them (producer callbacks, list subclasses, another thread),
lying DLPack descriptors and producers, non-native byte order, overlap seen through two exporters, torch
views and autograd, and descriptors handed straight to the C ABI.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0] + "/tests/support")
import c_abi  # noqa: E402
from boundary_builders import *  # noqa: E402,F401,F403 - the table below names the builders
from dlpack_craft import IS_COPIED, READ_ONLY, capsule  # noqa: E402

CASES = [
    # lists changed while the call reads them
    Case("producer-clears-grads", None, "", _producer_clears_grads),
    Case("producer-replaces-param", None, "", _producer_replaces_param),
    Case("producer-shrinks-lists", None, "", _producer_shrinks_lists),
    Case("producer-grows-lists", None, "", _producer_grows_lists),
    Case("list-subclass-fresh-items", None, "", lambda: Trial(multi(FreshItems([0, 0]), FreshItems([0, 0]),
                                                                     FreshItems([0, 0])), [], lambda: "")),
    Case("list-iter-raises", "TypeError", "params: reading the list raised RuntimeError: boom from __iter__",
         lambda: Trial(multi(Raising([f32()], "iter"), [f32()], [f32()]), [])),
    Case("list-len-raises", "TypeError", "grads: reading the list raised RuntimeError: boom from __len__",
         lambda: Trial(multi([f32()], Raising([f32()], "len"), [f32()]), [])),
    Case("thread-replaces-grads", None, "", _thread_replaces_grads),
    # lying producers
    Case("device-not-tuple", "TypeError", "param: expected __dlpack_device__() to return a (device_type, "
         "device_id) tuple, got str", lambda: _param_via(answer="cpu")),
    Case("device-short-tuple", "TypeError", "param: expected __dlpack_device__() to return a (device_type, "
         "device_id) tuple, got tuple", lambda: _param_via(answer=(1,))),
    Case("device-float", "TypeError", "param: expected __dlpack_device__() to return (device_type, device_id) "
         "as ints, got device_type of type float", lambda: _param_via(answer=(1.5, 0))),
    Case("device-index-raises", "TypeError", "param: expected __dlpack_device__() to return (device_type, "
         "device_id) as ints, got device_id of type BadIndex", lambda: _param_via(answer=(1, BadIndex()))),
    Case("device-id-none-ok", None, "", _device_id_none),
    Case("device-huge", "ValueError", "param: expected __dlpack_device__() to return a device_type in the "
         "int32 range", lambda: _param_via(answer=(2 ** 40, 0))),
    Case("device-raises", "TypeError", "param: __dlpack_device__() raised ValueError: nope",
         lambda: _param_via(answer=ValueError("nope"))),
    Case("dlpack-raises", "TypeError", "param: expected an array exportable through DLPack, but __dlpack__() "
         "raised RuntimeError: no", lambda: _param_via(make=lambda: (_ for _ in ()).throw(RuntimeError("no")))),
    Case("dlpack-returns-int", "TypeError", "param: expected __dlpack__() to return a DLPack capsule, got int",
         lambda: _param_via(make=lambda: 5)),
    Case("dlpack-consumed-twice", "TypeError", "params[1]: expected __dlpack__() to return an unconsumed "
         "'dltensor' or 'dltensor_versioned' DLPack capsule, got one already consumed", _consumed_twice),
    Case("capsule-wrong-name", "TypeError", "param: expected __dlpack__() to return an unconsumed 'dltensor' or "
         "'dltensor_versioned' DLPack capsule, got a capsule named 'foo'",
         lambda: _param_via(name="foo")),
    # lying descriptors
    Case("ndim-negative", "ValueError", "param: expected ndim >= 0, got -1", lambda: _param_via(ndim=-1)),
    Case("ndim-huge", "ValueError", "param: expected at most 64 dimensions, got 100000",
         lambda: _param_via(ndim=100000)),
    Case("shape-null", "ValueError", "param: expected a shape array for 1 dimensions, got NULL",
         lambda: _param_via(null_shape=True)),
    Case("dim-negative-multi", "ValueError", "params[0]: expected dimensions >= 0, got -64",
         lambda: _multi_first_lies(shape=(-64,))),
    Case("numel-overflow-to-zero", "ValueError", "params[0]: expected a shape whose element count fits in int64",
         lambda: _multi_first_lies(shape=(2 ** 32, 2 ** 32))),
    Case("numel-overflow", "ValueError", "param: expected a shape whose element count fits in int64",
         lambda: _param_via(shape=(2 ** 62, 4))),
    Case("null-data", "ValueError", "param: expected data for 5 elements, got NULL", lambda: _param_via(data=0)),
    Case("byte-offset-overflow", "ValueError", "param: expected data + byte_offset inside the address space",
         lambda: _param_via(byte_offset=2 ** 64 - 8)),
    Case("end-past-address-space", "ValueError", "param: expected 5 elements inside the address space",
         lambda: _param_via(data=2 ** 64 - 16)),
    Case("strides-lie", "ValueError", "param: expected a C-contiguous array", lambda: _param_via(strides=(2,))),
    Case("lanes", "TypeError", "param: expected a floating-point array (float32, float64, float16, bfloat16), "
         "got dtype float32x4", lambda: _param_via(dtype=(2, 32, 4))),
    Case("bits-24", "TypeError", "param: expected a floating-point array", lambda: _param_via(dtype=(2, 24, 1))),
    Case("device-type-unknown", "ValueError", "param: expected a cpu or cuda array, got DLPack device type 7",
         lambda: _param_via(answer=(7, 0), device=(7, 0))),
    Case("versioned-major-2", "TypeError", "param: expected a DLPack tensor of major version 1, got version 2.0",
         lambda: _param_via(versioned=True, version=(2, 0))),
    Case("versioned-readonly-param", "ValueError", "param: expected a writable array",
         lambda: _versioned("param", READ_ONLY)),
    Case("versioned-readonly-state", "ValueError", "mean_square: expected a writable array",
         lambda: _versioned("mean_square", READ_ONLY)),
    Case("versioned-copied-param", "ValueError", "param: expected an array exported without a copy",
         lambda: _versioned("param", IS_COPIED)),
    Case("versioned-readonly-grad-ok", None, "", _readonly_grad_ok),
    Case("zero-size-null-data-ok", None, "", _zero_size_null_data),
    Case("lr-producer-negative-dim", "ValueError", "lr: expected dimensions >= 0",
         lambda: Trial(single(*trio(), lr=Producer(lambda: capsule(f32(1), shape=(-1,)))), [])),
    # byte order
    *[Case(f"big-endian-{r}", "TypeError", f"{r}: expected native byte order, got dtype '>{c}'",
           lambda r=r: _big_endian(r))
      for r, c in (("param", "f4"), ("grad", "f4"), ("mean_square", "f4"), ("moment", "f4"),
                   ("master_param", "f4"), ("lr", "f8"), ("rescale_grad", "f8"), ("skip_update", "i4"))],
    Case("big-endian-multi", "TypeError", "params[1]: expected native byte order", _big_endian_multi),
    # one memory, two exporters
    Case("grad-is-torch-view-of-param", "ValueError", "grad: memory overlaps param", _torch_view_of_param, "torch"),
    Case("state-is-dlpack-view-of-param", "ValueError", "mean_square: memory overlaps param", _dlpack_view_of_param),
    Case("lr-inside-param", "ValueError", "lr: memory overlaps param", _lr_inside_param),
    # torch views
    *[Case(f"torch-negative-view-{r}", "ValueError", f"{r}: expected a tensor whose memory holds its values",
           lambda r=r: _neg_view(r), "torch") for r in ("param", "grad", "mean_square", "lr")],
    # the C ABI
    Case("cabi-negative-numel", "ValueError", "param: expected an element count >= 0, got -64",
         lambda: _cabi(lambda s: setattr(s, "param", c_abi.tensor(None, numel=-64, data=16, dtype=0, device=0,
                                                                     writable=1)))),
    Case("cabi-shape-numel-mismatch", "ValueError", "grad: expected numel to match shape (4,) (4 elements), got 5",
         lambda: _cabi(lambda s: setattr(s, "grad", c_abi.tensor(f32(), shape=[4])))),
    Case("cabi-negative-dim", "ValueError", "mean_square: expected dimensions >= 0, got shape (-5,)",
         lambda: _cabi(lambda s: setattr(s, "mean_square", c_abi.tensor(f32(fill=0.0), shape=[-5])))),
    Case("cabi-negative-ndim", "ValueError", "param: expected ndim >= 0, got -2",
         lambda: _cabi(lambda s: setattr(s.param, "ndim", -2))),
    Case("cabi-past-address-space", "ValueError", "param: expected 5 elements of float32 to fit in the address space",
         lambda: _cabi(lambda s: setattr(s.param, "data", 2 ** 64 - 8))),
    Case("cabi-unknown-dtype", "TypeError", "grad: expected dtype float32 (the param's dtype), got unknown",
         lambda: _cabi(lambda s: setattr(s.grad, "dtype", 77))),
    Case("cabi-unknown-device", "ValueError", "mean_square: expected a tensor on cpu like param, got one on ? "
         "(device code 5)", lambda: _cabi(lambda s: setattr(s.mean_square, "device", 5))),
    Case("cabi-lr-misaligned", "ValueError", "lr: expected memory aligned to 8 bytes for float64",
         lambda: _cabi(_cabi_hp(lr_ptr=(_LR_BYTES.ctypes.data + 1, 1)))),
    Case("cabi-lr-unknown-dtype", "TypeError", "lr: expected a floating-point scalar, got dtype unknown",
         lambda: _cabi(_cabi_hp(lr_ptr=(_LR_BYTES.ctypes.data, 55)))),
]


def run(ids=None):
    for case in CASES:
        if ids and case.id not in ids:
            continue
        print(json.dumps({"case": case.id, "begin": True}), flush=True)
        result = {"case": case.id, "exc": None, "msg": "", "unchanged": True, "check": ""}
        if case.requires is not None and importlib.util.find_spec(case.requires) is None:
            print(json.dumps({**result, "skipped": True}), flush=True)
            continue
        try:
            trial = case.build()
            before = [np.array(a, copy=True) for a in trial.watched]
            try:
                trial.call()
                result["check"] = trial.check() if trial.check else ""
            except Exception as e:  # noqa: BLE001 - recorded, compared by the test
                result.update(exc=type(e).__name__, msg=str(e))
            result["unchanged"] = all(np.asarray(a).tobytes() == b.tobytes() for a, b in zip(trial.watched, before))
        except Exception as e:  # noqa: BLE001 - the case could not be built: reported as such
            result.update(exc="BuildError", msg=f"{type(e).__name__}: {e}")
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    run(set(sys.argv[1:]))
