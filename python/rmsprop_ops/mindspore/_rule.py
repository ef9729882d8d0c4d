"""The update rule of ``rmsprop_ops.mindspore.RMSProp``: the shared :class:`rmsprop_ops._conventions.Rule`
resolved from the constructor's arguments (MindSpore's convention unless ``convention=`` names another),
after MindSpore's own checks of those arguments; what the rule implies for the state buffers and the custom
op's config.

Learning rates and weight decay stay with ``mindspore.nn.Optimizer``, which parses their many kinds
(schedules, per-step Tensors, groups); the record's ``learning_rate`` and ``weight_decay`` fields are the
convention's defaults and are not used here.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import numpy as np
from mindspore import Tensor
from mindspore.nn.optim.optimizer import _ConvertToCell, _IteratorLearningRate

from .._conventions import Convention, Rule, canonical_name, get_convention, resolve
from ._op import config_layout, make_config

__all__ = ["Rule", "StateKind", "Arguments", "MindSporeDefault", "MINDSPORE_DEFAULTS", "ARGUMENT_OF",
           "resolve_arguments", "rule_from_arguments", "state_kinds", "launch_config", "step_mask", "check_learning_rates",
           "check_weight_decay_kind", "kernel_only"]


class MindSporeDefault(float):
    """A default of ``nn.RMSProp``'s signature: the number itself (the signature reads as MindSpore's), told
    apart from the same number passed by the caller, so that a ``convention`` can supply its own default."""

    __slots__ = ()

    def __repr__(self):
        return float.__repr__(self)


# nn.RMSProp's defaults of the arguments a convention or its aliases may set.
MINDSPORE_DEFAULTS = {"learning_rate": MindSporeDefault(0.1), "decay": MindSporeDefault(0.9),
                      "momentum": MindSporeDefault(0.0), "epsilon": MindSporeDefault(1e-10),
                      "loss_scale": MindSporeDefault(1.0), "weight_decay": MindSporeDefault(0.0)}
# Our argument name of each rule field a convention's default or alias may name.
ARGUMENT_OF = {"learning_rate": "learning_rate", "rho": "decay", "momentum": "momentum", "epsilon": "epsilon",
                "weight_decay": "weight_decay", "loss_scale_factor": "loss_scale"}
# Rule fields settable by keyword on their own (None / False: the convention's value).
RULE_KEYWORDS = ("initial_accumulator_value", "eps_in_sqrt", "lr_in_momentum", "weight_decay_mode", "maximize",
                 "nesterov", "bias_correction")
# Rule fields whose arithmetic only the core does (MindSpore's ApplyRMSProp has no such option).
_CORE_ONLY = ("nesterov", "bias_correction")


@dataclasses.dataclass(frozen=True)
class StateKind:
    """One kind of per-parameter state: the optimizer attribute holding it, the name prefix MindSpore gives
    its Parameters and their initial value (an initializer name or a number)."""

    attr: str
    prefix: str
    init: object


@dataclasses.dataclass(frozen=True)
class Arguments:
    """The constructor's arguments with the convention's defaults and names resolved: the convention, what
    goes to ``mindspore.nn.Optimizer`` (``learning_rate``: the caller's or the convention's default;
    ``weight_decay``, ``loss_scale``), what makes the rule (``decay``, ``momentum``, ``epsilon``,
    ``centered`` and the rule keywords passed, ``fields``)."""

    convention: Convention
    learning_rate: object
    decay: object
    momentum: object
    epsilon: object
    centered: object
    weight_decay: object
    loss_scale: object
    fields: MappingProxyType


def _initial(value: float):
    # MindSpore's own names for the common values, so the state is made exactly as nn.RMSProp makes it.
    return {0.0: "zeros", 1.0: "ones"}.get(value, value)


def state_kinds(rule: Rule) -> tuple[StateKind, ...]:
    """The state ``rule`` keeps per parameter, in nn.RMSProp's names and order of creation."""
    kinds = (StateKind("ms", "mean_square", _initial(rule.initial_accumulator_value)),
             StateKind("moment", "moment", "zeros"))
    return (StateKind("mg", "mean_grad", "zeros"),) + kinds if rule.centered else kinds


def launch_config(rule: Rule, weight_decays, rescale_grad: float, offsets=None, *, maximize=None) -> Tensor:
    """The custom op's config tensor for one launch over ``len(weight_decays)`` tensors: every rule field,
    computed by the core. ``maximize`` (default: the rule's) is False where the step negates the gradients
    itself, before MindSpore's own weight decay. With ``bias_correction`` the config's ``step`` is 1 here:
    the step adds the global step count to it (:func:`step_mask`)."""
    momentum = rule.effective_momentum(rule.momentum, rule.centered)
    core_only = {name: True for name in _CORE_ONLY if getattr(rule, name)}
    return make_config(len(weight_decays), rho=rule.rho, epsilon=rule.epsilon, momentum=momentum,
                       centered=rule.centered, weight_decays=weight_decays, rescale_grad=rescale_grad,
                       offsets=offsets, eps_in_sqrt=rule.eps_in_sqrt_for(momentum),
                       lr_in_momentum=rule.lr_in_momentum, weight_decay_mode=rule.weight_decay_mode,
                       maximize=rule.maximize if maximize is None else maximize, **core_only)


def step_mask(config: Tensor) -> Tensor:
    """A float64 vector shaped like ``config``, 1 at the config's ``step`` entry and 0 elsewhere: the
    step's config is ``config + mask * global_step`` (the update's number counted from 1, as the core's
    bias correction counts, read from the optimizer's global step, which checkpoints carry)."""
    mask = np.zeros(config.shape, np.float64)
    mask[config_layout().index("step")] = 1.0
    return Tensor(mask)


