"""The moving averages of the weights on NumPy arrays (the semantics live in ``_toolkit.ema``)."""

from __future__ import annotations

import numpy as np

from .._toolkit import ema as ema_rules

__all__ = ["update", "overwrite", "swap"]


def update(averages, views, ema, iterations) -> None:
    """One moving-average update of every param's average (skipped params included, as in Keras)."""
    d = ema_rules.decay_at(ema, iterations)
    if ema_rules.subtracts(ema):
        for avg, p in zip(averages, views):
            avg -= np.asarray(1.0 - d, avg.dtype) * (avg - p)
    else:
        for avg, p in zip(averages, views):
            avg *= np.asarray(d, avg.dtype)
            avg += np.asarray(1.0 - d, avg.dtype) * p
    if ema_rules.should_overwrite(ema, iterations):
        overwrite(averages, views)


def overwrite(averages, views) -> None:
    """Copy the averages into the params."""
    for avg, p in zip(averages, views):
        np.copyto(p, avg)


def swap(averages, views) -> None:
    """Exchange the params and their averages in place, bit for bit (a second call undoes it)."""
    for avg, p in zip(averages, views):
        held = p.copy()
        np.copyto(p, avg)
        np.copyto(avg, held)
