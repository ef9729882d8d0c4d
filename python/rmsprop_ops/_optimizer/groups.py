"""Parameter groups of the neutral optimizer: each group's hyper-parameters, validated.

A group dict may set any of :data:`GROUP_KEYS` (or the convention's names for them, and ``lr``); what
it does not set comes from the optimizer's :class:`~rmsprop_ops._conventions.Rule`.
"""

from __future__ import annotations

import inspect

from .._conventions import canonical_name
from .._rows_optimizer import check_sparse_mode
from .._toolkit.checks import core_attr, flag, real_in
from ..schedules import as_schedule

__all__ = ["GROUP_KEYS", "group_canonical", "group_hyper", "lr_function"]

GROUP_KEYS = ("learning_rate", "rho", "momentum", "epsilon", "centered", "weight_decay", "clip_gradient",
              "clip_weights", "lr_mult", "wd_mult", "sparse_mode")


def group_canonical(convention):
    """The canonical name of a group key (``lr`` is accepted under every convention, as before)."""
    def canonical(key):
        if key == "lr":
            return "learning_rate"
        return canonical_name(convention, key, accepted=GROUP_KEYS, where="group")
    return canonical


def group_hyper(group, rule, defaults, n_groups) -> dict:
    """The hyper-parameters of ``group`` (a ``grouping.Group``): its options over ``defaults``."""
    where = f" (group {group.index})"
    hp = {k: group.options.get(k, defaults[k]) for k in GROUP_KEYS}
    try:
        lr = hp["learning_rate"]
        if lr is None:
            raise ValueError(f"learning_rate: the {rule.convention!r} convention has no default; "
                             f"expected a float, a schedule or a callable, got None")
        if not callable(lr):
            hp["learning_rate"] = core_attr("learning_rate", lr)
        for name in ("rho", "momentum", "epsilon", "weight_decay"):
            hp[name] = core_attr(name, hp[name])
        hp["centered"] = flag("centered", hp["centered"])
        for name in ("clip_gradient", "clip_weights"):
            if hp[name] is not None:
                hp[name] = core_attr(name, hp[name])
        for name in ("lr_mult", "wd_mult"):
            hp[name] = real_in(name, hp[name], low=0.0)
        core_attr("weight_decay", hp["weight_decay"] * hp["wd_mult"])  # the product must stay finite
        check_sparse_mode("sparse_mode", hp["sparse_mode"])
    except (TypeError, ValueError) as e:
        raise type(e)(f"{e}{where}" if n_groups > 1 or group.options else str(e)) from None
    return hp


def lr_function(lr):
    """A callable of the step; Keras-style callables without arguments are called without one."""
    fn = as_schedule(lr)
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return fn
    required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                                          p.POSITIONAL_OR_KEYWORD)]
    if not required and not any(p.kind == p.VAR_POSITIONAL for p in params):
        return lambda step: fn()
    return fn
