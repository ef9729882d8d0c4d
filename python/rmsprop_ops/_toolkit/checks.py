"""Argument checks driven by the core's op registry, shared by every front end.

Numbers are any ``numbers.Real`` (NumPy scalars included) but not ``bool``; booleans are ``bool`` or
``numpy.bool_``; an enum attribute is one of the registry's choices (the weight-decay-mode table comes from
the registry's ``weight_decay_mode`` attribute); ranges are the registry's, checked by the core. Every error
is a ``TypeError`` or ``ValueError`` whose message starts with the argument's name, says what was expected
and what was received, and never fails itself (a huge int, an object whose ``repr`` raises).
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from .. import _core

__all__ = ["real", "real_in", "integer", "flag", "core_attr", "optional_positive", "registry_document", "list_form", "scalar_inputs", "describe", "is_real", "as_float", "as_bool", "as_optional_clip", "as_tuple", "weight_decay_modes",
           "weight_decay_mode_code", "enum_code", "check_attr", "attr_spec", "attr_value"]


def describe(value, limit: int = 80) -> str:
    """``repr(value)`` for an error message: shortened, and never raising (a 400-digit int, a hostile
    ``__repr__``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - the caller's __repr__
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_real(value) -> bool:
    """A real number (NumPy scalars included) other than a bool."""
    try:
        return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    except Exception:  # noqa: BLE001 - a __class__ or __instancecheck__ of the caller's
        return False


def as_float(name: str, value) -> float:
    """``value`` as a float: any real number (NumPy scalars included), not a bool. An int too large for a
    float is a ValueError, a number whose ``__float__`` raises a TypeError, both naming ``name``."""
    if not is_real(value):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__} ({describe(value)})")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name}: expected a finite number, got {describe(value)} (too large for a float)") from None
    except Exception as e:  # noqa: BLE001 - the caller's __float__
        raise TypeError(f"{name}: expected a float, but float() of {type(value).__name__} raised "
                        f"{type(e).__name__}: {e}") from None


def as_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} ({describe(value)})")
    return bool(value)


def as_optional_clip(name: str, value) -> float:
    """None disables a clip; a negative number does too (MXNet's -1 convention)."""
    return -1.0 if value is None else as_float(name, value)


def as_tuple(name: str, value, what: str = "arrays") -> tuple:
    """A list or tuple argument, read once into a tuple that owns its entries: later code (a producer's
    ``__dlpack__``, another thread) can then change the caller's list without changing the call."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name}: expected a list or tuple of {what}, got {type(value).__name__}")
    try:
        return tuple(value)
    except Exception as e:  # noqa: BLE001 - a list subclass's __iter__ / __len__
        raise TypeError(f"{name}: reading the list raised {type(e).__name__}: {e}") from None


@functools.cache
def registry_document() -> dict:
    """The core's registry (``rmsprop_ops_registry_json``), parsed once. Shared: do not modify."""
    import json

    return json.loads(_core.registry_json())


@functools.cache
def _attrs() -> dict:
    out = {}
    for op in registry_document()["ops"]:
        for a in op["attrs"]:
            out.setdefault(a["name"], a)
            out.setdefault(a["c_name"], a)
    return out


def attr_spec(attr: str) -> dict:
    """The registry's description of attribute ``attr``, by its name or its C name ("lr"). Shared: do not
    modify."""
    try:
        return _attrs()[attr]
    except KeyError:
        raise ValueError(f"attr: expected one of {sorted(_attrs())}, got {attr!r}") from None


def list_form(attr: str) -> dict | None:
    """The per-tensor list attribute refining ``attr`` (lr -> lr_mults, weight_decay -> weight_decays)."""
    name = attr_spec(attr)["name"]
    return next((a for a in _attrs().values() if a["per_tensor"] == name), None)


@functools.cache
def scalar_inputs() -> dict:
    """The registry's scalar inputs (one-element tensors the kernel reads) by argument name:
    ``{"lr": {...}, "rescale_grad": {...}, "skip_update": {...}}``."""
    op = registry_document()["ops"][0]
    return {i["arg"]: i for i in op["inputs"] if i.get("scalar")}


