"""ctypes mirror of the C ABI (rmsprop_ops/c_api.h) for tests that hand the core descriptors no front end
would build. test_c_abi.py checks these layouts against the header with a C compiler."""

from __future__ import annotations

import ctypes
from ctypes import POINTER, Structure, c_char_p, c_double, c_int32, c_int64, c_size_t, c_uint32, c_void_p

import numpy as np

import rmsprop_ops

FLOAT32, FLOAT64, FLOAT16, BFLOAT16, BOOL, INT32, INT64 = range(7)
CPU, CUDA = 0, 1


class Tensor(Structure):
    _fields_ = [("data", c_void_p), ("numel", c_int64), ("shape", POINTER(c_int64)), ("ndim", c_int32),
                ("dtype", c_int32), ("writable", c_int32), ("device", c_int32)]


class TensorSet(Structure):
    _fields_ = [("param", Tensor), ("grad", Tensor), ("mean_square", Tensor), ("moment", Tensor),
                ("mean_grad", Tensor), ("master_param", Tensor), ("lr_mult", c_double), ("weight_decay", c_double),
                ("weight_decay_mode", c_int32)]


class Scalar(Structure):
    _fields_ = [("value", c_double), ("ptr", c_void_p), ("dtype", c_int32)]


class HParams(Structure):
    _fields_ = [("lr", Scalar), ("rescale_grad", Scalar), ("skip_update", Scalar), ("rho", c_double),
                ("epsilon", c_double), ("momentum", c_double), ("clip_gradient", c_double),
                ("clip_weights", c_double), ("centered", c_int32), ("eps_in_sqrt", c_int32),
                ("lr_in_momentum", c_int32), ("clip_after_weight_decay", c_int32), ("step", Scalar),
                ("nesterov", c_int32), ("bias_correction", c_int32), ("maximize", c_int32)]


def library():
    lib = ctypes.CDLL(rmsprop_ops.get_library())
    lib.rmsprop_ops_update.restype = ctypes.c_int
    lib.rmsprop_ops_update.argtypes = [POINTER(TensorSet), c_int64, POINTER(HParams), c_void_p, c_uint32,
                                       c_char_p, c_size_t]
    lib.rmsprop_ops_default_hparams.argtypes = [POINTER(HParams)]
    lib.rmsprop_ops_set_num_threads.argtypes = [ctypes.c_int]
    return lib


_keep = []


def tensor(a: np.ndarray | None, **override) -> Tensor:
    """A descriptor of ``a`` (float32/float64), with any field overridden (shape=[...] for a lying shape)."""
    t = Tensor()
    if a is not None:
        _keep.append(a)
        t.data = a.ctypes.data
        t.numel = a.size
        t.ndim = a.ndim
        t.dtype = {np.dtype(np.float32): FLOAT32, np.dtype(np.float64): FLOAT64}[a.dtype]
        t.writable = 1
        t.device = CPU
        shape = list(a.shape)
    else:
        shape = None
    shape = override.pop("shape", shape)
    if shape is not None:
        arr = (c_int64 * max(len(shape), 1))(*shape)
        _keep.append(arr)
        t.shape = ctypes.cast(arr, POINTER(c_int64))
        t.ndim = override.pop("ndim", len(shape))
    for k, v in override.items():
        setattr(t, k, v)
    return t


def update(sets, hp=None, flags=0):
    """(status, message) of rmsprop_ops_update over ``sets`` (TensorSet list) with ``hp`` (default
    hyper-parameters and lr 0.1)."""
    lib = library()
    if hp is None:
        hp = HParams()
        lib.rmsprop_ops_default_hparams(ctypes.byref(hp))
        hp.lr.value = 0.1
    arr = (TensorSet * max(len(sets), 1))(*sets)
    err = ctypes.create_string_buffer(1024)
    rc = lib.rmsprop_ops_update(arr, len(sets), ctypes.byref(hp), None, 1 if len(sets) > 1 else 0, err, len(err))
    return rc, err.value.decode()


def simple_set(param, grad, ms, **over) -> TensorSet:
    s = TensorSet()
    s.param, s.grad, s.mean_square = tensor(param), tensor(grad), tensor(ms)
    s.grad.writable = 0
    s.lr_mult = 1.0
    for k, v in over.items():
        setattr(s, k, v)
    return s
