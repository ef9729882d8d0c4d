"""The built-in path of ``rmsprop_ops.mindspore.RMSProp``: MindSpore's own ``ApplyRMSProp`` /
``ApplyCenteredRMSProp``, one op per parameter, exactly as ``nn.RMSProp`` runs them. Used on a device
without a kernel of ours (Ascend), or everywhere with ``RMSPROP_OPS_MS_FALLBACK=1``."""

from __future__ import annotations

import os
import warnings

from mindspore.ops import composite as C
from mindspore.ops import functional as F
from mindspore.ops import operations as P

__all__ = ["FALLBACK_ENV", "fallback_reason", "builtin_ops", "builtin_step"]

FALLBACK_ENV = "RMSPROP_OPS_MS_FALLBACK"
_fallback_warned = False

_builtin_apply = C.MultitypeFuncGraph("rmsprop_ops_builtin_apply")


@_builtin_apply.register("Function", "Number", "Number", "Number", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _builtin_plain(opt, decay, epsilon, momentum, lr, weight, ms, mom, grad):
    dt = grad.dtype
    return F.depend(True, opt(weight, ms, mom, F.cast(lr, dt), grad, F.cast(decay, dt), F.cast(momentum, dt),
                              F.cast(epsilon, dt)))


@_builtin_apply.register("Function", "Number", "Number", "Number", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                         "Tensor")
def _builtin_centered(opt, decay, epsilon, momentum, lr, weight, mg, ms, mom, grad):
    return F.depend(True, opt(weight, mg, ms, mom, grad, lr, decay, momentum, epsilon))


def fallback_reason(kernel_available: bool) -> str | None:
    """Why the optimizer must use MindSpore's ops (None: it runs our kernel); warns once per process."""
    global _fallback_warned
    forced = os.environ.get(FALLBACK_ENV, "") not in ("", "0")
    if kernel_available and not forced:
        return None
    reason = f"{FALLBACK_ENV} is set" if forced else "no rmsprop_ops kernel for this device"
    if not _fallback_warned:
        _fallback_warned = True
        warnings.warn(f"rmsprop_ops.mindspore.RMSProp: {reason}; falling back to MindSpore's "
                      "ApplyRMSProp/ApplyCenteredRMSProp (same numerics, one op per parameter)", RuntimeWarning,
                      stacklevel=4)
    return reason


def builtin_ops(centered: bool, use_locking: bool):
    return P.ApplyCenteredRMSProp(use_locking) if centered else P.ApplyRMSProp(use_locking)


def builtin_step(opt, gradients):
    """nn.RMSProp's construct, on ``opt``'s state."""
    params = opt._parameters
    rule = opt._rule
    gradients = opt.decay_weight(gradients)
    gradients = opt.gradients_centralization(gradients)
    gradients = opt.scale_grad(gradients)
    lr = opt.get_lr()
    opt.assignadd(opt.global_step, opt.global_step_increase_tensor)
    if opt.is_group_lr:
        step = F.partial(_builtin_apply, opt.opt, rule.rho, rule.epsilon, rule.momentum)
        if rule.centered:
            return opt.hyper_map_reverse(step, lr, params, opt.mg, opt.ms, opt.moment, gradients)
        return opt.hyper_map_reverse(step, lr, params, opt.ms, opt.moment, gradients)
    step = F.partial(_builtin_apply, opt.opt, rule.rho, rule.epsilon, rule.momentum, lr)
    if rule.centered:
        return opt.hyper_map_reverse(step, params, opt.mg, opt.ms, opt.moment, gradients)
    return opt.hyper_map_reverse(step, params, opt.ms, opt.moment, gradients)
