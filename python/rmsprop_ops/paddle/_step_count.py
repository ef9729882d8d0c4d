"""The update count ``bias_correction`` reads: the op's CurrentStep input, this update's number from 1.

* Dynamic mode: the optimizer's ``iterations`` + 1, handed to each update as a small int64 tensor (the
  fast path's too). Under ``paddle.amp.GradScaler`` the optimizer reads the overflow flag on the host
  when ``bias_correction`` is on, so a skipped update is not counted (``iterations``).
* A static program: a persistable float64 counter per optimization pass
  (``<name>bias_correction_step_0``; ``paddle.static.save`` keeps it with the state). The pass's ops read
  ``counter + 1``; after them the counter moves on by one, or stays where ``paddle.static.amp``'s
  found-inf flag skipped the update. Built from ops both IRs have.
"""

from __future__ import annotations

from typing import NamedTuple

import paddle
from paddle.base import framework, unique_name
from paddle.framework import in_pir_mode

__all__ = ["StepCount", "make", "advance", "persistable_counter"]


class StepCount(NamedTuple):
    """``current``: the CurrentStep input of the pass's ops. ``counter`` and ``skip``: a static program's
    persistable counter and the found-inf flag its advance reads (None in dynamic mode)."""

    current: object
    counter: object = None
    skip: object = None


def make(opt, skip):
    """The pass's count, or None when the rule has no ``bias_correction``."""
    if not opt._rule.resolved.bias_correction:
        return None
    if framework.in_dygraph_mode():
        return StepCount(dynamic_input(opt))
    if paddle.base.dygraph.base.in_to_static_mode():
        raise NotImplementedError("bias_correction: not available under paddle.jit.to_static (the update count "
                                  "lives in the optimizer); use dynamic mode or a static program built with "
                                  "minimize()")
    counter = persistable_counter(opt, "bias_correction_step")
    return StepCount(counter + 1.0, counter, skip)


def dynamic_input(opt):
    """CurrentStep of a dynamic-mode update: ``iterations`` + 1 (None without ``bias_correction``)."""
    if not opt._rule.resolved.bias_correction:
        return None
    return paddle.to_tensor(opt._iterations + 1, dtype="int64")


def advance(count):
    """After a static pass's ops: the counter moves on unless the update was skipped."""
    if count is None or count.counter is None:
        return
    applied = 1.0
    if count.skip is not None:
        applied = 1.0 - paddle.cast(paddle.reshape(count.skip, [1]), "float64")
    paddle.assign(count.counter + applied, output=count.counter)


def persistable_counter(opt, what):
    """A persistable float64 [1] variable starting at 0, named after the optimizer and ``what``."""
    name = unique_name.generate(f"{opt._name + '_' if opt._name else ''}{what}")
    init = paddle.nn.initializer.Constant(0.0)
    if in_pir_mode():
        return paddle.pir.core.create_persistable_value("float64", [1], name, initializer=init)
    return paddle.static.create_global_var(shape=[1], value=0.0, dtype="float64", persistable=True, name=name)
