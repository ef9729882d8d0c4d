"""Checkpoint translation for ``rmsprop_ops.mindspore.RMSProp``: its state as the framework-free
:class:`rmsprop_ops.translate.RMSPropState` (``export_state``) and back (``import_state``), so that a torch
``RMSprop``, timm ``RMSpropTF`` or Keras 3 state loads into it, and its state into them, through
:mod:`rmsprop_ops.translate` - exact, or a ValueError naming what cannot map.

What is state here: the mean square, the momentum buffer when momentum is used (MindSpore keeps one always;
with momentum 0 it holds the last step and is not carried), the mean gradient when centered, the moving
average with ``use_ema``, and the global step. The momentum buffer is rescaled between "lr inside" and "lr
outside" by the learning rate of the next step (:func:`next_rates`).
"""

from __future__ import annotations

import numpy as np
from mindspore import Tensor, ops
from mindspore import dtype as mstype

from .. import translate
from .._toolkit import ema as ema_rules
from . import _checkpoint

__all__ = ["next_rates", "export_state", "import_state"]

_WORDS = {"mean_square": "mean square", "moment": "momentum buffer", "mean_grad": "mean gradient",
          "average": "moving average"}


def next_rates(opt, step=None) -> list[float]:
    """Every parameter's learning rate for the step numbered ``step`` (default: the next one, at the current
    global step), each parameter's group's rate as MindSpore's ``get_lr`` computes it."""
    if step is None:
        lr = opt.get_lr()
        per_param = lr if opt.is_group_lr else (lr,) * opt.param_length
    else:
        at = Tensor(np.full(opt.global_step.shape, step, np.int32))
        lrs = opt.learning_rate if opt.is_group_lr else (opt.learning_rate,) * opt.param_length
        per_param = [lr(at).reshape(()) if opt.dynamic_lr else lr for lr in lrs]
    return [float(np.asarray(x.asnumpy()).reshape(())) for x in per_param]


def _momentum_kept(opt) -> bool:
    rule = opt._rule
    return rule.effective_momentum(rule.momentum, rule.centered) > 0


def export_state(opt) -> translate.RMSPropState:
    by_name = opt.state_per_parameter()
    rates = next_rates(opt)
    per_kind = {}
    for e in _checkpoint.entries(opt):
        per_kind.setdefault(e.kind, {})[e.index] = by_name[e.name]
    averages = None
    if opt.use_ema:
        # While swapped for evaluation the parameters hold the averages.
        source = opt._parameters if opt._swap.swapped else opt.ema
        averages = [np.array(p.asnumpy(), copy=True) for p in source]
    moment = per_kind["moment"] if _momentum_kept(opt) else {}
    mean_grad = per_kind.get("mean_grad", {})
    params = tuple(translate.ParamState(
        mean_square=per_kind["mean_square"][i], moment=moment.get(i), mean_grad=mean_grad.get(i),
        moment_includes_lr=opt._rule.lr_in_momentum, learning_rate=rates[i],
        average=None if averages is None else averages[i]) for i in range(opt.param_length))
    return translate.RMSPropState(params=params, iterations=int(opt.global_step.asnumpy().reshape(())))


def _values(opt, state, learning_rate) -> tuple[dict, list, int]:
    """The state per-parameter names (``state_per_parameter``'s) and the averages, checked; nothing is
    written here."""
    n = opt.param_length
    if len(state.params) != n:
        raise ValueError(f"state: expected {n} params (this optimizer's), got {len(state.params)}")
    # the first step after the load is number state.iterations
    rates = next_rates(opt, int(state.iterations)) if learning_rate is None else learning_rate
    state = translate.with_lr_in_momentum(state, opt._rule.lr_in_momentum, learning_rate=rates)
    keeps = {"mean_square": True, "moment": _momentum_kept(opt), "mean_grad": opt._rule.centered,
             "average": opt.use_ema}
    why = {"moment": "momentum > 0", "mean_grad": "centered", "average": "use_ema"}
    names = {(e.kind, e.index): e.name for e in _checkpoint.entries(opt)}
    mine = opt.state_per_parameter()
    out, averages = {}, []
    for i, p in enumerate(state.params):
        who = opt._made_names[i]
        fresh = p.mean_square is None
        for kind, value in (("mean_square", p.mean_square), ("moment", p.moment), ("mean_grad", p.mean_grad),
                            ("average", p.average)):
            if not keeps[kind]:
                if value is not None:
                    raise ValueError(f"{who}: the state has a {_WORDS[kind]} that this optimizer does not keep (it "
                                     f"is not {why[kind]}); it cannot map exactly")
                continue
            shape = tuple(opt._parameters[i].shape)
            if value is None:
                if kind == "average":
                    raise ValueError(f"{who}: this optimizer keeps a moving average (use_ema) that the state does "
                                     "not have; it cannot map exactly")
                if not fresh:
                    raise ValueError(f"{who}: this optimizer keeps a {_WORDS[kind]} ({why.get(kind, 'always')}) "
                                     "that the state does not have; it cannot map exactly")
                value = np.full(shape, opt._rule.initial_accumulator_value if kind == "mean_square" else 0.0)
            value = np.asarray(value)
            if value.shape != shape:
                raise ValueError(f"{who}: the {_WORDS[kind]} has shape {value.shape}, expected {shape}")
            if kind == "average":
                averages.append(value)
            else:
                out[names[(kind, i)]] = value
    if not keeps["moment"]:
        # MindSpore's buffer exists but is not carried: the loaded state says nothing about it.
        out.update({names[("moment", i)]: mine[names[("moment", i)]] for i in range(n)})
    return out, averages, int(state.iterations)


def _like(value, param) -> Tensor:
    """``value`` as a Tensor of ``param``'s dtype (through float32 for the 16-bit ones)."""
    if param.dtype == mstype.float64:
        return Tensor(np.asarray(value, np.float64))
    return Tensor(np.asarray(value, np.float32)).astype(param.dtype)


def import_state(opt, state, learning_rate=None) -> None:
    """Loads ``state`` (checked whole before anything is written)."""
    ema_rules.check_not_swapped(opt._swap, "import_state")
    if not isinstance(state, translate.RMSPropState):
        raise TypeError(f"state: expected a rmsprop_ops.translate.RMSPropState, got {type(state).__name__}")
    if not 0 <= int(state.iterations) <= np.iinfo(np.int32).max:
        raise ValueError(f"state: iterations must fit MindSpore's int32 global step, got {state.iterations}")
    values, averages, iterations = _values(opt, state, learning_rate)
    checked = {}
    for a, p in zip(averages, opt._parameters):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{p.name}: the moving average holds a NaN or an infinity")
        checked[p.name] = a
    _checkpoint.load_state_per_parameter(opt, values, True)   # checks every entry before its first write
    for a, p in zip(averages, opt.ema if opt.use_ema else ()):
        ops.assign(p, _like(a, p))
    ops.assign(opt.global_step, Tensor(np.full(opt.global_step.shape, iterations, np.int32)))
