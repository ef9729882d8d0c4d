"""Constructor arguments of ``rmsprop_ops.paddle.RMSProp``: checked, and gathered into named records.

``Rule`` holds every field of the update rule (one record, so a new rule option is one field here and one
keyword in the constructor); ``Layout`` holds how the state is laid out and how updates are launched.
Checks raise TypeError/ValueError naming the argument, before the optimizer exists.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import paddle
from paddle.base import framework
from paddle.nn.clip import ClipGradBase
from paddle.optimizer.lr import LRScheduler
from paddle.regularizer import L1Decay, L2Decay

from .. import _conventions as conventions
from .. import registry
from .._toolkit.checks import real

__all__ = ["PADDLE_RULE", "Rule", "Layout", "GROUP_RULE_KEYS", "check_lr", "check_parameters", "check_grad_clip",
           "check_name",
           "check_bool", "check_rule_value", "check_weight_decay", "check_group", "check_set_lr"]

# The rule fields a parameter group may override (as in paddle.optimizer.RMSProp).
GROUP_RULE_KEYS = ("rho", "epsilon", "momentum", "centered")


# Paddle's own rule (the 'paddle' row of rmsprop_ops.CONVENTIONS), the default of every record below.
PADDLE_RULE = conventions.resolve("paddle")


@dataclasses.dataclass(frozen=True)
class Rule:
    """Every field of the update rule that one launch of the op shares. Defaults are Paddle's rule.

    ``rho``, ``epsilon``, ``momentum``, ``centered`` are the launch's (a parameter group may override them);
    the convention's fields (eps placement, lr placement, the accumulator's start value, what a float
    ``weight_decay`` means, ...) are the optimizer's, in ``resolved``: the ``rmsprop_ops._conventions.Rule``
    record the neutral optimizer resolves the same way. It takes no part in comparisons (one optimizer's
    launches all share it). ``core_attrs``: registry options the convention turned on, as (name, value)
    pairs. ``clip_weights`` None leaves the weights unclipped."""

    rho: float = 0.95
    epsilon: float = 1e-6
    momentum: float = 0.0
    centered: bool = False
    clip_weights: float | None = None
    core_attrs: tuple = ()
    resolved: conventions.Rule = dataclasses.field(default=PADDLE_RULE, compare=False, repr=False)

    eps_in_sqrt = property(lambda self: self.resolved.eps_in_sqrt, doc="eps inside the root (the optimizer's).")
    lr_in_momentum = property(lambda self: self.resolved.lr_in_momentum, doc="lr inside the momentum buffer.")
    initial_accumulator_value = property(lambda self: self.resolved.initial_accumulator_value,
                                         doc="The value the mean square starts at.")

    @classmethod
    def checked(cls, **fields) -> Rule:
        """A Rule of the constructor's arguments, each checked by its field's kind (a bool field must be a
        bool; the others are numbers in the registry's range; ``clip_weights`` may be None)."""
        out = {}
        for f in dataclasses.fields(cls):
            value = fields.pop(f.name, f.default)
            if f.type == "bool":
                out[f.name] = check_bool(f.name, value)
            elif f.type in ("float", "float | None"):
                out[f.name] = None if value is None and f.default is None else check_rule_value(f.name, value)
            else:  # the records resolved before (core_attrs, resolved)
                out[f.name] = value
        if fields:
            raise TypeError(f"unknown rule fields {sorted(fields)}")
        return cls(**out)

    @property
    def convention(self) -> str:
        """The name of the convention the rule fields make (``rmsprop_ops.CONVENTIONS``), or "custom" when
        some were set apart from the convention's row (``base`` names that row)."""
        row = conventions.CONVENTIONS[self.resolved.convention]
        same = all(getattr(row, f) == getattr(self.resolved, f) for f in conventions._CONVENTION_FIELDS)
        return self.resolved.convention if same else "custom"

    @property
    def base(self) -> str:
        """The convention the rule was resolved from."""
        return self.resolved.convention

    def for_group(self, group) -> Rule:
        """This rule with a parameter group's overrides (a group dict; the keys it lacks keep ours)."""
        changes = {k: group[k] for k in GROUP_RULE_KEYS if k in group and group[k] != getattr(self, k)}
        return dataclasses.replace(self, **changes) if changes else self

    def initial_value(self, kind: str) -> float:
        """The value an accumulator of ``kind`` (Paddle's names) starts at."""
        return self.resolved.initial_accumulator_value if kind == "mean_square" else 0.0

    def op_attrs(self) -> dict:
        """The rule's attributes of the registry op (``centered`` selects the op instead). The momentum
        and eps placement are the ones the convention gives this launch (MXNet ignores momentum unless
        centered; TF 2.0-2.10 Keras moves eps out of the root without momentum)."""
        r = self.resolved
        momentum = r.effective_momentum(self.momentum, self.centered)
        attrs = {"rho": float(self.rho), "epsilon": float(self.epsilon), "momentum": momentum,
                 "eps_in_sqrt": r.eps_in_sqrt_for(momentum), "lr_in_momentum": r.lr_in_momentum,
                 "clip_after_weight_decay": r.clip_after_weight_decay,
                 "clip_weights": -1.0 if self.clip_weights is None else float(self.clip_weights)}
        attrs.update(self.core_attrs)
        return attrs


@dataclasses.dataclass(frozen=True)
class Layout:
    """How state is kept and updates are launched (none of it changes the numbers)."""

    fused: bool = True
    multi_precision: bool = False
    flat_state: bool | None = None  # None: flat in dynamic mode, per-parameter variables in a program

    def flat_in(self, dygraph: bool) -> bool:
        return self.flat_state if self.flat_state is not None else dygraph


def check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} ({value!r})")
    return value


