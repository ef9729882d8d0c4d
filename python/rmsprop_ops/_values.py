"""Number checks of the framework-neutral layer (optimizer, schedules, conventions, EMA, recipes).

Any real number is a valid hyper-parameter: Python ints and floats, NumPy scalars (``np.float32``,
``np.float16``, ``np.int64``, ...), fractions - everything registered as :class:`numbers.Real`. Bools
are not numbers here (``momentum=True`` is a mistake, not 1.0). A value no float can hold (``10**400``)
is a ValueError naming the argument rather than Python's bare OverflowError, and NaN / inf are refused
wherever a finite value is required. Ranges of the core's own attributes come from the op registry.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["real", "real_in", "integer", "flag", "core_attr", "optional_positive"]


def real(name: str, value, *, finite: bool = True) -> float:
    """``value`` as a float; TypeError unless it is a real number, ValueError if it does not fit a float
    (or is NaN / inf when ``finite``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} ({value!r})")
    try:
        out = float(value)
    except OverflowError:
        raise ValueError(f"{name}: expected a finite float, got {_short(value)} (too large for a float)") from None
    if finite and not math.isfinite(out):
        raise ValueError(f"{name}: expected a finite float, got {value!r}")
    return out


def real_in(name: str, value, *, low=None, high=None, low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number within ``[low, high]`` (ends excluded when ``*_open``; None is unbounded)."""
    out = real(name, value)
    below = low is not None and (out <= low if low_open else out < low)
    above = high is not None and (out >= high if high_open else out > high)
    if below or above:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + repr(low)
        hi = "inf)" if high is None else repr(high) + (")" if high_open else "]")
        raise ValueError(f"{name}: expected a float in {lo}, {hi}, got {value!r}")
    return out


def integer(name: str, value, *, minimum: int | None = None) -> int:
    """An integer (Python or NumPy, not bool) that is at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} ({value!r})")
    out = int(value)
    if minimum is not None and out < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {_short(value)}")
    return out


def flag(name: str, value) -> bool:
    """A bool (Python or NumPy)."""
    if isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")):
        return bool(value)
    raise TypeError(f"{name}: expected a bool, got {type(value).__name__} ({value!r})")


def core_attr(name: str, value, attr: str | None = None) -> float:
    """A finite real number that the core's op registry accepts for ``attr`` (default ``name``); the
    registry holds the ranges (rho in [0, 1], epsilon > 0, ...), so they are written nowhere else."""
    from . import registry

    out = real(name, value)
    registry.check_attr("rmsprop", attr or name, out, name=name)
    return out


def optional_positive(name: str, value) -> float | None:
    """None, or a finite float > 0."""
    return None if value is None else real_in(name, value, low=0.0, low_open=True)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-8:]} ({len(text)} digits)"
