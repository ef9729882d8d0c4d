"""Checkpoint translation for ``rmsprop_ops.paddle.RMSProp``: its state as ``rmsprop_ops.translate.RMSPropState``.

``export_state`` reads every parameter's accumulators (in the optimizer's parameter order, groups
flattened) into the framework-free record that ``rmsprop_ops.translate`` writes as a torch ``RMSprop``,
timm ``RMSpropTF``, Keras 3 or MXNet state; ``import_state`` goes the other way through
``set_state_dict``, so everything ``set_state_dict`` checks (names, shapes, dtypes, values) is checked
before anything is written.

What maps, and how (the same rules as the neutral optimizer's, ``_optimizer/translation.py``):

* Paddle keeps a momentum buffer and a mean gradient for every parameter; the record holds the buffer
  only where momentum is in effect (> 0) and the mean gradient only when centered. A source buffer the
  rule does not keep, or a buffer the rule needs that the source lacks, cannot map exactly: ValueError.
* The buffer is rescaled between "lr outside" (torch) and "lr inside" (Paddle, TF, Keras) by the rate of
  the next step: this optimizer's (its learning rate times the parameter's scale) unless
  ``learning_rate=`` gives one (a number, or one per parameter).
* A parameter the source never stepped starts fresh (the accumulator's initial value).
* ``use_ema``: the averages travel as the record's ``average``; Keras' gradient accumulator must be
  empty (this optimizer has none).
* torch's ``nn.Linear`` keeps its weight as ``[out, in]``, Paddle's as ``[in, out]``: the parameters
  listed in ``transpose`` (positions in the parameter order) have every buffer transposed on the way.
"""

from __future__ import annotations

import numpy as np

from .. import translate
from . import _ema

__all__ = ["export_state", "import_state", "next_rates"]

_WORDS = {"mean_square": "mean square", "momentum": "momentum buffer", "mean_grad": "mean gradient",
          "average": "moving average"}


def _members(opt):
    """(param, its group's rule) in the optimizer's parameter order."""
    groups = opt._param_groups or []
    if groups and isinstance(groups[0], dict):
        return [(p, opt._rule.for_group(g)) for g in groups for p in g["params"]]
    return [(p, opt._rule) for p in groups]


def _kept(rule):
    """Which optional buffers ``rule`` (a launch Rule) keeps: (momentum buffer, mean gradient)."""
    return rule.resolved.effective_momentum(rule.momentum, rule.centered) > 0, bool(rule.centered)


def next_rates(opt):
    """Every parameter's learning rate for the next step: the optimizer's rate times the parameter's scale."""
    lr = float(opt.get_lr())
    out = []
    for p, _ in _members(opt):
        scale = (getattr(p, "optimize_attr", None) or {}).get("learning_rate", 1.0)
        out.append(lr * float(scale))
    return out


def _transposed(where, transpose, n):
    chosen = set()
    for i in transpose:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < n:
            raise ValueError(f"{where}: expected positions of parameters in 0..{n - 1}, got {i!r}")
        chosen.add(int(i))
    return chosen


def _flip(array):
    return None if array is None else np.ascontiguousarray(np.asarray(array).T)


def _value(opt, param, kind):
    """A copy of ``param``'s accumulator of ``kind``: the live one, or the value a checkpoint loaded before the
    first step holds for it until then (``_checkpoint.Pending``); None where there is neither."""
    target = param if kind == _ema.KIND else opt._master_weights.get(param.name, param)
    var = opt._accumulators.get(opt._acc_name(kind), {}).get(target.name)
    if var is not None:
        return var.numpy().copy()
    pending = opt._pending.values.get((param.name, kind))
    return None if pending is None else np.array(pending)


def export_state(opt, transpose=()) -> translate.RMSPropState:
    members = _members(opt)
    flip = _transposed("transpose", transpose, len(members))
    rates = next_rates(opt)
    out = []
    for i, ((p, rule), rate) in enumerate(zip(members, rates)):
        arrays = {kind: _value(opt, p, kind) for kind in ("mean_square", "momentum", "mean_grad", _ema.KIND)}
        average = arrays[_ema.KIND]
        if arrays["mean_square"] is None:  # never stepped
            out.append(translate.ParamState(mean_square=None, learning_rate=rate, average=average))
            continue
        momentum, centered = _kept(rule)
        state = translate.ParamState(
            mean_square=arrays["mean_square"], moment=arrays["momentum"] if momentum else None,
            mean_grad=arrays["mean_grad"] if centered else None, moment_includes_lr=rule.lr_in_momentum,
            learning_rate=rate, average=average)
        if i in flip:
            state = translate.ParamState(
                mean_square=_flip(state.mean_square), moment=_flip(state.moment), mean_grad=_flip(state.mean_grad),
                moment_includes_lr=state.moment_includes_lr, learning_rate=rate, average=_flip(state.average))
        out.append(state)
    return translate.RMSPropState(params=tuple(out), iterations=opt._iterations)


