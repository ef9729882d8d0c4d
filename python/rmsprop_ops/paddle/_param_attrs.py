"""What a parameter carries for the optimizer: its ``ParamAttr`` learning-rate scale and regularizer.

Both bypass the constructor, so they are checked for every parameter of a step before its first write;
L1/L2 decay is fused into the op (read off the parameter when the update is built), and a scale the
fused op cannot carry exactly sends the parameter to an op of its own.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np
import paddle
from paddle.regularizer import L1Decay, L2Decay

from .. import registry
from ._decay import DecoupledDecay
from ._densify import pairs

__all__ = ["Decay", "NO_DECAY", "fused_decay", "check_param_attrs", "fusable_lr_mult"]

# The registry's weight_decay_mode codes for the regularizers the op applies (a DecoupledDecay is a float
# weight_decay under a decoupled convention, see _decay).
_MODE = {L2Decay: 0, L1Decay: 1, DecoupledDecay: 2}


class Decay(NamedTuple):
    """Weight decay the op applies to one parameter's gradient (``mode``: the registry's code)."""

    coeff: float
    mode: int


NO_DECAY = Decay(0.0, 0)


def regularizer_of(param, regularization):
    """The regularizer Paddle applies to ``param``: its ``ParamAttr``'s, else the optimizer's (or group's)."""
    reg = getattr(param, "regularizer", None)
    return regularization if reg is None else reg


def fused_decay(param, regularization):
    """The decay the op applies for ``param``, or None when Paddle applies the regularizer itself (one that
    is not L1Decay/L2Decay)."""
    reg = regularizer_of(param, regularization)
    if reg is None:
        return NO_DECAY
    mode = _MODE.get(type(reg))
    return None if mode is None else Decay(float(reg._coeff), mode)


def fusable_lr_mult(param):
    """The parameter's ``ParamAttr`` learning-rate scale as the fused op's float32 ``lr_mults`` entry, or
    None when that would change the result, and the parameter gets its own op, whose learning rate Paddle
    computes (``_create_param_lr``) as ``paddle.optimizer.RMSProp`` does. Not fusable: a scale that is not a
    number (Paddle then uses it as the parameter's learning rate), and, for a float64 parameter, a scale
    float32 cannot hold exactly (0.1 would drift from Paddle's result after a few steps)."""
    attr = getattr(param, "optimize_attr", None) or {}
    mult = attr.get("learning_rate", 1.0)
    if type(mult) is not float:
        if not isinstance(mult, numbers.Real):
            return None
        mult = float(mult)
    if mult != 1.0 and param.dtype == paddle.float64 and float(np.float32(mult)) != mult:
        return None
    return mult


def check_param_attrs(parameters_and_grads):
    """Check every parameter's ParamAttr values, and that no PIR gradient is sparse, before the first op runs:
    with one op per parameter, an input the op refuses for a later parameter would otherwise leave the
    earlier ones updated. Runs every dygraph step, so a float scale skips the ABC check."""
    for param, grad in pairs(parameters_and_grads):
        if grad is None:
            continue
        if isinstance(grad, paddle.pir.Value) and grad.is_selected_row_type():
            # PIR has no op that scatters SelectedRows into a dense tensor (pd_op.add_n takes dense inputs
            # only), and Paddle's own PIR backward never makes one here: Embedding(sparse=True) gets the
            # dense pd_op.embedding_grad. Only a hand-built program can get this far.
            raise ValueError(f"{param.name}: Grad: expected a dense tensor, got a SelectedRows value (a PIR "
                             "static program offers no op turning it into a dense tensor; dynamic mode "
                             "takes sparse gradients)")
        mult = (getattr(param, "optimize_attr", None) or {}).get("learning_rate", 1.0)
        if (type(mult) is float or isinstance(mult, numbers.Real)) and not (math.isfinite(mult) and mult >= 0):
            raise ValueError(f"{param.name}: ParamAttr learning_rate: expected a finite scale >= 0, got {mult!r}")
        reg = getattr(param, "regularizer", None)
        if type(reg) in _MODE:
            try:
                registry.check_attr("rmsprop", "weight_decay", reg._coeff)
            except (TypeError, ValueError) as e:
                raise type(e)(f"{param.name}: ParamAttr regularizer: {e}") from None
