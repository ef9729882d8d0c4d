"""``rmsprop_ops.schedules`` objects as MindSpore ``LearningRateSchedule`` Cells of the global step.

The recipes (:mod:`rmsprop_ops.recipes`) define their learning rates with :mod:`rmsprop_ops.schedules`;
MindSpore's optimizers take a ``LearningRateSchedule``, evaluated inside the compiled step. Each schedule
kind becomes a small Cell computing the same formula in float64 (the step counted as the neutral
optimizer counts it: 0 for the first update), cast to float32 at the end, so a recipe's rates are the
neutral optimizer's rounded once. Constants that do not depend on the step (a warmup's target) are
evaluated here, by the schedule itself.
"""

from __future__ import annotations

import math

from mindspore import Tensor, nn
from mindspore import dtype as mstype
from mindspore.nn.learning_rate_schedule import LearningRateSchedule
from mindspore.ops import functional as F

from .. import schedules
from ..recipes import _EveryEpoch

__all__ = ["ScheduleLR", "as_mindspore_schedule"]


def _f64(x: float) -> Tensor:
    return Tensor(float(x), mstype.float64)


class _Constant(nn.Cell):
    def __init__(self, value):
        super().__init__()
        self.value = _f64(value)

    def construct(self, step):
        return self.value + step * 0.0


class _Piecewise(nn.Cell):
    """``values[i]`` while ``step <= boundaries[i]``, then ``values[-1]``."""

    def __init__(self, s: schedules.PiecewiseConstant):
        super().__init__()
        self.boundaries = tuple(_f64(b) for b in s.boundaries)
        self.values = tuple(_f64(v) for v in s.values)

    def construct(self, step):
        out = self.values[-1] + step * 0.0
        for i in range(len(self.boundaries) - 1, -1, -1):
            out = F.select(step <= self.boundaries[i], self.values[i] + step * 0.0, out)
        return out


class _Exponential(nn.Cell):
    """``initial * rate ** (step / decay_steps)``, the exponent floored with ``staircase``."""

    def __init__(self, s: schedules.ExponentialDecay):
        super().__init__()
        self.initial, self.decay_steps, self.rate = (_f64(s.initial_learning_rate), _f64(s.decay_steps),
                                                     _f64(s.decay_rate))
        self.staircase = s.staircase

    def construct(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = F.floor(p)
        return self.initial * F.pow(self.rate, p)


class _Cosine(nn.Cell):
    """Keras' CosineDecay."""

    def __init__(self, s: schedules.CosineDecay):
        super().__init__()
        self.initial, self.decay_steps, self.alpha = _f64(s.initial_learning_rate), _f64(s.decay_steps), _f64(s.alpha)
        self.pi = _f64(math.pi)

    def construct(self, step):
        t = F.minimum(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + F.cos(self.pi * t))
        return self.initial * ((1.0 - self.alpha) * cosine + self.alpha)


class _Warmup(nn.Cell):
    """Linear from ``start`` to ``after(0)`` over ``warmup_steps``, then ``after`` (shifted or not)."""

    def __init__(self, s: schedules.LinearWarmup):
        super().__init__()
        self.after = _cell(s.after)
        self.start, self.target, self.steps = _f64(s.start), _f64(s.after(0)), _f64(s.warmup_steps)
        self.shift = s.shift

    def construct(self, step):
        warm = self.start + (self.target - self.start) * step / self.steps
        later = self.after(step - self.steps) if self.shift else self.after(step)
        return F.select(step < self.steps, warm, later)


class _Epochs(nn.Cell):
    """``inner`` at the epoch of the step (a recipe whose rate changes at epoch boundaries only)."""

    def __init__(self, s: _EveryEpoch):
        super().__init__()
        self.inner = _cell(s.inner)
        self.steps_per_epoch = _f64(s.steps_per_epoch)

    def construct(self, step):
        return self.inner(F.floor(step / self.steps_per_epoch))


# Most specific first: StepDecay is an ExponentialDecay.
_CELLS = ((schedules.Constant, lambda s: _Constant(s.value_)), (schedules.PiecewiseConstant, _Piecewise),
          (schedules.ExponentialDecay, _Exponential), (schedules.CosineDecay, _Cosine),
          (schedules.LinearWarmup, _Warmup), (_EveryEpoch, _Epochs))


def _cell(schedule) -> nn.Cell:
    for kind, make in _CELLS:
        if type(schedule) is kind or (kind is schedules.ExponentialDecay and isinstance(schedule, kind)):
            return make(schedule)
    if isinstance(schedule, (int, float)) and not isinstance(schedule, bool):
        return _Constant(schedules.as_schedule(schedule)(0))
    raise TypeError(f"learning_rate: expected a MindSpore learning rate or one of rmsprop_ops.schedules' "
                    f"{[k.__name__ for k, _ in _CELLS[:-1]]}, got {type(schedule).__name__} ({schedule!r}): a "
                    "Python function of the step cannot run inside a compiled MindSpore step")


class ScheduleLR(LearningRateSchedule):
    """A ``LearningRateSchedule`` computing ``schedule`` (an :mod:`rmsprop_ops.schedules` object, or a
    recipe's schedule) at the global step, in float64, returned as a float32 scalar."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule
        self.rate = _cell(schedule)

    def construct(self, global_step):
        return F.cast(self.rate(F.cast(global_step, mstype.float64)), mstype.float32)


def as_mindspore_schedule(learning_rate):
    """``learning_rate`` as MindSpore's optimizers take it: an :mod:`rmsprop_ops.schedules` object becomes
    a :class:`ScheduleLR`; anything else is returned unchanged (MindSpore checks it)."""
    if isinstance(learning_rate, schedules.Schedule):
        return ScheduleLR(learning_rate)
    return learning_rate
