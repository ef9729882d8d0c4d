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

from ._toolkit.checks import flag, integer, real_in

__all__ = ["Schedule", "Constant", "PiecewiseConstant", "ExponentialDecay", "StepDecay", "CosineDecay",
           "LinearWarmup", "as_schedule"]


def _step(step) -> int:
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise TypeError(f"step: expected an int, got {type(step).__name__} ({step!r})")
    step = int(step)
    if step < 0:
        raise ValueError(f"step: expected an int >= 0, got {step}")
    return step


def _rate(name, value) -> float:
    """A learning rate: finite and >= 0 (a schedule that can only produce invalid rates fails here, at
    construction, instead of at some later step)."""
    return real_in(name, value, low=0.0)


class Schedule:
    """Base class: ``schedule(step) -> float``, for a step >= 0.

    Every parameter is validated when the schedule is built; a rate that overflows a float at some step
    (a decay rate above 1 run for long enough) is a ValueError naming the schedule and the step.
    """

    def __call__(self, step) -> float:
        step = _step(step)
        try:
            return float(self.value(step))
        except OverflowError:
            raise ValueError(f"{type(self).__name__}: the rate at step {step} overflows a float") from None

    def value(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Constant(Schedule):
    """``lr(step) = value``."""

    def __init__(self, value):
        self.value_ = _rate("value", value)

    def value(self, step):
        return self.value_


class PiecewiseConstant(Schedule):
    """``values[i]`` while ``step <= boundaries[i]`` (Keras' PiecewiseConstantDecay), then ``values[-1]``.

    Example: ``PiecewiseConstant([100, 200], [1e-2, 1e-3, 1e-4])``.
    """

    def __init__(self, boundaries: Sequence[int], values: Sequence[float]):
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"values: expected {len(boundaries) + 1} values for {len(boundaries)} boundaries, "
                             f"got {len(values)}")
        self.boundaries = [integer(f"boundaries[{i}]", b) for i, b in enumerate(boundaries)]
        if self.boundaries != sorted(self.boundaries):
            raise ValueError(f"boundaries: expected increasing steps, got {self.boundaries!r}")
        self.values = [_rate(f"values[{i}]", v) for i, v in enumerate(values)]

    def value(self, step):
        for boundary, v in zip(self.boundaries, self.values):
            if step <= boundary:
                return v
        return self.values[-1]


class ExponentialDecay(Schedule):
    """``initial * decay_rate ** (step / decay_steps)``; ``staircase`` floors the exponent (Keras, and
    ``tf.compat.v1.train.exponential_decay``). ``decay_steps`` may be fractional (TF recipes decay every
    2.4 epochs of steps); ``decay_rate`` is >= 0."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive_steps("decay_steps", decay_steps)
        self.decay_rate = real_in("decay_rate", decay_rate, low=0.0)
        self.staircase = _bool("staircase", staircase)

    def value(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p


class StepDecay(ExponentialDecay):
    """``initial * gamma ** (step // step_size)`` (torch's StepLR, Paddle's StepDecay)."""

    def __init__(self, initial_learning_rate, step_size, gamma=0.1):
        super().__init__(initial_learning_rate, integer("step_size", step_size, minimum=1),
                         real_in("gamma", gamma, low=0.0), staircase=True)


class CosineDecay(Schedule):
    """Keras' CosineDecay: ``initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, T) / T)) + alpha)``.

    ``alpha`` (the final rate as a fraction of the initial one) is >= 0."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0):
        self.initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive_steps("decay_steps", decay_steps)
        self.alpha = real_in("alpha", alpha, low=0.0)

    def value(self, step):
        t = min(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * t))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)


class LinearWarmup(Schedule):
    """Ramp linearly from ``start`` to ``after(0)`` over ``warmup_steps``, then follow ``after``.

    ``after`` is a schedule, a callable of the step or a number. For ``step < warmup_steps`` the rate
    is ``start + (after(0) - start) * step / warmup_steps``; afterwards ``after(step - warmup_steps)``
    (Keras' warmup: the decay starts when the warmup ends), or ``after(step)`` with ``shift=False``
    (the TF EfficientNet / MnasNet recipes: the warmup only replaces the first steps of the decay).
    """

    def __init__(self, after, warmup_steps, start=0.0, shift=True):
        self.after = as_schedule(after)
        self.warmup_steps = integer("warmup_steps", warmup_steps, minimum=1)
        self.start = _rate("start", start)
        self.shift = _bool("shift", shift)

    def value(self, step):
        if step < self.warmup_steps:
            target = self.after(0)
            return self.start + (target - self.start) * step / self.warmup_steps
        return self.after(step - self.warmup_steps if self.shift else step)


def _positive_steps(name, value) -> float | int:
    """A step count > 0: an int stays an int (exact division), a fractional count stays a float."""
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected a number of steps > 0, got {value!r}")
    if hasattr(value, "__index__"):
        return integer(name, value, minimum=1)
    return real_in(name, value, low=0.0, low_open=True)


def _bool(name, value) -> bool:
    return flag(name, value)


def as_schedule(learning_rate) -> Callable[[int], float]:
    """A number becomes :class:`Constant`; a callable of the step is returned as is."""
    if callable(learning_rate):
        return learning_rate
    return Constant(_rate("learning_rate", learning_rate))
