"""The optimizer's state in ``nn.RMSProp``'s per-parameter names, in either state layout: reading it out
(``state_per_parameter``) and loading it, every entry checked before the first write
(``load_state_per_parameter``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
from mindspore import Tensor, ops
from mindspore import dtype as mstype

from ._rule import state_kinds

__all__ = ["Entry", "entries", "state_per_parameter", "load_state_per_parameter"]

# Largest finite value per state dtype: a loaded value beyond it would become inf.
_FINITE_MAX = {mstype.float16: 65504.0, mstype.bfloat16: 3.3895313892515355e38,
               mstype.float32: float(np.finfo(np.float32).max), mstype.float64: float(np.finfo(np.float64).max)}
_NUMPY = {mstype.float64: np.float64, mstype.float16: np.float16}  # anything else goes in as float32


@dataclasses.dataclass(frozen=True)
class Entry:
    """One parameter's state of one kind: its checkpoint name, usually ``<head><kind>.<param name when the
    state was made>`` (``head``: the prefix a Cell holding the optimizer may have added since; None when a
    per-parameter buffer was renamed otherwise), the parameter (position and Parameter), the buffer holding
    it and, with flat state, the slice of that buffer (``offset`` None: the whole buffer)."""

    name: str
    head: str | None
    kind: str
    made: str
    index: int
    param: object
    buffer: object
    offset: int | None

    def renamed(self, kind: str) -> str | None:
        """The name this parameter's state of another kind would have (None if unknown)."""
        return None if self.head is None else f"{self.head}{kind}.{self.made}"


def _to_numpy(t):
    """A NumPy copy of a Tensor; bfloat16 goes through float32 (NumPy has no bfloat16)."""
    if t.dtype == mstype.bfloat16:
        t = t.astype(mstype.float32)
    return np.array(t.asnumpy(), copy=True)


def _head(buffer, tail) -> str | None:
    """What precedes ``tail`` in the buffer's name (a Cell's prefix, usually empty); None if it does not
    end with ``tail``."""
    return buffer.name[:len(buffer.name) - len(tail)] if buffer.name.endswith(tail) else None


def entries(opt) -> list[Entry]:
    """Every (kind, parameter) state entry of ``opt`` in nn.RMSProp's names: kind by kind (mean_square,
    moment, mean_grad), parameter by parameter."""
    params, made, out = opt._parameters, opt._made_names, []
    for kind in sorted(state_kinds(opt._rule), key=lambda k: k.prefix == "mean_grad"):
        buffers = getattr(opt, kind.attr)
        if not opt.flat_state:
            out += [Entry(b.name, _head(b, f"{kind.prefix}.{made[i]}"), kind.prefix, made[i], i, params[i], b, None)
                    for i, b in enumerate(buffers)]
            continue
        by_index = {}
        for c, launch in enumerate(opt._plan.launches):
            tail = f"{kind.prefix}.flat.{made[launch.index[0]]}"
            head = _head(buffers[c], tail)
            if head is None:
                raise RuntimeError(f"For '{opt.cls_name}', the flat state buffer '{buffers[c].name}' was renamed "
                                   f"(expected a name ending in '{tail}'): its per-parameter names are unknown.")
            for i, offset in zip(launch.index, launch.offsets):
                by_index[i] = Entry(f"{head}{kind.prefix}.{made[i]}", head, kind.prefix, made[i], i, params[i],
                                    buffers[c], offset)
        out += [by_index[i] for i in range(len(params))]
    return out


def state_per_parameter(opt) -> dict:
    """name -> NumPy copy, shaped like its parameter."""
    hosts, out = {}, {}
    for e in entries(opt):
        if e.offset is None:
            out[e.name] = _to_numpy(e.buffer)
            continue
        if id(e.buffer) not in hosts:
            hosts[id(e.buffer)] = e.buffer.asnumpy()
        size = int(np.prod(e.param.shape))
        out[e.name] = hosts[id(e.buffer)][e.offset:e.offset + size].reshape(e.param.shape).copy()
    return out


