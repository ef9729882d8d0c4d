"""The convention of one ``rmsprop_ops.paddle.RMSProp``: its constructor's arguments resolved into records.

``convention=`` names a row of ``rmsprop_ops.CONVENTIONS``; the default, ``"paddle"``, is
``paddle.optimizer.RMSProp``'s rule and defaults. The row decides eps placement, the accumulator's start
value, lr placement and what a float ``weight_decay`` means, and gives the defaults of ``learning_rate``,
``rho``, ``epsilon`` and ``momentum``; every value the caller passed keeps its value. Resolution is
``rmsprop_ops._conventions.resolve``, the one the neutral optimizer and the MindSpore front end use, after
Paddle's own argument checks (so a Paddle user's mistakes read as before).

The signature keeps ``paddle.optimizer.RMSProp``'s defaults (``rho=0.95``, ...) and the rule options' former
ones (``eps_in_sqrt=True``, ``lr_in_momentum=True``), so "passed" cannot be told from the value:
:func:`explicit_arguments` hands the constructor a :class:`Default` record for each of those arguments
the caller left out.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import NamedTuple


from .. import _conventions as conventions
from .. import registry
from .._toolkit import ema as ema_rules
from .._toolkit.checks import flag
from . import _args, _decay

__all__ = ["Default", "explicit_arguments", "Settings", "resolve_arguments", "RULE_ARGUMENTS"]

# The constructor's rule arguments: Paddle's four (whose defaults come from the convention when left out),
# centered, and the convention's fields, each settable on its own.
RULE_ARGUMENTS = ("learning_rate", "rho", "epsilon", "momentum", "centered", "eps_in_sqrt",
                  "initial_accumulator_value", "lr_in_momentum", "weight_decay_mode", "clip_after_weight_decay",
                  "maximize", "nesterov", "bias_correction")
# Options that are the core's arithmetic (registry attributes, passed to the op as they are).
_CORE_ONLY = ("maximize", "nesterov", "bias_correction")


class Default(NamedTuple):
    """An argument the caller left out, with the signature's default."""

    value: object


def explicit_arguments(*names):
    """Decorate ``__init__`` so that each of ``names`` the caller left out arrives as ``Default(default)``
    (a required one may then be left out: its Default holds None). ``inspect.signature`` still shows the
    undecorated signature."""
    def wrap(init):
        sig = inspect.signature(init)
        relaxed = sig.replace(parameters=[
            p.replace(default=Default(None if p.default is p.empty else p.default)) if p.name in names else p
            for p in sig.parameters.values()])

        @functools.wraps(init)
        def wrapper(*args, **kwargs):
            bound = relaxed.bind(*args, **kwargs)
            bound.apply_defaults()
            return init(*bound.args, **bound.kwargs)
        return wrapper
    return wrap


@dataclass(frozen=True)
class Settings:
    """A constructor's arguments, resolved.

    ``rule``: the full ``_conventions.Rule``. ``learning_rate``: a float or an LRScheduler, as Paddle's
    Optimizer takes it. ``weight_decay``: the optimizer's regularizer (``_decay``). ``explicit_mode``:
    ``weight_decay_mode`` was passed. ``core_attrs``: (name, True) for the core options turned on
    (maximize, nesterov, bias_correction: registry attributes). ``use_ema`` and ``ema``: the moving
    averages (``_toolkit.ema.EMA``)."""

    rule: conventions.Rule
    learning_rate: object
    weight_decay: object
    explicit_mode: bool
    core_attrs: tuple
    use_ema: bool
    ema: ema_rules.EMA


def _given(value):
    return None if isinstance(value, Default) else value


def _paddle_checks(values):
    """Paddle's own arguments, where passed, checked as ``rmsprop_ops.paddle.RMSProp`` always has (an
    explicit None included: Paddle's error)."""
    checks = {"learning_rate": _learning_rate, "rho": functools.partial(_args.check_rule_value, "rho"),
              "epsilon": functools.partial(_args.check_rule_value, "epsilon"),
              "momentum": functools.partial(_args.check_rule_value, "momentum"),
              "centered": functools.partial(_args.check_bool, "centered"),
              "eps_in_sqrt": functools.partial(_args.check_bool, "eps_in_sqrt"),
              "lr_in_momentum": functools.partial(_args.check_bool, "lr_in_momentum")}
    out = dict(values)
    for name, check in checks.items():
        if not isinstance(values[name], Default):
            out[name] = check(values[name])
    return out


def _learning_rate(value):
    """Paddle's learning rate (float or LRScheduler), or a ``rmsprop_ops.schedules`` schedule, which becomes
    a :class:`~rmsprop_ops.paddle.ScheduleLR`."""
    from ..schedules import Schedule

    if isinstance(value, Schedule):
        from ._schedule import ScheduleLR

        return ScheduleLR(value)
    return _args.check_lr(value)


def _apply_aliases(conv, values, aliases):
    """The framework's own names (torch's ``lr``, ``alpha``, ``eps``; ...) accepted under its convention."""
    for key, value in aliases.items():
        name = conventions.canonical_name(conv, key, accepted=set(values), where="RMSProp")
        if name not in values:
            raise TypeError(f"RMSProp: unexpected keyword {key!r} ({name} is not an argument of "
                            f"rmsprop_ops.paddle.RMSProp)")
        if _given(values[name]) is not None:
            raise TypeError(f"RMSProp: {name} given twice (as {name} and as {conv.name}'s {key})")
        values[name] = value
    return values


def _core_attrs(rule):
    wanted = [name for name in _CORE_ONLY if getattr(rule, name)]
    known = {a["name"] for a in registry.schema("rmsprop_multi")["attrs"]}
    for name in wanted:
        if name not in known:
            raise ValueError(f"{name}: expected False; True needs the core's update rule, and this build's op "
                             f"registry has no {name!r} attribute")
    return tuple((name, True) for name in wanted)


def resolve_arguments(convention, values: dict, aliases: dict, *, weight_decay, use_ema, ema_momentum,
                      ema_schedule, ema_overwrite_frequency) -> Settings:
    """Resolve the constructor's rule arguments (``values``: RULE_ARGUMENTS -> value, :class:`Default` or
    None where left out) under ``convention``. Raises TypeError/ValueError naming the argument."""
    conv = conventions.get_convention(convention)
    values = _apply_aliases(conv, dict(values, weight_decay=weight_decay), aliases)
    weight_decay = _given(values.pop("weight_decay"))
    explicit = {k: _given(v) for k, v in _paddle_checks(values).items()}
    rule = conventions.resolve(conv, **explicit)
    if rule.learning_rate is None:
        raise TypeError(f"RMSProp: missing argument learning_rate (the {conv.name!r} convention has no "
                        f"default learning rate)")
    lr = _args.check_lr(rule.learning_rate)
    _args.check_weight_decay("weight_decay", weight_decay)
    decay = _decay.for_mode("weight_decay", weight_decay, rule.weight_decay_mode,
                            explicit.get("weight_decay_mode") is not None)
    core_attrs = _core_attrs(rule)
    ema = ema_rules.make_ema(ema_momentum, ema_schedule, ema_overwrite_frequency)
    return Settings(rule=rule, learning_rate=lr, weight_decay=decay,
                    explicit_mode=explicit.get("weight_decay_mode") is not None, core_attrs=core_attrs,
                    use_ema=flag("use_ema", use_ema), ema=ema)
