"""Argument checks in front of the Paddle custom ops, for what the C++ kernel cannot see or see in time.

The kernel (``csrc/paddle_kernel.h``) and the core validate dtypes, shapes, list lengths, overlap and
attribute ranges, raising ``TypeError``/``ValueError`` naming the argument. Some mistakes never reach it:

- Paddle's argument conversion rejects a wrong Python type with "argument (position 11) must be float",
  naming no argument, and accepts ``True`` for a float attribute and a lone Tensor for a ``paddle::Vec``.
- Paddle hands a custom op a contiguous *copy* of a strided view (a transpose, a column slice), so an
  in-place update of one would be silently lost.
- Paddle refuses an in-place op on a leaf tensor that requires grad only *after* the kernel has run, so the
  parameter would already be updated when the error arrives.

``load_ops()`` returns these wrappers; each checks, then calls Paddle's generated op function with the same
arguments. In a static program attribute errors now surface while the program is built instead of at
``Executor.run``.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import types

import numpy as np
import paddle
from paddle.base import framework

from .. import registry
from .._toolkit.checks import as_bool, as_float
from .._toolkit.flat import flat_offsets
from ._codegen import _SCALAR_SLOTS, CORE_OPS, FLAT_OPS, op_schema, paddle_op_name

__all__ = ["wrap_module"]

_LIST_OPTIONAL = ("Moment", "MasterParam")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_tensor(x):
    return isinstance(x, (paddle.Tensor, paddle.pir.Value, framework.Variable))


def _describe(x):
    if isinstance(x, (list, tuple)):
        return f"{type(x).__name__} of {len(x)}"
    return type(x).__name__


def _check_inplace_dygraph(name, t):
    if not t.is_contiguous():
        raise ValueError(f"{name}: expected a contiguous tensor (the op updates it in place, and Paddle would "
                         f"pass the op a contiguous copy of a strided view), got a view with strides "
                         f"{list(t.strides)}; update a contiguous tensor and copy it back")
    if not t.stop_gradient and t.is_leaf:
        raise ValueError(f"{name}: expected a tensor with stop_gradient=True (Paddle forbids in-place updates "
                         "of leaf tensors that require grad), got a leaf with stop_gradient=False; pass "
                         "param.detach(), which shares its memory")


def _check_dense(name, t):
    # A SelectedRows (sparse) value would crash Paddle's PIR builder of the custom op; in dynamic mode the
    # kernel refuses it, but only after Paddle has prepared the call. Refuse both here, by name.
    sparse = (t.is_selected_row_type() if isinstance(t, paddle.pir.Value)
              else isinstance(t, paddle.Tensor) and t.is_selected_rows())
    if sparse:
        raise ValueError(f"{name}: expected a dense tensor, got SelectedRows (a sparse gradient; "
                         "rmsprop_ops.paddle.RMSProp densifies those in dynamic mode)")


def _check_input(spec, value, dygraph, inplace):
    name, optional = spec["name"].removesuffix("[]"), spec["optional"]
    if value is None:
        if optional:
            return 0
        kind = "a list of paddle.Tensor" if spec["name"].endswith("[]") else "a paddle.Tensor"
        raise TypeError(f"{name}: expected {kind}, got None")
    if spec["name"].endswith("[]"):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name}: expected a list of paddle.Tensor (one per Param), got {_describe(value)}")
        for i, t in enumerate(value):
            if not _is_tensor(t):
                raise TypeError(f"{name}[{i}]: expected a paddle.Tensor, got {_describe(t)}")
            _check_dense(f"{name}[{i}]", t)
            if dygraph and inplace:
                _check_inplace_dygraph(f"{name}[{i}]", t)
        return len(value)
    if not _is_tensor(value):
        raise TypeError(f"{name}: expected a paddle.Tensor, got {_describe(value)}")
    _check_dense(name, value)
    if name in _SCALAR_SLOTS:
        # Checked here too: Paddle drops a zero-size optional input before the kernel sees it.
        shape = list(value.shape)
        if all(d >= 0 for d in shape) and math.prod(shape) != 1:
            raise ValueError(f"{name}: expected a tensor holding exactly one element, got shape {shape}")
    if dygraph and inplace:
        _check_inplace_dygraph(name, value)
    return 1


def _as_attr_float(name, value):
    value = as_float(name, value)  # any real number (NumPy scalars too); a huge int is a named ValueError
    if math.isfinite(value) and abs(value) > _FLOAT32_MAX:
        raise ValueError(f"{name}: expected a value representable as float32 (|x| <= {_FLOAT32_MAX:.4g}; op "
                         f"attributes are float32), got {value!r}")
    return value


def _check_attr(spec, value, core_op, n):
    name, kind = spec["name"], spec["type"]
    if kind == "bool":
        return as_bool(name, value)
    if kind == "enum":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name}: expected an int code of {spec['choices']} (0..{len(spec['choices']) - 1}), "
                            f"got {_describe(value)} ({value!r})")
        value = int(value)
        if not 0 <= value < len(spec["choices"]):
            raise ValueError(f"{name}: expected an int code of {spec['choices']} (0..{len(spec['choices']) - 1}), "
                             f"got {value}")
        return value
    if kind == "int[]":
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name}: expected a list of ints (one per Param) or [], got {_describe(value)}")
        if value and len(value) != n:
            raise ValueError(f"{name}: expected {n} values (one per Param) or [], got {len(value)}")
        for i, v in enumerate(value):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{name}[{i}]: expected an int, got {_describe(v)} ({v!r})")
            if not 0 <= v < 2 ** 63:
                raise ValueError(f"{name}[{i}]: expected an int in [0, 2**63), got {v}")
        return [int(v) for v in value]
    if kind == "float[]":
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name}: expected a list of floats (one per Param) or [], got {_describe(value)}")
        if value and len(value) != n:
            raise ValueError(f"{name}: expected {n} values (one per Param) or [], got {len(value)}")
        out = []
        for i, v in enumerate(value):
            v = _as_attr_float(f"{name}[{i}]", v)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}[{i}]: expected a finite value >= 0, got {v!r}")
            out.append(v)
        return out
    value = _as_attr_float(name, value)
    registry.check_attr(core_op, name, value)
    return value


def _numel(t):
    shape = list(t.shape)
    return math.prod(shape) if all(d >= 0 for d in shape) else -1


def _empty_sets(inputs, values, multi):
    """Indices of the tensor sets Paddle would mangle: Paddle drops an optional input (a whole optional
    list) when a tensor in it has no elements, so a zero-size Moment would arrive as "no Moment". A set
    whose tensors all have zero elements is a no-op; those are left out of the call instead. A set mixing
    sizes stays, so that the core reports the mismatch. (A flat-state op's single state buffers are not
    per set: see _check_flat_sizes.)"""
    per_set = lambda spec: not multi or spec["name"].endswith("[]")  # noqa: E731
    optional = [k for k, spec in enumerate(inputs) if spec["optional"] and spec["name"].removesuffix("[]")
                in _LIST_OPTIONAL and values[k] is not None and per_set(spec)]
    if not optional:
        return []
    lists = [k for k, spec in enumerate(inputs) if spec["name"].removesuffix("[]") not in _SCALAR_SLOTS
             and values[k] is not None and per_set(spec)]
    members = lambda k, i: values[k][i] if multi else values[k]  # noqa: E731
    n = len(values[0]) if multi else 1
    return [i for i in range(n)
            if any(_numel(members(k, i)) == 0 for k in optional)
            and all(_numel(members(k, i)) == 0 for k in lists)]


def _without_sets(inputs, attrs, values, drop):
    drop = set(drop)
    keep = lambda seq: [x for i, x in enumerate(seq) if i not in drop]  # noqa: E731
    out = list(values)
    for k, spec in enumerate(inputs):
        if spec["name"].endswith("[]") and out[k] is not None:
            out[k] = keep(out[k])
    for k, spec in enumerate(attrs):
        j = len(inputs) + k
        if spec["type"] == "int[]" and not out[j]:
            # Flat offsets left to the kernel are computed from the Params in the call: pin them first.
            out[j] = flat_offsets(_numel(t) for t in values[0])[0]
        if spec["type"] in ("float[]", "int[]") and out[j]:
            out[j] = keep(out[j])
    return out


def _check_flat_sizes(inputs, values):
    """Paddle drops an optional input holding no elements before the kernel sees it, so a zero-size flat
    Moment would read as "no Moment": refuse it here as the kernel refuses any buffer too small."""
    need = max((_numel(t) for t in values[0]), default=0)
    for spec, v in zip(inputs, values):
        if spec["optional"] and not spec["name"].endswith("[]") and spec["name"] not in _SCALAR_SLOTS \
                and v is not None and _numel(v) == 0 and need > 0:
            raise ValueError(f"{spec['name']}: expected a flat buffer of at least {need} elements, got 0")


def _outputs(sc, inputs, values):
    """What Paddle's op function returns for an in-place op, for a call that had nothing to update."""
    by_name = {spec["name"]: values[k] for k, spec in enumerate(inputs)}
    return [by_name[inp] for out in sc["outputs"] for inp, o in sc["inplace"].items() if o == out]


