"""Checkpoints of the neutral optimizer: a flat dict of NumPy arrays and ints, ``np.savez``-able.

Keys: ``mean_square.<i>``, ``moment.<i>``, ``mean_grad.<i>``, ``ema.<i>``, ``accumulator.<i>`` (``i`` the
param's position in the flat list; only the buffers this optimizer keeps), ``iterations`` (step calls
that were not skipped) and ``skipped_steps``. Loading validates every key, shape and dtype before
writing anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["StateBuffers", "named_arrays", "state_dict", "load_state_dict"]

COUNTERS = ("iterations", "skipped_steps")


@dataclass(frozen=True)
class StateBuffers:
    """Every state buffer of one optimizer (lists with one entry per param, or None if not kept)."""

    mean_square: list
    moment: list
    mean_grad: list
    ema: list | None
    accumulator: list | None


def named_arrays(buffers: StateBuffers) -> dict:
    """The buffers by checkpoint key (views, not copies)."""
    out = {}
    for kind in ("mean_square", "moment", "mean_grad", "ema", "accumulator"):
        for i, a in enumerate(getattr(buffers, kind) or ()):
            if a is not None:
                out[f"{kind}.{i}"] = a
    return out


def state_dict(buffers: StateBuffers, iterations: int, skipped_steps: int) -> dict:
    """Copies of every buffer, and the counters."""
    sd = {k: a.copy() for k, a in named_arrays(buffers).items()}
    sd["iterations"] = int(iterations)
    sd["skipped_steps"] = int(skipped_steps)
    return sd


def load_state_dict(state, buffers: StateBuffers) -> tuple:
    """Check ``state`` against the buffers, then copy it in; returns ``(iterations, skipped_steps)``."""
    if not hasattr(state, "keys"):
        raise TypeError(f"state: expected a dict, got {type(state).__name__}")
    mine = named_arrays(buffers)
    expected = set(mine) | set(COUNTERS)
    if set(state.keys()) != expected:
        missing, extra = sorted(expected - set(state.keys())), sorted(set(state.keys()) - expected)
        raise ValueError(f"state: keys do not match this optimizer (missing {missing}, unexpected {extra})")
    arrays = {}
    for k, a in mine.items():
        v = np.asarray(state[k])
        if v.shape != a.shape or v.dtype != a.dtype:
            raise ValueError(f"state[{k!r}]: expected shape {a.shape} and dtype {a.dtype}, "
                             f"got shape {v.shape} and dtype {v.dtype}")
        arrays[k] = v
    counters = []
    for k in COUNTERS:
        v = np.asarray(state[k])
        if v.shape != () or v.dtype.kind not in "iu" or int(v) < 0:
            raise ValueError(f"state[{k!r}]: expected a non-negative int, got {state[k]!r}")
        counters.append(int(v))
    for k, a in mine.items():
        np.copyto(a, arrays[k])
    return tuple(counters)
