"""Learning-rate schedules: small callables of the step count, composable.

Each schedule maps a step (an int, 0 for the first update under Keras' counting) to a float. Any
callable of the step works as a ``learning_rate``; these cover the common shapes and match Keras'
formulas (``keras.optimizers.schedules``), so a Keras recipe ports unchanged::

    >>> from rmsprop_ops import schedules
    >>> lr = schedules.LinearWarmup(schedules.CosineDecay(0.1, decay_steps=100), warmup_steps=10)
    >>> round(lr(0), 4), round(lr(10), 4), round(lr(110), 4)
    (0.0, 0.1, 0.0)

Paddle's ``paddle.optimizer.lr`` and MindSpore's ``nn.learning_rate_schedule`` objects are used by
the framework adapters instead; here a plain Python callable stands in for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ._checks import as_float

__all__ = ["Schedule", "Constant", "PiecewiseConstant", "ExponentialDecay", "StepDecay", "CosineDecay",
           "LinearWarmup", "as_schedule"]


def _step(step) -> int:
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise TypeError(f"step: expected an int, got {type(step).__name__} ({step!r})")
    return int(step)


def _positive_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    return value


class Schedule:
    """Base class: ``schedule(step) -> float``."""

    def __call__(self, step) -> float:
        return self.value(_step(step))

    def value(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Constant(Schedule):
    """``lr(step) = value``."""

    def __init__(self, value):
        self.value_ = as_float("value", value)

    def value(self, step):
        return self.value_


class PiecewiseConstant(Schedule):
    """``values[i]`` while ``step <= boundaries[i]`` (Keras' PiecewiseConstantDecay), then ``values[-1]``.

    Example: ``PiecewiseConstant([100, 200], [1e-2, 1e-3, 1e-4])``.
    """

    def __init__(self, boundaries: Sequence[int], values: Sequence[float]):
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"values: expected {len(boundaries) + 1} values for {len(boundaries)} boundaries, "
                             f"got {len(values)}")
        if list(boundaries) != sorted(boundaries):
            raise ValueError(f"boundaries: expected increasing steps, got {list(boundaries)!r}")
        self.boundaries = [int(b) for b in boundaries]
        self.values = [as_float(f"values[{i}]", v) for i, v in enumerate(values)]

    def value(self, step):
        for boundary, v in zip(self.boundaries, self.values):
            if step <= boundary:
                return v
        return self.values[-1]


class ExponentialDecay(Schedule):
    """``initial * decay_rate ** (step / decay_steps)``; ``staircase`` floors the exponent (Keras)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = as_float("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive_int("decay_steps", decay_steps)
        self.decay_rate = as_float("decay_rate", decay_rate)
        self.staircase = bool(staircase)

    def value(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p


class StepDecay(ExponentialDecay):
    """``initial * gamma ** (step // step_size)`` (torch's StepLR, Paddle's StepDecay)."""

    def __init__(self, initial_learning_rate, step_size, gamma=0.1):
        super().__init__(initial_learning_rate, step_size, gamma, staircase=True)


class CosineDecay(Schedule):
    """Keras' CosineDecay: ``initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, T) / T)) + alpha)``."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0):
        self.initial_learning_rate = as_float("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive_int("decay_steps", decay_steps)
        self.alpha = as_float("alpha", alpha)

    def value(self, step):
        t = min(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * t))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)


class LinearWarmup(Schedule):
    """Ramp linearly from ``start`` to ``after(0)`` over ``warmup_steps``, then follow ``after`` shifted.

    ``after`` is a schedule, a callable of the step or a number. For ``step < warmup_steps`` the rate
    is ``start + (after(0) - start) * step / warmup_steps``; afterwards ``after(step - warmup_steps)``.
    """

    def __init__(self, after, warmup_steps, start=0.0):
        self.after = as_schedule(after)
        self.warmup_steps = _positive_int("warmup_steps", warmup_steps)
        self.start = as_float("start", start)

    def value(self, step):
        if step < self.warmup_steps:
            target = self.after(0)
            return self.start + (target - self.start) * step / self.warmup_steps
        return self.after(step - self.warmup_steps)


def as_schedule(learning_rate) -> Callable[[int], float]:
    """A number becomes :class:`Constant`; a callable of the step is returned as is."""
    if callable(learning_rate):
        return learning_rate
    return Constant(as_float("learning_rate", learning_rate))