def import_state(opt, state, learning_rate=None, transpose=()):
    """Check ``state`` against ``opt`` and load it (see the module docstring)."""
    if not isinstance(state, translate.RMSPropState):
        raise TypeError(f"state: expected a rmsprop_ops.translate.RMSPropState, got {type(state).__name__}")
    members = _members(opt)
    if len(state.params) != len(members):
        raise ValueError(f"state: expected {len(members)} params (this optimizer's), got {len(state.params)}")
    flip = _transposed("transpose", transpose, len(members))
    rates = next_rates(opt) if learning_rate is None else learning_rate
    state = translate.with_lr_in_momentum(state, opt._rule.lr_in_momentum, learning_rate=rates)
    entries = {}
    for i, ((p, rule), ps) in enumerate(zip(members, state.params)):
        entries.update(_entries(opt, i, p, rule, ps, i in flip))
    entries["iterations"] = int(state.iterations)
    opt.set_state_dict(entries)


def _entries(opt, i, p, rule, ps, flip):
    """The ``set_state_dict`` entries of parameter ``i`` (named as Paddle names accumulators)."""
    where = f"params[{i}] ({p.name})"
    shape = tuple(int(d) for d in p.shape)
    momentum, centered = _kept(rule)
    fresh = ps.mean_square is None
    values = {"mean_square": ps.mean_square, "momentum": ps.moment, "mean_grad": ps.mean_grad}
    for kind, array, keeps, why in (("momentum", ps.moment, momentum, "momentum > 0"),
                                    ("mean_grad", ps.mean_grad, centered, "centered")):
        word = "momentum buffer" if kind == "momentum" else "mean gradient"
        if array is not None and not keeps:
            raise ValueError(f"{where}: the state has a {word} that this optimizer does not keep (it is not {why}); "
                             f"it cannot map exactly")
        if array is None and keeps and not fresh:
            raise ValueError(f"{where}: this optimizer keeps a {word} ({why}) that the state does not have; it "
                             f"cannot map exactly")
    if ps.accumulator is not None and np.any(np.asarray(ps.accumulator)):
        raise ValueError(f"{where}: the state holds a gradient accumulator in the middle of an accumulation, which "
                         f"this optimizer has no place for; it cannot map exactly (export it at an update)")
    averaged = opt._use_ema and not p.stop_gradient
    if ps.average is not None and not averaged:
        raise ValueError(f"{where}: the state has a moving average that this optimizer does not keep (it is not "
                         f"use_ema, or the parameter is frozen); it cannot map exactly")
    if ps.average is None and averaged:
        raise ValueError(f"{where}: this optimizer keeps a moving average (use_ema) that the state does not have; "
                         f"it cannot map exactly")
    out = {}
    for kind, array in values.items():
        if array is None:  # not kept by the rule (its value never matters), or a fresh parameter
            array = np.full(shape, rule.initial_value(kind) if fresh else 0.0, np.float64)
        else:
            array = _shaped(where, kind, array, shape, flip)
        out[f"{p.name}_{opt._acc_name(kind)}_0"] = array
    if ps.average is not None:
        out[f"{p.name}_{opt._acc_name(_ema.KIND)}_0"] = _shaped(where, "average", ps.average, shape, flip)
    return out


def _shaped(where, kind, array, shape, flip):
    array = np.asarray(array)
    if flip:
        array = array.T
    if tuple(array.shape) != shape:
        hint = ""
        if tuple(reversed(array.shape)) == shape and len(shape) == 2:
            hint = (" (transposed: torch's nn.Linear keeps its weight as [out, in], Paddle's as [in, out]; pass "
                    "transpose=[...] with this parameter's position)")
        raise ValueError(f"{where}: the {_WORDS.get(kind, kind)} has shape {list(array.shape)}, expected "
                         f"{list(shape)}{hint}")
    return np.ascontiguousarray(array, dtype=array.dtype if array.dtype.kind == "f" else np.float64)