def _check_number(name, value, attr=None):
    """A real number (NumPy scalars included) in the registry's range for ``attr``, as a float."""
    if value is None:
        raise ValueError(f"{name}: expected a number, got None")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a float, got {type(value).__name__} ({value!r})")
    as_float = real(name, value, finite=False)  # 10**400: a ValueError naming the argument
    registry.check_attr("rmsprop", attr or name, as_float, name=name)
    return as_float


def check_rule_value(name, value):
    """rho, epsilon, momentum or clip_weights, checked against the registry's range."""
    return _check_number(name, value)


def check_lr(lr):
    """The learning rate as Paddle's Optimizer takes it: an LRScheduler or a float (ints and NumPy floats,
    which Paddle rejects, are converted)."""
    if isinstance(lr, LRScheduler):
        return lr
    if lr is None:
        raise ValueError("learning_rate: expected a float or an LRScheduler, got None")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(f"learning_rate: expected a float or an LRScheduler, got {type(lr).__name__}")
    return _check_number("learning_rate", lr)


def check_set_lr(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"set_lr: value: expected a float, got {type(value).__name__}")
    return _check_number("set_lr: value", value, "learning_rate")


def check_grad_clip(grad_clip):
    if grad_clip is not None and not isinstance(grad_clip, ClipGradBase):
        raise TypeError("grad_clip: expected None or a paddle.nn.ClipGradByGlobalNorm, ClipGradByNorm or "
                        f"ClipGradByValue, got {type(grad_clip).__name__} ({grad_clip!r})")


def check_name(name):
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name: expected None or a str, got {type(name).__name__} ({name!r})")


def _is_param(p):
    return isinstance(p, (paddle.Tensor, framework.Variable, paddle.pir.Value))


def _check_params_list(where, params, single_ok=False):
    if single_ok and _is_param(params):
        return [params]  # Paddle accepts one parameter as a group's params
    if isinstance(params, (paddle.Tensor, dict, str, bytes)) or not hasattr(params, "__iter__"):
        raise TypeError(f"{where}: expected a list of parameters (paddle Tensors), got {type(params).__name__}")
    params = list(params)
    if not params:
        raise ValueError(f"{where}: expected at least one parameter, got an empty list (Paddle's RMSProp "
                         "fails on it with an IndexError)")
    for i, p in enumerate(params):
        if not _is_param(p):
            raise TypeError(f"{where}[{i}]: expected a parameter (paddle Tensor), got {type(p).__name__}")
    return params


def check_parameters(parameters):
    """``parameters`` as a list (Paddle accepts any iterable): of Tensors, or of group dicts each with a
    non-empty ``params`` list, every group's values checked. None (all parameters, static mode only) is
    left to Paddle."""
    if parameters is None:
        return None
    if isinstance(parameters, (paddle.Tensor, dict, str, bytes)) or not hasattr(parameters, "__iter__"):
        raise TypeError("parameters: expected a list of parameters or of parameter-group dicts, got "
                        f"{type(parameters).__name__}")
    parameters = list(parameters)
    if not parameters:
        raise ValueError("parameters: expected at least one parameter or parameter group, got an empty list "
                         "(Paddle's RMSProp fails on it with an IndexError)")
    if all(isinstance(g, dict) for g in parameters):
        out = []
        for i, group in enumerate(parameters):
            if "params" not in group:
                raise ValueError(f"parameters[{i}]: expected a parameter group with a 'params' entry, got keys "
                                 f"{sorted(group)}")
            check_group(i, group)
            out.append(dict(group, params=_check_params_list(f"parameters[{i}]['params']", group["params"], True)))
        return out
    if any(isinstance(g, dict) for g in parameters):
        raise TypeError("parameters: expected a list of parameters or a list of parameter-group dicts, got a "
                        "mix of both")
    return _check_params_list("parameters", parameters)


def check_weight_decay(name, wd):
    if wd is None:
        return
    if isinstance(wd, (L1Decay, L2Decay)):
        _check_number(name, wd._coeff, "weight_decay")
        return
    if isinstance(wd, bool) or not isinstance(wd, numbers.Real):
        if callable(wd):
            return  # another WeightDecayRegularizer: applied by Paddle before the op
        raise TypeError(f"{name}: expected a float, L1Decay or L2Decay, got {type(wd).__name__}")
    _check_number(name, wd, "weight_decay")


def check_group(i, group):
    for k in ("rho", "epsilon", "momentum"):
        if k in group:
            try:
                check_rule_value(k, group[k])
            except ValueError as e:
                raise ValueError(f"parameters[{i}]: {e}") from None
    if "centered" in group:
        check_bool(f"parameters[{i}].centered", group["centered"])
    if "learning_rate" in group:
        lr = group["learning_rate"]
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"parameters[{i}].learning_rate: expected a scale >= 0, got {lr!r}")
    if "weight_decay" in group:
        check_weight_decay(f"parameters[{i}].weight_decay", group["weight_decay"])
