"""Build and runtime facts: CUDA support and the CPU thread count."""

from __future__ import annotations

import numbers

from . import _core

__all__ = ["built_with_cuda", "cuda_available", "set_num_threads", "get_num_threads", "get_include", "get_library",
           "op_stats", "reset_op_stats"]


def built_with_cuda() -> bool:
    """True when the CUDA kernels were compiled into the core (a CUDA compiler was found at build time)."""
    return _core.built_with_cuda()


def cuda_available() -> bool:
    """True when built with CUDA and a CUDA device is usable now."""
    return _core.built_with_cuda() and _core.cuda_available()


def set_num_threads(n: int) -> None:
    """Threads the CPU kernel uses (default: the CPUs this process may run on, or $RMSPROP_OPS_NUM_THREADS);
    ``n`` is an int in [1, 1024].

    Results do not depend on it: every element is computed by the same code whichever thread runs it.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    n = int(n)
    if not 1 <= n <= _core.MAX_THREADS:
        shown = n if abs(n) < 10 ** 30 else f"an int of {n.bit_length()} bits"
        raise ValueError(f"n: expected an int in [1, {_core.MAX_THREADS}], got {shown}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    return _core.get_num_threads()


def get_include() -> str:
    """Directory holding ``rmsprop_ops/c_api.h`` (and the rule headers) for building against the core."""
    import os

    return os.path.join(os.path.dirname(__file__), "include")


def get_library() -> str:
    """Path of ``librmsprop_ops_core.so``, the C ABI that the Paddle and MindSpore custom ops link to."""
    import os

    return os.path.join(os.path.dirname(__file__), "lib", "librmsprop_ops_core.so")


def op_stats() -> dict:
    """What the core's update op has done in this process, whichever front end called it (this package's
    functions, the Paddle custom ops, the MindSpore kernel: all run the one ``librmsprop_ops_core.so``):
    successful calls that reached a kernel, the tensors (parameters) and elements they updated, per device,
    and the totals::

        {"calls": 3, "tensor_sets": 30, "elements": 3000,
         "cpu": {"calls": 3, "tensor_sets": 30, "elements": 3000}, "cuda": {...}}

    A call skipped by ``skip_update`` counts (the kernel reads the flag). Frameworks that queue work
    (MindSpore PyNative, CUDA streams) count a call when their runtime makes it.
    """
    per_device = _core.op_stats()
    totals = {k: sum(d[k] for d in per_device.values()) for k in ("calls", "tensor_sets", "elements")}
    return {**totals, **per_device}


def reset_op_stats() -> None:
    """Sets every counter of :func:`op_stats` to 0."""
    _core.reset_op_stats()
