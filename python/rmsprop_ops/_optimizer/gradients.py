"""Gradient preprocessing of the neutral optimizer (Keras 3's options, torch's ``maximize``), pure.

:func:`prepare` computes what a step would apply - or accumulate - without writing anything: the
optimizer commits the result only after every check of the step has passed. The order is Keras'
(``BaseOptimizer.apply`` / ``_backend_apply_gradients``): unscale (``loss_scale_factor``), accumulate
(``gradient_accumulation_steps``: every N-th call applies ``(g + acc) / N``), clip (``clipnorm`` per
tensor | ``global_clipnorm`` | ``clipvalue``). A None gradient skips its param (Keras 3: no update, no
accumulation, not in the global norm), but at an applying call every accumulator is reset, as Keras
resets them all.

``skip_nonfinite`` tests both the gradients given and the gradient actually applied (or the new
accumulator value): float16 gradients can overflow when summed or unscaled although each is finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._toolkit.checks import flag, integer, optional_positive
from .arrays import math_dtype

__all__ = ["GradientOptions", "gradient_options", "Prepared", "prepare"]


@dataclass(frozen=True)
class GradientOptions:
    """The gradient options of one optimizer (validated)."""

    clipnorm: float | None = None
    clipvalue: float | None = None
    global_clipnorm: float | None = None
    loss_scale_factor: float | None = None
    accumulation_steps: int | None = None
    skip_nonfinite: bool = False
    maximize: bool = False
    rescale_grad: float = 1.0

    @property
    def python_side(self) -> bool:
        """Whether the gradients need NumPy work before the core call (else they go to it as given)."""
        return (self.clipnorm is not None or self.clipvalue is not None or self.global_clipnorm is not None
                or self.accumulation_steps is not None or self.skip_nonfinite or self.maximize)

    @property
    def core_rescale(self) -> float:
        """The core's ``rescale_grad``: the loss scale is folded in when no NumPy work is done."""
        if self.loss_scale_factor is not None and not self.python_side:
            return self.rescale_grad / self.loss_scale_factor
        return self.rescale_grad


def gradient_options(*, clipnorm=None, clipvalue=None, global_clipnorm=None, loss_scale_factor=None,
                     gradient_accumulation_steps=None, skip_nonfinite=False, maximize=False,
                     rescale_grad=1.0) -> GradientOptions:
    """Validate the options (errors name the argument) and return the record."""
    from .._toolkit.checks import core_attr

    opts = GradientOptions(
        clipnorm=optional_positive("clipnorm", clipnorm), clipvalue=optional_positive("clipvalue", clipvalue),
        global_clipnorm=optional_positive("global_clipnorm", global_clipnorm),
        loss_scale_factor=optional_positive("loss_scale_factor", loss_scale_factor),
        accumulation_steps=None if gradient_accumulation_steps is None else integer(
            "gradient_accumulation_steps", gradient_accumulation_steps, minimum=2),
        skip_nonfinite=flag("skip_nonfinite", skip_nonfinite), maximize=flag("maximize", maximize),
        rescale_grad=core_attr("rescale_grad", rescale_grad))
    if sum(c is not None for c in (opts.clipnorm, opts.clipvalue, opts.global_clipnorm)) > 1:
        raise ValueError(f"clipnorm, clipvalue, global_clipnorm: expected at most one set, got "
                         f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
    core_attr("loss_scale_factor", opts.core_rescale, "rescale_grad")  # 1/scale must stay a valid rescale
    return opts


@dataclass(frozen=True)
class Prepared:
    """What one call does. ``skip``: nothing (non-finite); ``applies``: an update with ``grads`` (None
    where a param is skipped); ``accumulators``: new accumulator values (None entries unchanged), or
    ``"reset"`` after an applying call, or None without accumulation."""

    skip: bool
    applies: bool
    grads: list = ()
    accumulators: object = None


def _finite(arrays, rescale=1.0):
    for a in arrays:
        if a is None:
            continue
        if rescale != 1.0:  # the core multiplies by rescale_grad in math precision first
            a = np.multiply(a, rescale, dtype=math_dtype(a.dtype))
        if not np.isfinite(a).all():
            return False
    return True


def _clip(opts, gs):
    present = [g for g in gs if g is not None]
    if opts.clipnorm is not None:
        out = []
        for g in gs:
            if g is None:
                out.append(None)
                continue
            norm = np.sqrt(np.sum(np.square(g, dtype=np.float64)))
            out.append((g * opts.clipnorm / max(norm, opts.clipnorm)).astype(g.dtype, copy=False)
                       if norm > 0 else g)
        return out
    if opts.global_clipnorm is not None:
        norm = np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in present))
        scale = opts.global_clipnorm * min(1.0 / norm if norm else np.inf, 1.0 / opts.global_clipnorm)
        return [None if g is None else (g * scale).astype(g.dtype, copy=False) for g in gs]
    if opts.clipvalue is not None:
        return [None if g is None else np.clip(g, -opts.clipvalue, opts.clipvalue) for g in gs]
    return gs


def prepare(opts: GradientOptions, grads, accumulators, calls: int) -> Prepared:
    """The gradients a call applies (or accumulates) given ``calls`` earlier calls; writes nothing."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is what skip_nonfinite looks for
        return _prepare(opts, list(grads), accumulators, calls)


def _prepare(opts, gs, accumulators, calls):
    if opts.skip_nonfinite and not _finite(gs):
        return Prepared(skip=True, applies=False)
    if not opts.python_side:
        return Prepared(skip=False, applies=True, grads=gs)
    if opts.maximize:
        gs = [None if g is None else np.negative(g) for g in gs]
    if opts.loss_scale_factor is not None:
        gs = [None if g is None else g / np.asarray(opts.loss_scale_factor, g.dtype) for g in gs]
    n = opts.accumulation_steps
    new_acc = None
    if n is not None:
        if (calls + 1) % n != 0:
            new_acc = [None if g is None else a + g for a, g in zip(accumulators, gs)]
            if opts.skip_nonfinite and not _finite(new_acc):
                return Prepared(skip=True, applies=False)
            return Prepared(skip=False, applies=False, accumulators=new_acc)
        gs = [None if g is None else (g + a) / np.asarray(n, g.dtype) for g, a in zip(gs, accumulators)]
        new_acc = "reset"
    gs = _clip(opts, gs)
    transformed = (opts.maximize or opts.loss_scale_factor is not None or n is not None or opts.clipnorm is not None
                   or opts.clipvalue is not None or opts.global_clipnorm is not None or opts.rescale_grad != 1.0)
    if opts.skip_nonfinite and transformed and not _finite(gs, opts.rescale_grad):
        return Prepared(skip=True, applies=False)
    return Prepared(skip=False, applies=True, grads=gs, accumulators=new_acc)
