"""``ScheduleLR``: a ``rmsprop_ops.schedules`` schedule as a ``paddle.optimizer.lr.LRScheduler``.

The recipes (``rmsprop_ops.recipes``) define their schedules once, in steps, as framework-free objects;
Paddle's optimizers take an ``LRScheduler``, which the training loop steps. This adapter evaluates the
schedule at the scheduler's ``last_epoch``: call ``step()`` once per optimizer step (as PaddleClas does
for its per-iteration schedules), in dynamic mode and between the runs of a static program.
"""

from __future__ import annotations

from paddle.optimizer.lr import LRScheduler

__all__ = ["ScheduleLR"]


class ScheduleLR(LRScheduler):
    """An LRScheduler whose rate at ``last_epoch`` (the number of ``step()`` calls so far, from 0) is
    ``schedule(last_epoch)``.

    Args:
        schedule: a :mod:`rmsprop_ops.schedules` object, or any callable of the step returning a float.
        last_epoch, verbose: as for every Paddle LRScheduler.

    Example:
        >>> from rmsprop_ops import schedules
        >>> from rmsprop_ops.paddle import ScheduleLR
        >>> sched = ScheduleLR(schedules.LinearWarmup(schedules.ExponentialDecay(0.1, 10, 0.5), 4))
        >>> [round(sched.get_lr(), 4) for _ in range(3) if sched.step() is None]
        [0.025, 0.05, 0.075]
    """

    def __init__(self, schedule, last_epoch=-1, verbose=False):
        if not callable(schedule):
            raise TypeError(f"schedule: expected a rmsprop_ops.schedules schedule or a callable of the step, got "
                            f"{type(schedule).__name__}")
        self.schedule = schedule
        super().__init__(learning_rate=float(schedule(0)), last_epoch=last_epoch, verbose=verbose)

    def get_lr(self):
        return float(self.schedule(self.last_epoch))

    def __repr__(self):
        return f"ScheduleLR({self.schedule!r}, last_epoch={self.last_epoch})"
