"""``repr(rmsprop_ops.paddle.RMSProp(...))``: its hyper-parameters, convention and state layout."""

from __future__ import annotations

from paddle.nn.clip import ClipGradByGlobalNorm, ClipGradByNorm, ClipGradByValue
from paddle.optimizer.lr import LRScheduler
from paddle.regularizer import L1Decay, L2Decay

from ._decay import DecoupledDecay

__all__ = ["describe"]


def _lr(lr):
    if isinstance(lr, LRScheduler):
        return f"{type(lr).__name__}(last_lr={lr.last_lr!r}, last_epoch={lr.last_epoch})"
    return repr(lr)


def _regularizer(reg):
    if isinstance(reg, (L1Decay, L2Decay, DecoupledDecay)):
        return f"{type(reg).__name__}({reg._coeff!r})"
    return "None" if reg is None else type(reg).__name__


def _clip(clip):
    clip = getattr(clip, "clip", clip)  # the clip a fused value clip stands in for
    if isinstance(clip, ClipGradByValue):
        return f"ClipGradByValue(min={clip.min!r}, max={clip.max!r})"
    if isinstance(clip, (ClipGradByNorm, ClipGradByGlobalNorm)):
        return f"{type(clip).__name__}(clip_norm={clip.clip_norm!r})"
    return "None" if clip is None else type(clip).__name__


def _parameters(groups):
    if groups is None:
        return "'all of the program'"
    if groups and isinstance(groups[0], dict):
        return f"{len(groups)} groups of {sum(len(g['params']) for g in groups)}"
    return str(len(groups or []))


def describe(opt):
    """``RMSProp(learning_rate=..., rho=..., ..., convention='paddle', fused=True, flat_state='auto', ...)``; the
    convention's fields are listed when it is not Paddle's, and a rule whose fields were set apart from its
    convention's row shows as ``convention='custom' (from '<row>')``."""
    rule, layout = opt._rule, opt._layout
    parts = [f"learning_rate={_lr(opt._learning_rate)}", f"rho={rule.rho!r}", f"epsilon={rule.epsilon!r}",
             f"momentum={rule.momentum!r}", f"centered={rule.centered!r}",
             f"weight_decay={_regularizer(opt.regularization)}", f"grad_clip={_clip(opt._grad_clip)}",
             f"convention={rule.convention!r}" + (f" (from {rule.base!r})" if rule.convention == "custom" else "")]
    r = rule.resolved
    if rule.convention != "paddle":
        parts += [f"eps_in_sqrt={r.eps_in_sqrt!r}", f"lr_in_momentum={r.lr_in_momentum!r}",
                  f"initial_accumulator_value={r.initial_accumulator_value!r}",
                  f"weight_decay_mode={r.weight_decay_mode!r}"]
    parts += [f"{name}=True" for name in ("maximize", "nesterov", "bias_correction") if getattr(r, name)]
    if opt._use_ema:
        e = opt._ema
        parts.append(f"use_ema=True, ema_momentum={e.decay!r}, ema_schedule={e.schedule!r}"
                     + (f", ema_overwrite_frequency={e.overwrite_frequency}" if e.overwrite_frequency else ""))
    if rule.clip_weights is not None:
        parts.append(f"clip_weights={rule.clip_weights!r}")
    flat = "'auto' (flat in dynamic mode)" if layout.flat_state is None else repr(layout.flat_state)
    parts += [f"fused={layout.fused!r}", f"flat_state={flat}", f"multi_precision={layout.multi_precision!r}"]
    if opt._name is not None:
        parts.append(f"name={opt._name!r}")
    parts.append(f"parameters={_parameters(opt._param_groups)}")
    return f"rmsprop_ops.paddle.RMSProp({', '.join(parts)})"
