"""What ``repr(rmsprop_ops.mindspore.RMSProp(...))`` shows: the hyper-parameters as they are now, the
convention, and how a step runs (our kernel and its launches, or MindSpore's ops; the state layout)."""

from __future__ import annotations

from mindspore import Tensor
from mindspore.nn.optim.optimizer import _IteratorLearningRate

__all__ = ["describe"]


def _number(value, scale=1.0) -> str:
    """A scalar Tensor's value divided by ``scale``, in its own precision."""
    if isinstance(value, Tensor):
        if value.size == 1:
            x = value.asnumpy().reshape(())
            # str() of a NumPy scalar is the shortest text that reads back in its own precision (0.1, not
            # float32's 0.10000000149011612).
            return repr(float(str(x / x.dtype.type(scale))))
        return f"Tensor(shape={tuple(value.shape)})"
    return repr(value)


def _learning_rate(opt) -> str:
    if opt.is_group_lr:
        return "per group"
    lr = opt.learning_rate
    if isinstance(lr, _IteratorLearningRate):
        return f"Tensor(shape={tuple(lr.learning_rate.shape)}) (one value per step)"
    if opt.dynamic_lr:
        return type(lr).__name__
    return _number(lr)


def _weight_decay(opt) -> str:
    if opt.is_group:
        return "per group"
    if opt.dynamic_weight_decay:
        return type(opt.weight_decay).__name__
    return _number(opt.weight_decay, opt.loss_scale)  # MindSpore keeps weight_decay * loss_scale


def _rule_fields(opt) -> str:
    """The convention, then every rule field that differs from the convention's row, and the EMA."""
    from .._conventions import get_convention

    rule, row = opt._rule, get_convention(opt._rule.convention)
    parts = [f"convention={rule.convention!r}"]
    for name in ("eps_in_sqrt", "initial_accumulator_value", "lr_in_momentum", "weight_decay_mode"):
        if getattr(rule, name) != getattr(row, name):
            parts.append(f"{name}={getattr(rule, name)!r}")
    parts += [f"{name}=True" for name in ("maximize", "nesterov", "bias_correction") if getattr(rule, name)]
    if opt.use_ema:
        parts.append(f"use_ema=True, ema_momentum={opt._ema.decay!r}, ema_schedule={opt._ema.schedule!r}")
        if opt._ema.overwrite_frequency:
            parts.append(f"ema_overwrite_frequency={opt._ema.overwrite_frequency}")
    return ", ".join(parts)


def describe(opt) -> str:
    rule = opt._rule
    if opt.use_kernel:
        launches = len(opt._plan.launches)
        how = f"kernel='rmsprop_ops', launches={launches}, flat_state={opt.flat_state}"
    else:
        how = f"kernel='{type(opt.opt).__name__}' (fallback), flat_state=False"
    return (f"learning_rate={_learning_rate(opt)}, decay={rule.rho!r}, momentum={rule.momentum!r}, "
            f"epsilon={rule.epsilon!r}, centered={rule.centered}, loss_scale={opt.loss_scale!r}, "
            f"weight_decay={_weight_decay(opt)}, params={opt.param_length}, {_rule_fields(opt)}, {how}")