def enum_code(attr: str, value, name: str | None = None) -> int:
    """The code of ``value`` among the registry's choices for enum attribute ``attr``."""
    name = name or attr
    choices = attr_spec(attr)["choices"]
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a str, one of {choices}, got {type(value).__name__} ({describe(value)})")
    try:
        return choices.index(value)
    except ValueError:
        raise ValueError(f"{name}: expected one of {choices}, got {describe(value)}") from None


@functools.cache
def weight_decay_modes() -> dict:
    """``{"l2": 0, "l1": 1, "decoupled": 2}``: the registry's weight-decay modes and their codes."""
    return {c: i for i, c in enumerate(attr_spec("weight_decay_mode")["choices"])}


def weight_decay_mode_code(value, name: str = "weight_decay_mode") -> int:
    return enum_code("weight_decay_mode", value, name)


def check_attr(op: str, attr: str, value: float, name: str | None = None) -> None:
    """Raise ValueError unless the number ``value`` is in the registry's range for ``attr`` of ``op``; the
    message names ``name`` (default ``attr``)."""
    name = name or attr
    try:
        _core.check_attr(op, attr, value)
    except ValueError as e:
        text = str(e)
        raise ValueError(name + text[len(attr):] if text.startswith(attr + ":") else text) from None


def attr_value(attr: str, value, name: str | None = None, op: str = "rmsprop") -> float:
    """``value`` for registry attribute ``attr`` as the core takes it (a float; a bool as 0/1; an enum by
    its choice), type- and range-checked. A clip given as None is disabled (-1)."""
    spec = attr_spec(attr)
    name = name or attr
    kind = spec["type"]
    if kind == "bool":
        return float(as_bool(name, value))
    if kind == "enum":
        return float(enum_code(attr, value, name))
    if kind != "float":
        raise TypeError(f"{name}: a {kind} attribute takes a list; attr_value checks one value")
    v = -1.0 if value is None and spec["negative_disables"] else as_float(name, value)
    if not (spec["negative_disables"] and math.isfinite(v) and v < 0):
        check_attr(op, spec["name"], v, name)
    return v


# ---- numbers of the framework-neutral layer (optimizer, schedules, conventions, EMA, recipes) ----------
# The same families as above, with the range forms the neutral layer needs; NaN / inf are refused wherever
# a finite value is required, and a core attribute's range is the registry's.

def real(name: str, value, *, finite: bool = True) -> float:
    """``value`` as a float (``as_float``); a ValueError for NaN / inf when ``finite``."""
    out = as_float(name, value)
    if finite and not math.isfinite(out):
        raise ValueError(f"{name}: expected a finite float, got {describe(value)}")
    return out


def real_in(name: str, value, *, low=None, high=None, low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number within ``[low, high]`` (ends excluded when ``*_open``; None is unbounded)."""
    out = real(name, value)
    below = low is not None and (out <= low if low_open else out < low)
    above = high is not None and (out >= high if high_open else out > high)
    if below or above:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + repr(low)
        hi = "inf)" if high is None else repr(high) + (")" if high_open else "]")
        raise ValueError(f"{name}: expected a float in {lo}, {hi}, got {describe(value)}")
    return out


def integer(name: str, value, *, minimum: int | None = None) -> int:
    """An integer (Python or NumPy, not bool) that is at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} ({describe(value)})")
    out = int(value)
    if minimum is not None and out < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {describe(value)}")
    return out


flag = as_bool


def core_attr(name: str, value, attr: str | None = None) -> float:
    """A finite real number that the registry accepts for ``attr`` (default ``name``) of the dense op."""
    out = real(name, value)
    check_attr("rmsprop", attr or name, out, name=name)
    return out


def optional_positive(name: str, value) -> float | None:
    """None, or a finite float > 0."""
    return None if value is None else real_in(name, value, low=0.0, low_open=True)
