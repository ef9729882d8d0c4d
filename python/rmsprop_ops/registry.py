"""The core's op registry, read from the compiled library.

Every op (``rmsprop``, ``rmsprop_centered``, their ``_multi`` forms and the row-sparse ``_rows`` forms)
is described once in C++: inputs, outputs, attributes with types, defaults and valid ranges, the in-place
map and the kernels available per device and dtype. The Paddle and MindSpore registrations are generated from this.

Example:
    >>> from rmsprop_ops import registry
    >>> registry.list_ops()
    ['rmsprop', 'rmsprop_centered', 'rmsprop_multi', 'rmsprop_centered_multi', 'rmsprop_rows',
     'rmsprop_centered_rows']
    >>> registry.schema("rmsprop")["inplace"]["Param"]
    'ParamOut'
"""

from __future__ import annotations

import copy

from ._toolkit import checks

__all__ = ["list_ops", "schema", "check_attr"]


def _document() -> dict:
    return checks.registry_document()


def list_ops() -> list[str]:
    """Names of the registered ops."""
    return [op["name"] for op in _document()["ops"]]


def schema(name: str) -> dict:
    """The full schema of op ``name`` (a copy: inputs, outputs, attrs, inplace, kernels)."""
    for op in _document()["ops"]:
        if op["name"] == name:
            return copy.deepcopy(op)
    raise ValueError(f"name: expected one of {list_ops()}, got {name!r}")


def check_attr(op: str, attr: str, value, *, name: str | None = None) -> None:
    """Raise ValueError unless ``value`` is valid for the attribute of ``op``; the message names ``name``
    (default ``attr``), e.g. ``check_attr("rmsprop", "learning_rate", x, name="set_lr: value")``."""
    name = name or attr
    checks.check_attr(op, attr, checks.as_float(name, value), name)
