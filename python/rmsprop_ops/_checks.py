"""Type checks for Python-level arguments; value ranges are checked by the core's op registry."""

from __future__ import annotations

import numbers

import numpy as np

_WD_MODES = {"l2": 0, "l1": 1, "decoupled": 2}


def as_float(name: str, value) -> float:
    """Return ``value`` as a float, or raise TypeError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__} ({value!r})")
    return float(value)


def as_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} ({value!r})")
    return bool(value)


def as_optional_clip(name: str, value) -> float:
    """None disables a clip; a negative number does too (MXNet's -1 convention)."""
    return -1.0 if value is None else as_float(name, value)


def weight_decay_mode_code(value) -> int:
    if not isinstance(value, str):
        raise TypeError(f"weight_decay_mode: expected a str, got {type(value).__name__} ({value!r})")
    try:
        return _WD_MODES[value]
    except KeyError:
        raise ValueError(
            f"weight_decay_mode: expected one of {sorted(_WD_MODES)}, got {value!r}") from None
