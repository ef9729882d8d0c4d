"""Arrays of the neutral optimizer: NumPy views of params and grads, their checks, memory overlap.

Params are held as writable NumPy views of the caller's memory (NumPy arrays, CPU DLPack tensors), so
the update lands in the caller's arrays. Every check a core call would make on params and grads is
made here first, on every entry, so that a step never starts writing and then fails half-way.
"""

from __future__ import annotations

import bisect

import numpy as np

from .._rows_optimizer import RowGrad

__all__ = ["as_view", "check_param", "math_dtype", "MemoryMap", "grad_list", "read_grads", "check_overlaps"]


def as_view(name, x):
    """A NumPy view of ``x`` sharing its memory (NumPy arrays, CPU DLPack arrays)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except (RuntimeError, BufferError, TypeError, ValueError) as e:
            raise TypeError(f"{name}: expected a NumPy array or a CPU DLPack array, got {type(x).__name__} "
                            f"that NumPy cannot view ({e}); device arrays go through "
                            f"rmsprop_ops.rmsprop_multi_ or the framework adapters") from None
    raise TypeError(f"{name}: expected a NumPy array or a DLPack array, got {type(x).__name__}")


def check_param(name, v):
    """Construction-time checks, so that a param the core would reject fails here and not at a step."""
    if v.dtype.kind != "f" and v.dtype.name != "bfloat16":
        raise TypeError(f"{name}: expected a floating-point array (float32, float64, float16, bfloat16), "
                        f"got dtype {v.dtype}")
    if not v.dtype.isnative:
        raise TypeError(f"{name}: expected native byte order, got dtype {v.dtype.str} (byte-swap it with "
                        f"a.astype(a.dtype.newbyteorder('='))")
    if not v.flags.writeable:
        raise ValueError(f"{name}: expected a writable array (it is updated in place), got a read-only one")
    if not v.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array (the update is in place, so a contiguous copy "
                         f"would not update yours), got one with strides {v.strides}")
    return v


def math_dtype(dtype):
    """The core's math (and state) dtype for params of ``dtype``."""
    return np.float64 if dtype == np.float64 else np.float32


def _span(v):
    """The byte range ``[start, end)`` an array may touch (None for size 0)."""
    if v.size == 0:
        return None
    start = v.__array_interface__["data"][0]
    if v.flags.c_contiguous:
        return start, start + v.nbytes
    lo = start + sum(s * (n - 1) for s, n in zip(v.strides, v.shape) if s < 0)
    hi = start + sum(s * (n - 1) for s, n in zip(v.strides, v.shape) if s > 0) + v.itemsize
    return lo, hi


def _root(v):
    """The array at the root of ``v``'s view chain if NumPy allocated its memory, else None."""
    while isinstance(v.base, np.ndarray):
        v = v.base
    return v if v.base is None and v.flags.owndata else None


class MemoryMap:
    """The byte ranges of the params, sorted: which param (if any) an array's memory overlaps.

    Built once per optimizer; it refuses params that overlap each other (two groups holding views of
    one buffer would update the overlap twice per step), and answers each grad's query by bisection.
    """

    def __init__(self, views, names):
        spans = sorted((s[0], s[1], i) for i, s in ((i, _span(v)) for i, v in enumerate(views)) if s is not None)
        for (s0, e0, i0), (s1, e1, i1) in zip(spans, spans[1:]):
            if s1 < e0:
                a, b = sorted((i0, i1))
                what = "the same array appears twice" if (s0, e0) == (s1, e1) else "memory overlaps"
                raise ValueError(f"params: {what}: {names[b]} overlaps {names[a]} (each param needs memory "
                                 f"of its own, or the overlap is updated twice per step)")
        self._starts = [s for s, _, _ in spans]
        self._ends = [e for _, e, _ in spans]
        self._owner = [i for _, _, i in spans]
        # Memory NumPy allocated (the root of a view chain that owns its data) belongs to that root
        # alone: a grad with such a root overlaps a param only if they share the root. Params on memory
        # from elsewhere (DLPack, buffers) keep every grad on the exact address check.
        roots = [_root(v) for v in views]
        self._foreign = any(r is None for r in roots)
        self._roots = {id(r) for r in roots if r is not None}

    def overlap(self, v):
        """The index of a param whose memory overlaps ``v``'s, or None."""
        if not self._foreign:
            root = _root(v)
            if root is not None and id(root) not in self._roots:
                return None
        span = _span(v)
        if span is None or not self._starts:
            return None
        start, end = span
        k = bisect.bisect_left(self._starts, end) - 1
        if k >= 0 and self._ends[k] > start:
            return self._owner[k]
        return None


def grad_list(grads, n) -> list:
    """``grads`` as a list of ``n`` entries (the container checks only)."""
    if isinstance(grads, (np.ndarray, dict, str)) or hasattr(grads, "__dlpack__") or not hasattr(grads, "__len__"):
        raise TypeError(f"grads: expected a list of {n} arrays, got {type(grads).__name__}")
    grads = list(grads)
    if len(grads) != n:
        raise ValueError(f"grads: expected {n} arrays (one per param), got {len(grads)}")
    return grads


def read_grads(grads, views, names):
    """Check ``grads`` against the params and return NumPy views (None where a grad is None: Keras
    skips those params). Grads that are not C-contiguous are copied (they are only read)."""
    grads = grad_list(grads, len(views))
    out = []
    for i, (g, p) in enumerate(zip(grads, views)):
        if g is None or isinstance(g, RowGrad):  # RowGrad: checked by the rows update (_rows_optimizer)
            out.append(g)
            continue
        if type(g) is not np.ndarray:
            g = as_view(f"grads[{i}]", g)
        if g.shape != p.shape or g.dtype != p.dtype:
            raise ValueError(f"grads[{i}]: expected shape {p.shape} and dtype {p.dtype} (like {names[i]}), "
                             f"got shape {g.shape} and dtype {g.dtype}")
        out.append(g if g.flags.c_contiguous else np.ascontiguousarray(g))
    if all(g is None for g in out):
        raise ValueError("grads: expected at least one array, got None for every param")
    return out


def check_overlaps(grads, indices, memory: MemoryMap, names) -> None:
    """Refuse a gradient (of those at ``indices``) whose memory overlaps a param: the update would change
    it while it is being read (within one core call the core refuses it too, but a launch cannot see
    the params of the launches before it)."""
    for i in indices:
        hit = memory.overlap(grads[i])
        if hit is not None:
            raise ValueError(f"grads[{i}]: memory overlaps {names[hit]} (a gradient must not share memory "
                             f"with a param: the update would change it while reading it)")
