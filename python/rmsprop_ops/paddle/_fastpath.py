"""A dynamic-mode step that repeats the last one's launches without Paddle's per-parameter machinery.

``paddle.optimizer.Optimizer.step`` walks every parameter several times a step (gradient collection,
regularization, accumulator creation, one ``_append_optimize_op`` each); with many parameters that costs
more than the update. After a step through that path, the optimizer records its launches as a ``Plan``:
which parameters, in which order, with which state, attributes and per-parameter settings. The next step
takes the plan when everything it depends on is unchanged, checked in one pass over the parameters: the
same parameters hold gradients (dense, no ``main_grad``), and each parameter's regularizer, ParamAttr
learning rate and ``need_clip`` are the objects the plan was built from. Anything else (parameter groups,
a gradient clip or regularizer Paddle applies itself, auto-parallel, a checkpoint load) takes Paddle's
path, which records a new plan. Both paths call the same op with the same arguments: same results.
"""

from __future__ import annotations

from typing import NamedTuple

import paddle
from paddle.base import core, framework
from paddle.distributed.auto_parallel.auto_dp_utils import in_auto_dp_mode
from paddle.distributed.auto_parallel.fully_shard_fusion import get_fsdp_context
from paddle.optimizer import optimizer as paddle_optimizer
from paddle.regularizer import L1Decay, L2Decay

from ._clip import FusedValueClip
from ._decay import DecoupledDecay
from ._launch import check_grad, invoke
from ._step_count import dynamic_input

__all__ = ["Plan", "record", "try_step"]

_MISSING = object()
_PER_STEP = ("Grad", "LearningRate", "SkipUpdate", "CurrentStep")


class PlannedLaunch(NamedTuple):
    """One op call of the plan: its arguments except the gradients and the learning rate."""

    core_op: str
    indices: tuple | None  # its parameters' places in the plan; None: all of them, in order
    tensors: dict  # every input but those set per step (_PER_STEP)
    attrs: dict
    flat: bool


class Plan(NamedTuple):
    params: tuple  # the parameters updated, in the order Paddle's step collects them
    settings: tuple  # per parameter: (regularizer, ParamAttr learning rate, need_clip), as objects
    launches: tuple


def _settings(p):
    attr = getattr(p, "optimize_attr", None) or {}
    return (getattr(p, "regularizer", None), attr.get("learning_rate", _MISSING), getattr(p, "need_clip", True))


def eligible(opt):
    """What the plan cannot see per parameter: the optimizer's own configuration and Paddle's modes."""
    if not framework.in_dygraph_mode() or paddle.base.dygraph.base.in_to_static_mode():
        return False
    groups = opt._param_groups
    if not groups or isinstance(groups[0], dict):
        return False
    if opt._grad_clip is not None and type(opt._grad_clip) is not FusedValueClip:
        return False
    if opt.regularization is not None and type(opt.regularization) not in (L1Decay, L2Decay, DecoupledDecay):
        return False
    return not (paddle_optimizer.g_shard_bypass_dygraph_optimizer or in_auto_dp_mode()
                or get_fsdp_context() is not None)


def record(opt, ran):
    """The plan of a step Paddle's path just ran (``ran``: [(``_launch.Launch``, ``_launch.Call``)]), or
    None when such a step cannot be repeated without that path."""
    if not eligible(opt) or opt._pending.values or not ran:
        return None
    updated = {id(row.param) for launch, _ in ran for row in launch.rows}
    # The parameters in the order Paddle's step collects their gradients, which the plan's check follows.
    params = [p for p in opt._param_groups if id(p) in updated]
    if len(params) != sum(len(launch.rows) for launch, _ in ran):
        return None
    place = {id(p): k for k, p in enumerate(params)}
    planned = []
    for launch, call in ran:
        if not launch.multi:
            return None  # a parameter's own learning rate: Paddle computes it per step
        for row in launch.rows:
            p = row.param
            if getattr(p, "_need_shard_auto", False) or p.is_dist() or not p.is_contiguous() \
                    or row.grad.is_selected_rows():
                return None
        fixed = {k: v for k, v in call.tensors.items() if k not in _PER_STEP}
        indices = tuple(place[id(row.param)] for row in launch.rows)
        if indices == tuple(range(len(params))):
            indices = None
        planned.append(PlannedLaunch(call.core_op, indices, fixed, call.attrs, call.flat))
    return Plan(tuple(params), tuple(_settings(p) for p in params), tuple(planned))


def try_step(opt, plan):
    """Run ``plan`` if it still describes this step; returns whether it ran (False: nothing was done)."""
    if plan is None or not eligible(opt):
        return False
    with paddle.no_grad():
        return _run(opt, plan)


def _run(opt, plan):
    params, settings = plan.params, plan.settings
    grads, k, n = [], 0, len(params)
    for p in opt._param_groups:
        if p.stop_gradient:
            continue
        if getattr(p, "main_grad", None) is not None:
            return False
        g = p._grad_ivar()
        if g is None:
            continue
        if k == n or p is not params[k] or g.is_selected_rows() or _settings(p) != settings[k]:
            return False
        grads.append(g)
        k += 1
    if k != n:
        return False
    for launch in plan.launches[1:]:  # the first launch checks its own inputs before writing
        for i in launch.indices or range(len(params)):
            check_grad(params[i], grads[i])
    opt._create_global_learning_rate()  # a scheduler's value, checked, into the learning-rate tensor
    lr = opt._global_learning_rate()
    found_inf = opt._get_auxiliary_var("found_inf")
    skip = found_inf if isinstance(found_inf, paddle.Tensor) else None
    current_step = dynamic_input(opt)
    for launch in plan.launches:
        tensors = dict(launch.tensors, LearningRate=lr, SkipUpdate=skip, CurrentStep=current_step,
                       Grad=grads if launch.indices is None else [grads[i] for i in launch.indices])
        invoke(launch.core_op, tensors, launch.attrs, checked=False, dygraph=True, flat=launch.flat)
    for p in params:
        p._bump_inplace_version()
    core._set_warmup(False)
    return True