def kernel_only(rule: Rule) -> list[str]:
    """The fields of ``rule`` that MindSpore's ApplyRMSProp / ApplyCenteredRMSProp cannot compute (they
    compute MindSpore's rule only), as ``name=value`` texts; empty when the fallback ops can run it."""
    momentum = rule.effective_momentum(rule.momentum, rule.centered)
    out = []
    if not rule.eps_in_sqrt_for(momentum):
        out.append("eps_in_sqrt=False")
    if not rule.lr_in_momentum:
        out.append("lr_in_momentum=False")
    if rule.weight_decay_mode != "l2":
        out.append(f"weight_decay_mode={rule.weight_decay_mode!r}")
    if momentum != rule.momentum:
        out.append(f"momentum ignored unless centered ({rule.convention})")
    return out + [f"{name}=True" for name in _CORE_ONLY if getattr(rule, name)]


def _mindspore_checks(cls_name, *, decay, momentum, epsilon, centered, use_locking, flat_state) -> None:
    """The TypeError / ValueError nn.RMSProp raises for its arguments (same order, same messages)."""
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


def _take_aliases(cls_name, conv, args: dict, aliases: dict) -> None:
    """Moves the convention's own keyword names (torch's ``lr``, ``alpha``, ``eps``, ...) into ``args``
    under ours; TypeError for a name of another convention (saying which to use) or one given twice."""
    for key, value in aliases.items():
        field = canonical_name(conv, key, accepted=set(ARGUMENT_OF), where=cls_name)
        name = ARGUMENT_OF.get(field)
        if name is None:
            raise TypeError(f"{cls_name}: unexpected keyword {key!r} ({field} is not an argument here)")
        if not isinstance(args[name], MindSporeDefault):
            raise TypeError(f"{cls_name}: {name} given twice (as {name} and as {conv.name}'s {key})")
        args[name] = value


def resolve_arguments(cls_name: str, args: dict, *, convention, fields: dict, aliases: dict) -> Arguments:
    """The :class:`Arguments` of a constructor call (no value is checked here but the convention's names).

    ``args``: learning_rate, decay, momentum, epsilon, centered, weight_decay, loss_scale as passed (a
    :class:`MindSporeDefault` where not passed); ``convention``: a name of ``rmsprop_ops.CONVENTIONS`` or None
    (MindSpore's rule and defaults); ``fields``: the rule keywords (:data:`RULE_KEYWORDS`, None where not
    passed); ``aliases``: the remaining keyword arguments, the convention's names.
    """
    conv = get_convention("mindspore" if convention is None else convention)
    args = dict(args)
    _take_aliases(cls_name, conv, args, aliases)
    if convention is not None:
        for field, value in conv.defaults.items():
            if isinstance(args[ARGUMENT_OF[field]], MindSporeDefault):
                args[ARGUMENT_OF[field]] = value
        if args["learning_rate"] is None:
            raise TypeError(f"{cls_name}: convention={conv.name!r} has no default learning rate; pass "
                            "learning_rate=...")
    # From here on no value is a MindSporeDefault: MindSpore sees plain numbers.
    args = {k: float(v) if isinstance(v, MindSporeDefault) else v for k, v in args.items()}
    return Arguments(convention=conv, fields=MappingProxyType({k: v for k, v in fields.items() if v is not None}),
                     **args)


def rule_from_arguments(cls_name: str, args: Arguments, *, use_locking, flat_state) -> Rule:
    """The :class:`Rule` of ``args``, or the TypeError / ValueError MindSpore raises for its arguments (same
    order, same messages; run after ``nn.Optimizer`` checked the learning rate, parameters and weight
    decay, as in ``nn.RMSProp``), then TypeError / ValueError naming a rule field or a value the core's
    registry refuses (decay > 1)."""
    _mindspore_checks(cls_name, decay=args.decay, momentum=args.momentum, epsilon=args.epsilon,
                      centered=args.centered, use_locking=use_locking, flat_state=flat_state)
    try:
        rule = resolve(args.convention, rho=args.decay, momentum=args.momentum, epsilon=args.epsilon,
                       centered=args.centered, **args.fields)
    except ValueError as e:
        name, _, detail = str(e).partition(": ")
        name = {"rho": "decay"}.get(name, name)
        raise ValueError(f"For '{cls_name}', the argument '{name}' is out of range: {detail}.") from None
    return rule


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


def check_weight_decay_kind(opt, rule: Rule, weight_decay) -> None:
    """MindSpore's own ops apply a dynamic weight decay (a Cell) and, with gradient centralisation, any
    decay, as coupled L2 (``g + wd * w``): refuse another kind there rather than compute L2 silently."""
    if rule.weight_decay_mode == "l2" or not opt.exec_weight_decay:
        return
    if opt.dynamic_weight_decay:
        raise ValueError(f"For '{opt.cls_name}', weight_decay_mode={rule.weight_decay_mode!r} needs a number as "
                         f"'weight_decay' (per group if needed), but got a {type(weight_decay).__name__}: MindSpore "
                         "applies a dynamic weight decay as coupled L2.")
    if rule.weight_decay_mode == "l1" and opt.is_group and any(opt.grad_centralization_flags):
        raise ValueError(f"For '{opt.cls_name}', weight_decay_mode='l1' cannot be combined with "
                         "'grad_centralization': MindSpore centralises the gradient after a coupled decay, which "
                         "its ops compute as L2.")
