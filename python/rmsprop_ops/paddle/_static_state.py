"""A static program's flat state (``flat_state=True``) in ``paddle.optimizer.RMSProp``'s names, and back.

A program with flat state holds one buffer per kind of state, not Paddle's per-parameter accumulator
variables, so ``paddle.static.save`` files of the two do not load into each other. These convert: the
state read from a scope as ``{<param>_<kind>_0: array}`` (what a program built with Paddle's RMSProp
holds), and such a mapping (e.g. ``paddle.static.load_program_state`` of Paddle's checkpoint) written
into the buffers, paired and checked as ``set_state_dict`` pairs and checks (``_checkpoint``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import paddle

from . import _names
from ._checkpoint import base_param_name, parse, to_state
from ._state import FLAT_KINDS

__all__ = ["per_parameter", "load_per_parameter"]


def _buffers(opt, scope):
    """(chunk, [buffer array per kind], [buffer tensor per kind]) of each flat chunk, read from ``scope``."""
    for chunk in opt._store.chunks:
        tensors = []
        for buf in chunk.buffers:
            var = scope.find_var(buf.name)
            if var is None or not var.get_tensor()._is_initialized():
                raise ValueError(f"state: no value for the flat buffer {buf.name!r} in the scope (run the "
                                 f"startup program first)")
            tensors.append(var.get_tensor())
        yield chunk, [np.array(t) for t in tensors], tensors


def per_parameter(opt, scope=None):
    """The flat buffers' state of a static program, one NumPy array per parameter and kind, named as
    ``paddle.optimizer.RMSProp``'s variables (``<param>_<kind>_0``)."""
    scope = scope or paddle.static.global_scope()
    out = {}
    for chunk, arrays, _ in _buffers(opt, scope):
        for kind, array in zip(FLAT_KINDS, arrays):
            for name, off, shape in zip(chunk.names, chunk.offsets, chunk.shapes):
                out[f"{name}_{opt._acc_name(kind)}_0"] = array[off:off + math.prod(shape)].reshape(shape).copy()
    return out


def load_per_parameter(opt, state, scope=None):
    """Write ``state`` (names as :func:`per_parameter` gives them; other keys, e.g. parameters, ignored) into
    the flat buffers in ``scope``. Every buffer slice needs an entry; all are checked (pairing, shape,
    dtype, values the buffer's dtype can hold) before anything is written. Returns the keys loaded."""
    if not isinstance(state, Mapping):
        raise TypeError(f"state: expected a mapping of names to arrays, got {type(state).__name__}")
    scope = scope or paddle.static.global_scope()
    # The averages of use_ema are variables of their own (<param>_ema_0), not in the flat buffers.
    entries = [e for e in parse(opt, state, others_ok=True) if e.kind in FLAT_KINDS]
    chunks = list(_buffers(opt, scope))
    shapes = {base_param_name(name): shape for chunk, _, _ in chunks for name, shape in zip(chunk.names, chunk.shapes)}
    ours = _names.match({e.param: tuple(e.value.shape) for e in entries}, shapes)
    given = {(ours[e.param], e.kind): e for e in entries}
    writes = []
    for chunk, arrays, tensors in chunks:
        for kind, array, tensor in zip(FLAT_KINDS, arrays, tensors):
            for name, off, shape in zip(chunk.names, chunk.offsets, chunk.shapes):
                pname = base_param_name(name)
                e = given.get((pname, kind))
                what = f"state: {opt._acc_name(kind)!r} accumulator for parameter {pname!r}"
                if e is None:
                    raise ValueError(f"{what}: missing")
                value = to_state(e.value, _DTYPES[array.dtype], shape, what)
                array[off:off + math.prod(shape)] = value.reshape(-1)
            writes.append((tensor, array))
    for tensor, array in writes:
        tensor.set(array, _place_of(tensor))
    return sorted(e.key for e in entries)


# The flat buffers' dtypes: the state's, float32 for 16-bit parameters (_state.state_dtype).
_DTYPES = {np.dtype("float32"): paddle.float32, np.dtype("float64"): paddle.float64}


def _place_of(tensor):
    place = tensor._place()
    if place.is_gpu_place():
        return paddle.CUDAPlace(place.gpu_device_id())
    return paddle.CPUPlace()
