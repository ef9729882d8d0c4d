"""The update rule of ``rmsprop_ops.mindspore.RMSProp``: the shared :class:`rmsprop_ops._conventions.Rule`
resolved for MindSpore's convention, after MindSpore's own checks of the constructor arguments; what the
rule implies for the state buffers and the custom op's config.

Learning rates and weight decay stay with ``mindspore.nn.Optimizer``, which parses their many kinds
(schedules, per-step Tensors, groups); the record's ``learning_rate`` and ``weight_decay`` fields are the
convention's defaults and are not used here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from mindspore import Tensor
from mindspore.nn.optim.optimizer import _ConvertToCell, _IteratorLearningRate

from .._conventions import Rule, resolve
from ._op import make_config

__all__ = ["Rule", "StateKind", "rule_from_arguments", "state_kinds", "launch_config", "check_learning_rates"]


@dataclasses.dataclass(frozen=True)
class StateKind:
    """One kind of per-parameter state: the optimizer attribute holding it, the name prefix MindSpore gives
    its Parameters and their initial value (an initializer name or a number)."""

    attr: str
    prefix: str
    init: object


def _initial(value: float):
    # MindSpore's own names for the common values, so the state is made exactly as nn.RMSProp makes it.
    return {0.0: "zeros", 1.0: "ones"}.get(value, value)


def state_kinds(rule: Rule) -> tuple[StateKind, ...]:
    """The state ``rule`` keeps per parameter, in nn.RMSProp's names and order of creation."""
    kinds = (StateKind("ms", "mean_square", _initial(rule.initial_accumulator_value)),
             StateKind("moment", "moment", "zeros"))
    return (StateKind("mg", "mean_grad", "zeros"),) + kinds if rule.centered else kinds


def launch_config(rule: Rule, weight_decays, rescale_grad: float, offsets=None) -> Tensor:
    """The custom op's config tensor for one launch over ``len(weight_decays)`` tensors."""
    return make_config(len(weight_decays), rho=rule.rho, epsilon=rule.epsilon, momentum=rule.momentum,
                       centered=rule.centered, weight_decays=weight_decays, rescale_grad=rescale_grad,
                       offsets=offsets)


def rule_from_arguments(cls_name: str, *, decay, momentum, epsilon, centered, use_locking, flat_state) -> Rule:
    """The Rule of the constructor's arguments, or the TypeError / ValueError MindSpore raises for them
    (same order, same messages), then ValueError for values the core's registry refuses (decay > 1)."""
    from mindspore import _checkparam as validator

    validator.check_value_type("decay", decay, [float], cls_name)
    validator.check_non_negative_float(decay, "decay", cls_name)
    validator.check_value_type("momentum", momentum, [float], cls_name)
    validator.check_non_negative_float(momentum, "momentum", cls_name)
    validator.check_value_type("epsilon", epsilon, [float], cls_name)
    validator.check_positive_float(epsilon, "epsilon", cls_name)
    validator.check_value_type("use_locking", use_locking, [bool], cls_name)
    validator.check_value_type("centered", centered, [bool], cls_name)
    validator.check_value_type("flat_state", flat_state, [bool], cls_name)
    try:
        return resolve("mindspore", decay=decay, momentum=momentum, epsilon=epsilon, centered=centered)
    except ValueError as e:
        name, _, detail = str(e).partition(": ")
        raise ValueError(f"For '{cls_name}', the argument '{name}' is out of range: {detail}.") from None


def check_learning_rates(cls_name: str, learning_rates) -> None:
    """Stricter than MindSpore: a learning rate given as numbers (a Tensor, a list, per group) must be
    finite and >= 0; MindSpore checks only a plain float. A LearningRateSchedule's values exist only in
    the step, where the kernel (on CPU) refuses them."""
    for lr in learning_rates:
        if isinstance(lr, (_ConvertToCell, _IteratorLearningRate)):  # MindSpore's wrappers of numbers
            lr = lr.learning_rate
        if not isinstance(lr, Tensor):
            continue
        values = lr.asnumpy().astype(np.float64).ravel()
        bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
        if bad.size:
            raise ValueError(f"For '{cls_name}', the argument 'learning_rate' must hold finite values >= 0, "
                             f"but got {values[bad[0]]} (value {bad[0]} of {values.size}).")
