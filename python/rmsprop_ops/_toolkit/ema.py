"""Exponential moving averages of the weights: decay schedules, overwrites and the swap protocol.

Pure functions and frozen records, no arrays: each front end applies them to its own tensors. The
schedules, for an average ``avg`` of a weight ``w`` updated once per optimizer call:

* ``"keras"`` - Keras 3 ``use_ema`` / ``ema_momentum`` (``BaseOptimizer._update_model_variables_moving_average``),
  also timm's ``ModelEmaV3`` as its train script uses it: ``decay = 0`` while ``iterations == 0`` (the
  first update copies the weights), ``ema_momentum`` afterwards; ``avg = d * avg + (1 - d) * w``.
* ``"tf1"`` - ``tf.compat.v1.train.ExponentialMovingAverage(decay, num_updates=global_step)`` applied
  after each step, as the TF EfficientNet / MnasNet / MobileNet recipes do: ``decay = min(decay,
  (1 + n) / (10 + n))`` with ``n`` the update count after this step; ``avg -= (1 - d) * (avg - w)``
  (``assign_moving_average``), ``avg`` starting at the initial weights.
* ``"constant"`` - a fixed decay from the initial weights (``ExponentialMovingAverage`` without
  ``num_updates``; PaddleClas ``ppcls/utils/ema.py``): ``avg = d * avg + (1 - d) * w``.

Keras' ``ema_overwrite_frequency`` copies the averages into the weights after every ``f``-th update
(:func:`should_overwrite`). For evaluation the weights and their averages are exchanged in place and
exchanged back afterwards (Keras' ``SwapEMAWeights`` callback); :class:`Swap` records whether they
currently are, so that a training step in between is refused instead of training the averages.

Example:
    >>> from rmsprop_ops._toolkit.ema import make_ema, decay_at
    >>> ema = make_ema(0.9999, "tf1")
    >>> [round(decay_at(ema, i), 4) for i in (0, 1, 100000)]
    [0.1818, 0.25, 0.9999]
"""

from __future__ import annotations

from dataclasses import dataclass

from .._toolkit.checks import flag, integer, real_in

__all__ = ["SCHEDULES", "EMA", "make_ema", "decay_at", "subtracts", "should_overwrite", "Swap", "begin_swap",
           "end_swap", "check_not_swapped"]

SCHEDULES = ("keras", "tf1", "constant")


@dataclass(frozen=True)
class EMA:
    """How the averages move: the decay (``ema_momentum``), its schedule, the overwrite frequency."""

    decay: float
    schedule: str = "keras"
    overwrite_frequency: int | None = None


def make_ema(decay, schedule="keras", overwrite_frequency=None, *,
             names=("ema_momentum", "ema_schedule", "ema_overwrite_frequency")) -> EMA:
    """A validated :class:`EMA`; ``names`` are how errors call the three arguments."""
    d = real_in(names[0], decay, low=0.0, high=1.0)
    if not isinstance(schedule, str):
        raise TypeError(f"{names[1]}: expected a str, got {type(schedule).__name__} ({schedule!r})")
    if schedule not in SCHEDULES:
        raise ValueError(f"{names[1]}: expected one of {list(SCHEDULES)}, got {schedule!r}")
    freq = None if overwrite_frequency is None else integer(names[2], overwrite_frequency, minimum=1)
    return EMA(decay=d, schedule=schedule, overwrite_frequency=freq)


def decay_at(ema: EMA, iterations: int) -> float:
    """The decay of the update made while the optimizer's ``iterations`` (updates before this one) is
    ``iterations``."""
    if ema.schedule == "keras":
        return 0.0 if iterations == 0 else ema.decay
    if ema.schedule == "tf1":
        n = iterations + 1
        return min(ema.decay, (1.0 + n) / (10.0 + n))
    return ema.decay


def subtracts(ema: EMA) -> bool:
    """Whether the update is written ``avg -= (1 - d) * (avg - w)`` (TF's ``assign_moving_average``)
    rather than ``avg = d * avg + (1 - d) * w`` (Keras, PaddleClas): the same average, rounded
    differently."""
    return ema.schedule == "tf1"


def should_overwrite(ema: EMA, iterations: int) -> bool:
    """Whether the weights take their averages after the update made at ``iterations`` (Keras)."""
    return bool(ema.overwrite_frequency) and (iterations + 1) % ema.overwrite_frequency == 0


@dataclass(frozen=True)
class Swap:
    """Whether the averages are swapped into the weights (for evaluation) right now."""

    swapped: bool = False


def begin_swap(state: Swap) -> Swap:
    """The state after swapping the averages in; refuses a second swap (it would swap them back)."""
    if flag("swapped", state.swapped):
        raise RuntimeError("swap_ema_weights: the moving averages are already swapped in")
    return Swap(swapped=True)


def end_swap(state: Swap) -> Swap:
    """The state after swapping the weights back."""
    if not state.swapped:
        raise RuntimeError("swap_ema_weights: the moving averages are not swapped in")
    return Swap(swapped=False)


def check_not_swapped(state: Swap, action: str = "step") -> None:
    """Refuse ``action`` while the averages stand in the weights' place: it would train the averages."""
    if state.swapped:
        raise RuntimeError(f"{action}: the moving averages are swapped into the params (inside "
                           f"swap_ema_weights()); swap them back before training")