def _checked(core_op, raw, flat=False):
    sc = op_schema(core_op, flat)
    sig = inspect.signature(raw)
    inputs, attrs = sc["inputs"], sc["attrs"]
    inplace = set(sc["inplace"])
    n_in = len(inputs)
    multi = bool(sc["multi_tensor"])

    @functools.wraps(raw)
    def op(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)  # TypeError naming a missing or unexpected argument
        values = list(bound.args)
        dygraph = framework.in_dygraph_mode()
        counts = [_check_input(spec, v, dygraph, spec["name"] in inplace) for spec, v in zip(inputs, values)]
        n = counts[0]
        for spec, count, v in zip(inputs[1:], counts[1:], values[1:]):
            if spec["name"].endswith("[]") and v is not None and count != n:
                raise ValueError(f"{spec['name'][:-2]}: expected {n} tensors (one per Param), got {count}")
        for k, spec in enumerate(attrs):
            values[n_in + k] = _check_attr(spec, values[n_in + k], core_op, n)
        if n == 0:  # empty lists: a valid no-op, which Paddle's in-place bookkeeping would refuse
            return _outputs(sc, inputs, values)
        if flat:
            _check_flat_sizes(inputs, values)
        empty = _empty_sets(inputs, values, multi)
        if empty:
            if not multi or len(empty) == n:
                return _outputs(sc, inputs, values)
            values = _without_sets(inputs, attrs, values, empty)
        return raw(*values)

    op.__doc__ = (f"Paddle custom op ``{paddle_op_name(core_op, flat=flat)}`` (registry op ``{core_op}``"
                  f"{', flat state' if flat else ''}): "
                  f"{sc.get('doc', '')}\n\nArguments are checked first (see rmsprop_ops.paddle._checked).")
    return op


def wrap_module(module):
    """A module holding a checked wrapper for every op function of Paddle's generated ``module``."""
    out = types.ModuleType(module.__name__ + "_checked")
    out.__doc__ = "Checked Paddle custom-op functions of rmsprop_ops (see rmsprop_ops.paddle.load_ops)."
    out.raw = module
    for core_op in CORE_OPS:
        for flat in (False, True) if core_op in FLAT_OPS else (False,):
            name = paddle_op_name(core_op, flat=flat)
            setattr(out, name, _checked(core_op, getattr(module, name), flat))
    return out
