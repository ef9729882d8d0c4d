"""Hand-made DLPack capsules and producers for boundary tests: any field of the descriptor can lie.

The descriptors live in ctypes memory kept alive for the whole process (a capsule's consumer may keep
the pointer until its call returns); the deleter is NULL, so nothing is freed twice.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, Structure, c_char_p, c_int32, c_int64, c_uint8, c_uint16, c_uint32, c_uint64, c_void_p

import numpy as np


class DLDevice(Structure):
    _fields_ = [("device_type", c_int32), ("device_id", c_int32)]


class DLDataType(Structure):
    _fields_ = [("code", c_uint8), ("bits", c_uint8), ("lanes", c_uint16)]


class DLTensor(Structure):
    _fields_ = [("data", c_void_p), ("device", DLDevice), ("ndim", c_int32), ("dtype", DLDataType),
                ("shape", POINTER(c_int64)), ("strides", POINTER(c_int64)), ("byte_offset", c_uint64)]


class DLManagedTensor(Structure):
    _fields_ = [("dl_tensor", DLTensor), ("manager_ctx", c_void_p), ("deleter", c_void_p)]


class DLPackVersion(Structure):
    _fields_ = [("major", c_uint32), ("minor", c_uint32)]


class DLManagedTensorVersioned(Structure):
    _fields_ = [("version", DLPackVersion), ("manager_ctx", c_void_p), ("deleter", c_void_p), ("flags", c_uint64),
                ("dl_tensor", DLTensor)]


FLOAT32 = (2, 32, 1)
READ_ONLY, IS_COPIED = 1, 2
_keep = []  # every descriptor, shape array and name ever made: alive until the process ends

_new = ctypes.pythonapi.PyCapsule_New
_new.restype = ctypes.py_object
_new.argtypes = [c_void_p, c_char_p, c_void_p]


def _int64s(values):
    if values is None:
        return None
    arr = (c_int64 * max(len(values), 1))(*values)
    _keep.append(arr)
    return ctypes.cast(arr, POINTER(c_int64))


def capsule(array: np.ndarray | None = None, *, data=None, shape=None, ndim=None, strides=None, byte_offset=0,
            dtype=FLOAT32, device=(1, 0), versioned=False, version=(1, 0), flags=0, name=None,
            null_shape=False):
    """A DLPack capsule describing ``array`` (its memory, shape and float32 dtype) with any field replaced.
    The array must outlive the capsule's use; ``_keep`` holds it."""
    if array is not None:
        _keep.append(array)
        data = array.ctypes.data if data is None else data
        shape = list(array.shape) if shape is None else shape
    shape = [] if shape is None else list(shape)
    t = DLTensor()
    t.data = data
    t.device = DLDevice(*device)
    t.ndim = len(shape) if ndim is None else ndim
    t.dtype = DLDataType(*dtype)
    t.shape = None if null_shape else _int64s(shape)
    t.strides = _int64s(strides)
    t.byte_offset = byte_offset
    if versioned:
        m = DLManagedTensorVersioned()
        m.version = DLPackVersion(*version)
        m.flags = flags
        m.dl_tensor = t
    else:
        m = DLManagedTensor()
        m.dl_tensor = t
    _keep.append(m)
    cname = (name or ("dltensor_versioned" if versioned else "dltensor")).encode()
    _keep.append(cname)
    return _new(ctypes.addressof(m), cname, None)


class Producer:
    """An object speaking the DLPack protocol with answers chosen by the test: ``device`` is what
    ``__dlpack_device__`` returns (or raises, when an exception), ``make`` makes the capsule."""

    def __init__(self, make, device=(1, 0), on_export=None):
        self._make = make
        self._device = device
        self._on_export = on_export

    def __dlpack_device__(self):
        if isinstance(self._device, BaseException):
            raise self._device
        return self._device

    def __dlpack__(self, stream=None, max_version=None, **kw):
        if self._on_export is not None:
            self._on_export()
        return self._make()
