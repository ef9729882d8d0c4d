"""The update rule of ``rmsprop_ops.mindspore.RMSProp`` as one named record, and the checks of the
constructor arguments that make it (MindSpore's own checks first, then the core registry's ranges)."""

from __future__ import annotations

import dataclasses

import numpy as np
from mindspore import Tensor
from mindspore.nn.optim.optimizer import _ConvertToCell, _IteratorLearningRate

from ..registry import check_attr
from ._op import make_config

__all__ = ["Rule", "StateKind", "rule_from_arguments", "check_learning_rates"]


@dataclasses.dataclass(frozen=True)
class StateKind:
    """One kind of per-parameter state: the optimizer attribute holding it, the name prefix MindSpore gives
    its Parameters and their initial value."""

    attr: str
    prefix: str
    init: str


@dataclasses.dataclass(frozen=True)
class Rule:
    """Every field of the update rule, in MindSpore's names.

    MindSpore's convention is fixed here (epsilon inside the square root, the learning rate inside the
    moment, the mean square starting at ones); a field added to the core's rule is added here once and
    reaches the kernel through :meth:`config`.
    """

    decay: float
    momentum: float
    epsilon: float
    centered: bool

    @property
    def state_kinds(self) -> tuple[StateKind, ...]:
        """The state this rule keeps per parameter, in nn.RMSProp's names and order of creation."""
        kinds = (StateKind("ms", "mean_square", "ones"), StateKind("moment", "moment", "zeros"))
        return (StateKind("mg", "mean_grad", "zeros"),) + kinds if self.centered else kinds

    def config(self, weight_decays, rescale_grad: float, offsets=None) -> Tensor:
        """The custom op's config tensor for one launch over ``len(weight_decays)`` tensors."""
        return make_config(len(weight_decays), rho=self.decay, epsilon=self.epsilon, momentum=self.momentum,
                           centered=self.centered, weight_decays=weight_decays, rescale_grad=rescale_grad,
                           offsets=offsets)


# (argument, registry attribute) of the rule's numbers; MindSpore calls rho "decay".
_REGISTRY_NAMES = (("decay", "rho"), ("epsilon", "epsilon"), ("momentum", "momentum"))


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
    values = {"decay": decay, "epsilon": epsilon, "momentum": momentum}
    for name, attr in _REGISTRY_NAMES:
        try:
            check_attr("rmsprop", attr, values[name], name=name)
        except ValueError as e:
            detail = str(e).removeprefix(f"{name}: ")
            raise ValueError(f"For '{cls_name}', the argument '{name}' is out of range: {detail}.") from None
    return Rule(decay=decay, momentum=momentum, epsilon=epsilon, centered=centered)


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
