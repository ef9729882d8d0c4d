"""Which kernel launches one step of ``rmsprop_ops.mindspore.RMSProp`` makes: the optimizer's parameters
grouped by (learning rate, dtype), each group one launch with its config and its ``ops.Custom`` primitive.

Built once, in the constructor, from what ``mindspore.nn.Optimizer`` parsed (groups, learning rates,
weight-decay flags), as records the compiled step reads as constants.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._toolkit import grouping
from .._toolkit.flat import flat_offsets
from ._op import make_op
from ._rule import Rule, launch_config, step_mask

__all__ = ["Launch", "Plan", "plan_launches"]


@dataclasses.dataclass(frozen=True)
class Launch:
    """One launch of the custom op: the parameters it updates (positions in the optimizer's parameter
    list), the position whose group learning rate it takes, its config tensor and primitive, with flat
    state the size of its state buffers and where each parameter's slice starts, and with bias correction
    the mask that puts the global step into the config (``_rule.step_mask``)."""

    index: tuple[int, ...]
    lr_index: int
    config: object
    op: object
    flat_size: int | None = None
    offsets: tuple[int, ...] | None = None
    step_mask: object = None


@dataclasses.dataclass(frozen=True)
class Plan:
    """Every launch of a step. ``single``: one launch over every parameter in order with the optimizer's
    one learning rate (the step passes its tuples as they are). ``ms_decay``: weight decay runs in
    MindSpore's ops before the launches (a dynamic decay, or gradient centralisation, which MindSpore applies
    after the decay); otherwise the kernel applies it. ``flat``: one state buffer per launch and kind.
    ``negate``: ``maximize`` is done by negating the gradients before MindSpore's decay (torch negates
    before its decay; the kernel negates first, which is the same only when the kernel decays)."""

    launches: tuple[Launch, ...]
    single: bool
    ms_decay: bool
    flat: bool
    negate: bool = False


@dataclasses.dataclass(frozen=True)
class _Decay:
    """Per parameter, the decay coefficient the kernel applies; ``in_mindspore``: MindSpore's ops decay
    instead (then every coefficient is 0)."""

    coefficients: tuple[float, ...]
    in_mindspore: bool


def _weight_decay(opt, weight_decay, rule: Rule) -> _Decay:
    n = opt.param_length
    # Gradient centralisation acts after a coupled decay (MindSpore's order); a decoupled one is no part of
    # the gradient, so the kernel applies it. (l1 with centralisation, and a dynamic decay of another kind
    # than l2, are refused by the constructor.)
    gc = opt.is_group and any(opt.grad_centralization_flags) and rule.weight_decay_mode == "l2"
    if not opt.exec_weight_decay or opt.dynamic_weight_decay or gc:
        return _Decay((0.0,) * n, opt.exec_weight_decay)
    if opt.is_group:
        # group_weight_decay holds wd * loss_scale (MindSpore decays before unscaling).
        return _Decay(tuple(w / opt.loss_scale if f else 0.0 for w, f in zip(opt.group_weight_decay,
                                                                              opt.decay_flags)), False)
    return _Decay(tuple(float(weight_decay) if f else 0.0 for f in opt.decay_flags), False)


def plan_launches(opt, rule: Rule, weight_decay, flat: bool) -> Plan:
    """The launches of ``opt`` (a constructed ``mindspore.nn.Optimizer``): one per (learning rate, dtype)."""
    params = opt._parameters
    decay = _weight_decay(opt, weight_decay, rule)
    keys = [(id(opt.group_lr[i]) if opt.is_group_lr else None, str(p.dtype)) for i, p in enumerate(params)]
    groups = grouping.plan_launches(keys)
    negate = rule.maximize and decay.in_mindspore
    launches = []
    for group in groups:
        index = group.members
        offsets = flat_size = None
        if flat:
            starts, total = flat_offsets(int(np.prod(params[i].shape)) for i in index)
            # MindSpore refuses Parameters of zero elements; a launch of empty params gets one spare.
            offsets, flat_size = tuple(starts), max(total, 1)
        config = launch_config(rule, [decay.coefficients[i] for i in index], 1.0 / opt.loss_scale, offsets,
                               maximize=rule.maximize and not negate)
        launches.append(Launch(index=index, lr_index=index[0], config=config,
                               op=make_op(len(index), rule.centered, flat_size=flat_size),
                               flat_size=flat_size, offsets=offsets,
                               step_mask=step_mask(config) if rule.bias_correction else None))
    single = len(groups) == 1 and not opt.is_group_lr and groups[0].covers(len(params))
    return Plan(launches=tuple(launches), single=single, ms_decay=decay.in_mindspore, flat=flat, negate=negate)
