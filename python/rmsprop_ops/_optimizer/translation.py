"""The neutral optimizer's side of checkpoint translation (``rmsprop_ops.translate``)."""

from __future__ import annotations

import numpy as np

from .. import translate

__all__ = ["export_state", "import_state_dict"]

_WORDS = {"mean_square": "mean square", "moment": "momentum buffer", "mean_grad": "mean gradient",
          "ema": "moving average", "accumulator": "gradient accumulator"}


def export_state(opt) -> translate.RMSPropState:
    sd = opt.state_dict()
    rates = opt._next_rates()
    params = tuple(translate.ParamState(
        mean_square=sd[f"mean_square.{i}"], moment=sd.get(f"moment.{i}"), mean_grad=sd.get(f"mean_grad.{i}"),
        moment_includes_lr=opt.rule.lr_in_momentum, learning_rate=rates[i], average=sd.get(f"ema.{i}"),
        accumulator=sd.get(f"accumulator.{i}")) for i in range(len(rates)))
    return translate.RMSPropState(params=params, iterations=sd["iterations"])


def import_state_dict(opt, state, learning_rate) -> dict:
    """A :meth:`state_dict` of ``opt`` holding ``state`` (checked; nothing is written here)."""
    if not isinstance(state, translate.RMSPropState):
        raise TypeError(f"state: expected a rmsprop_ops.translate.RMSPropState, got {type(state).__name__}")
    mine = opt.state_dict()
    n = sum(1 for k in mine if k.startswith("mean_square."))
    if len(state.params) != n:
        raise ValueError(f"state: expected {n} params (this optimizer's), got {len(state.params)}")
    state = translate.with_lr_in_momentum(state, opt.rule.lr_in_momentum,
                                          learning_rate=opt._next_rates() if learning_rate is None else learning_rate)
    n_acc = opt.gradient_accumulation_steps
    out = {"iterations": int(state.iterations), "skipped_steps": mine["skipped_steps"]}
    for i, p in enumerate(state.params):
        name = opt._names[i]
        fresh = p.mean_square is None
        for kind, value, where in (("mean_square", p.mean_square, None), ("moment", p.moment, "momentum > 0"),
                                   ("mean_grad", p.mean_grad, "centered"), ("ema", p.average, "use_ema"),
                                   ("accumulator", p.accumulator, "gradient_accumulation_steps")):
            key = f"{kind}.{i}"
            if key not in mine:
                if value is not None and not (kind == "accumulator" and not np.any(value)):
                    raise ValueError(f"{name}: the state has a {_WORDS[kind]} that this optimizer does not keep (it is "
                                     f"not {where}); it cannot map exactly")
                continue
            target = mine[key]
            if value is None:
                if fresh and kind in ("mean_square", "moment", "mean_grad"):
                    value = np.full_like(target, opt.initial_accumulator_value if kind == "mean_square" else 0.0)
                elif kind == "accumulator" and (n_acc is None or state.iterations % n_acc == 0):
                    value = np.zeros_like(target)  # at an accumulation boundary it is empty
                else:
                    raise ValueError(f"{name}: this optimizer keeps a {_WORDS[kind]} ({where or 'always'}) that "
                                     f"the state does not have; it cannot map exactly")
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ValueError(f"{name}: the {_WORDS[kind]} has shape {value.shape}, expected {target.shape}")
            out[key] = value.astype(target.dtype)
    return out