def _checked_value(cls_name, e: Entry, value):
    """``value`` as a NumPy array fit for ``e``'s buffer, or the TypeError / ValueError saying why not."""
    where = f"For '{cls_name}', state['{e.name}']"
    if isinstance(value, Tensor):
        value = _to_numpy(value)
    elif not isinstance(value, np.ndarray):
        raise TypeError(f"{where} must be a Tensor or a NumPy array, but got {type(value).__name__}.")
    if tuple(value.shape) != tuple(e.param.shape):
        raise ValueError(f"{where} must have the shape of parameter '{e.param.name}' {tuple(e.param.shape)}, but "
                         f"got {tuple(value.shape)}.")
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"{where} must hold floating-point values, but got dtype {value.dtype}.")
    wide = value.astype(np.float64).ravel()
    limit = _FINITE_MAX[e.buffer.dtype]
    bad = np.flatnonzero(~(np.abs(wide) <= limit))  # NaN, inf, and what would overflow the state's dtype
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"{where} must hold finite values that fit the state's dtype {e.buffer.dtype} (|v| <= "
                         f"{limit:g}), but got {wide[k]:g} (element {k}).")
    negative = np.flatnonzero(wide < 0) if e.kind == "mean_square" else ()
    if len(negative):
        k = int(negative[0])
        raise ValueError(f"{where} must hold values >= 0 (a mean of squares), but got {wide[k]:g} (element {k}).")
    return value


def _check_kinds(opt, all_entries, state) -> None:
    """Refuses a mean gradient saved for one of our parameters while this optimizer keeps none: the state
    comes from a centered optimizer, whose step differs."""
    if opt._rule.centered:
        return
    for e in all_entries:
        name = e.renamed("mean_grad")
        if e.kind == "mean_square" and name is not None and name in state:
            raise ValueError(f"For '{opt.cls_name}', the argument 'state' holds '{name}', the state of a centered "
                             "RMSProp, but this optimizer has centered=False (pass strict=False to load the rest).")


def load_state_per_parameter(opt, state, strict: bool) -> list:
    """Loads every entry of ``opt`` found in ``state``; checks them all before writing any."""
    cls_name = opt.cls_name
    if not isinstance(state, Mapping):
        raise TypeError(f"For '{cls_name}', the argument 'state' must be a mapping of names to Tensors or arrays, "
                        f"but got {type(state).__name__}.")
    if not isinstance(strict, bool):
        raise TypeError(f"For '{cls_name}', the argument 'strict' must be a bool, but got {type(strict).__name__}.")
    all_entries = entries(opt)
    plan, missing = [], []
    for e in all_entries:
        if e.name not in state:
            missing.append(e.name)
            continue
        plan.append((e, _checked_value(cls_name, e, state[e.name])))
    if strict and missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ValueError(f"For '{cls_name}', the argument 'state' lacks {', '.join(missing[:3])}{more} "
                         "(pass strict=False to keep those buffers as they are).")
    if strict:
        _check_kinds(opt, all_entries, state)
    # Written through an op, not set_data: in PYNATIVE_MODE an optimizer step compiled before keeps reading
    # the data a Parameter had then, and would neither see nor keep what set_data puts there. Flat buffers:
    # each one touched is rewritten once, from a host copy holding its new slices.
    hosts = {}
    for e, value in plan:
        if e.offset is None:
            data = Tensor(np.array(value, dtype=_NUMPY.get(e.buffer.dtype, np.float32)))
            ops.assign(e.buffer, data if data.dtype == e.buffer.dtype else data.astype(e.buffer.dtype))
            continue
        if id(e.buffer) not in hosts:
            hosts[id(e.buffer)] = (e.buffer, e.buffer.asnumpy().copy())
        hosts[id(e.buffer)][1][e.offset:e.offset + value.size] = value.reshape(-1)
    for target, host in hosts.values():
        ops.assign(target, Tensor(host))
    return [e.name for e, _ in plan]
