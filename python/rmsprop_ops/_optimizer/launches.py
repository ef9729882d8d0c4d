"""State buffers and core launches of the neutral optimizer.

Members whose rule arguments agree (dtype, rho, momentum, epsilon, centered, clipping, eps placement)
share a :class:`LaunchPlan`: one ``rmsprop_multi_`` call per step, with per-tensor learning rates and
weight decays as lists. :func:`launch_calls` computes every call's arguments - learning rates from the
schedules included - and validates them before the optimizer makes the first call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._functional import rmsprop_multi_
from .._toolkit.grouping import plan_launches
from .arrays import math_dtype

__all__ = ["LaunchKey", "LaunchPlan", "Slots", "make_slots", "make_plans", "launch_calls", "run_calls"]


@dataclass(frozen=True)
class LaunchKey:
    """The rule arguments one core call shares."""

    dtype: str
    rho: float
    momentum: float
    epsilon: float
    centered: bool
    clip_gradient: float | None
    clip_weights: float | None
    eps_in_sqrt: bool


@dataclass(frozen=True)
class LaunchPlan:
    """One launch: its key, members (flat indices), their groups, lr multipliers and weight decays."""

    key: LaunchKey
    members: tuple
    owners: np.ndarray
    lr_mults: np.ndarray
    weight_decay: object  # one float, or a list with one value per member
    covers_all: bool
    buffers: "Buffers"


@dataclass(frozen=True)
class Buffers:
    """A launch's arrays, gathered once (the lists every full step passes to the core)."""

    params: list
    mean_squares: list
    moments: list | None
    mean_grads: list | None


@dataclass(frozen=True)
class Slots:
    """The state buffers, one entry per member (None where a member keeps no such buffer)."""

    mean_square: list
    moment: list
    mean_grad: list


def _key(view, hp, rule) -> LaunchKey:
    momentum = rule.effective_momentum(hp["momentum"], hp["centered"])
    return LaunchKey(dtype=view.dtype.str, rho=hp["rho"], momentum=momentum, epsilon=hp["epsilon"],
                     centered=hp["centered"], clip_gradient=hp["clip_gradient"], clip_weights=hp["clip_weights"],
                     eps_in_sqrt=rule.eps_in_sqrt_for(momentum))


def make_slots(views, member_hp, rule) -> Slots:
    """Fresh state: ``ms`` at the convention's initial value, moments and mean gradients at zero."""
    ms, mom, mg = [], [], []
    for v, hp in zip(views, member_hp):
        mdt = math_dtype(v.dtype)
        ms.append(np.full(v.shape, rule.initial_accumulator_value, dtype=mdt))
        mom.append(np.zeros(v.shape, mdt) if rule.effective_momentum(hp["momentum"], hp["centered"]) > 0 else None)
        mg.append(np.zeros(v.shape, mdt) if hp["centered"] else None)
    return Slots(mean_square=ms, moment=mom, mean_grad=mg)


def _buffers(idx, views, slots, key) -> Buffers:
    return Buffers(params=[views[i] for i in idx], mean_squares=[slots.mean_square[i] for i in idx],
                   moments=[slots.moment[i] for i in idx] if key.momentum > 0 else None,
                   mean_grads=[slots.mean_grad[i] for i in idx] if key.centered else None)


def make_plans(views, member_hp, owners, rule, slots) -> tuple:
    """The launches, in order of first appearance of their keys."""
    plans = []
    n = len(views)
    for launch in plan_launches(_key(v, hp, rule) for v, hp in zip(views, member_hp)):
        idx = launch.members
        wd = [member_hp[i]["weight_decay"] * member_hp[i]["wd_mult"] for i in idx]
        plans.append(LaunchPlan(key=launch.key, members=idx, owners=np.asarray([owners[i] for i in idx]),
                                lr_mults=np.asarray([float(member_hp[i]["lr_mult"]) for i in idx]),
                                weight_decay=wd[0] if len(set(wd)) == 1 else wd, covers_all=launch.covers(n),
                                buffers=_buffers(idx, views, slots, launch.key)))
    return tuple(plans)


@dataclass(frozen=True)
class Call:
    """One prepared core call."""

    plan: LaunchPlan
    members: tuple
    lr: object
    weight_decay: object


def launch_calls(plans, group_lrs, present, names) -> list:
    """The calls of one step: members with a gradient, their learning rates (group rate x lr_mult,
    checked finite: a product can overflow) and weight decays. Raises before anything is written."""
    calls = []
    for plan in plans:
        keep = [k for k, i in enumerate(plan.members) if present[i]]
        if not keep:
            continue
        everyone = len(keep) == len(plan.members)
        with np.errstate(over="ignore"):
            lrs = group_lrs[plan.owners] * plan.lr_mults
        if not everyone:
            lrs = lrs[keep]
        if not np.isfinite(lrs).all():
            bad = plan.members[keep[int(np.argmin(np.isfinite(lrs)))]]
            raise ValueError(f"learning_rate: the rate of {names[bad]} overflows a float "
                             f"(its group's learning rate x lr_mult)")
        lr = float(lrs[0]) if (lrs == lrs[0]).all() else lrs.tolist()
        wd = plan.weight_decay
        if isinstance(wd, list) and not everyone:
            wd = [wd[k] for k in keep]
        members = plan.members if everyone else tuple(plan.members[k] for k in keep)
        calls.append(Call(plan=plan, members=members, lr=lr, weight_decay=wd))
    return calls


def run_calls(calls, views, grads, slots, rule, rescale, extra=None) -> None:
    """Make the core calls (after :func:`launch_calls` validated them)."""
    for call in calls:
        idx, key = call.members, call.plan.key
        if idx is call.plan.members:
            b = call.plan.buffers
            gs = grads if call.plan.covers_all else [grads[i] for i in idx]
        else:
            b = _buffers(idx, views, slots, key)
            gs = [grads[i] for i in idx]
        rmsprop_multi_(
            b.params, gs, b.mean_squares, lr=call.lr, rho=key.rho, epsilon=key.epsilon, momentum=key.momentum,
            moments=b.moments, centered=key.centered, mean_grads=b.mean_grads, eps_in_sqrt=key.eps_in_sqrt,
            lr_in_momentum=rule.lr_in_momentum, weight_decay=call.weight_decay,
            weight_decay_mode=rule.weight_decay_mode, rescale_grad=rescale, clip_gradient=key.clip_gradient,
            clip_weights=key.clip_weights, clip_after_weight_decay=rule.clip_after_weight_decay, **(extra or {}))


def check_rate(value, group: int, step: int) -> float:
    """A learning rate a schedule returned: a finite real number >= 0 (Python and NumPy scalars,
    0-d arrays and framework scalars such as a Keras schedule's tensor)."""
    where = f"learning_rate: the schedule of group {group} returned"
    if isinstance(value, (bool, str, bytes, complex)):
        raise TypeError(f"{where} {type(value).__name__} ({value!r}) at step {step}; expected a real number")
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    except (TypeError, ValueError):
        raise TypeError(f"{where} {type(value).__name__} ({value!r}) at step {step}; expected a real number") from None
    if not (math.isfinite(out) and out >= 0):
        raise ValueError(f"{where} {value!r} at step {step}; expected a finite float >= 0")
    return out
