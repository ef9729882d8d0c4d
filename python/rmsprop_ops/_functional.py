"""Functional, in-place RMSProp on NumPy / DLPack arrays: the thinnest layer over the core."""

from __future__ import annotations

from collections.abc import Sequence

from . import _core, _dlpack
from ._checks import as_bool, as_float, as_optional_clip, weight_decay_mode_code

__all__ = ["rmsprop_", "rmsprop_multi_"]


def _scalar_or_array(name, value):
    """A hyper-parameter the kernel may read from memory: a number, or a one-element array."""
    if hasattr(value, "__dlpack__") or hasattr(value, "__array_interface__"):
        return value
    return as_float(name, value)


def _split_lr(lr, n):
    """Return (scalar lr, per-tensor multipliers or None)."""
    if isinstance(lr, (list, tuple)):
        if len(lr) != n:
            raise ValueError(f"lr: expected a number or {n} per-tensor values, got {len(lr)} values")
        return 1.0, [as_float(f"lr[{i}]", v) for i, v in enumerate(lr)]
    return _scalar_or_array("lr", lr), None


def _weight_decays(weight_decay, n):
    if isinstance(weight_decay, (list, tuple)):
        if len(weight_decay) != n:
            raise ValueError(
                f"weight_decay: expected a number or {n} per-tensor values, got {len(weight_decay)} values")
        return [as_float(f"weight_decay[{i}]", v) for i, v in enumerate(weight_decay)]
    return as_float("weight_decay", weight_decay)


def _skip(skip_update):
    if isinstance(skip_update, bool) or skip_update is None:
        return bool(skip_update)
    if hasattr(skip_update, "__dlpack__") or hasattr(skip_update, "__array_interface__"):
        return skip_update
    raise TypeError(f"skip_update: expected a bool or a one-element array, got {type(skip_update).__name__}")


def _call(params, grads, mean_squares, moments, mean_grads, master_params, *, lr, rho, epsilon, momentum,
          centered, eps_in_sqrt, lr_in_momentum, weight_decay, weight_decay_mode, rescale_grad,
          clip_gradient, clip_weights, clip_after_weight_decay, skip_update, list_names):
    n = len(params) if isinstance(params, (list, tuple)) else 0
    lr_value, lr_mults = _split_lr(lr, n)
    stream = 0
    fast = _dlpack.torch_capsules([params, grads, mean_squares, moments, mean_grads, master_params])
    if fast is not None:
        (params, grads, mean_squares, moments, mean_grads, master_params), stream = fast
    _core.update(
        params, grads, mean_squares, moments, mean_grads, master_params,
        lr=lr_value, lr_mults=lr_mults,
        rho=as_float("rho", rho), epsilon=as_float("epsilon", epsilon), momentum=as_float("momentum", momentum),
        centered=as_bool("centered", centered), eps_in_sqrt=as_bool("eps_in_sqrt", eps_in_sqrt),
        lr_in_momentum=as_bool("lr_in_momentum", lr_in_momentum),
        weight_decay=_weight_decays(weight_decay, n), weight_decay_mode=weight_decay_mode_code(weight_decay_mode),
        rescale_grad=_scalar_or_array("rescale_grad", rescale_grad),
        clip_gradient=as_optional_clip("clip_gradient", clip_gradient),
        clip_weights=as_optional_clip("clip_weights", clip_weights),
        clip_after_weight_decay=as_bool("clip_after_weight_decay", clip_after_weight_decay),
        skip_update=_skip(skip_update), list_names=list_names, stream=stream)


def rmsprop_(param, grad, mean_square, *, lr, rho, epsilon, momentum=0.0, moment=None, centered=False,
             mean_grad=None, eps_in_sqrt=True, lr_in_momentum=True, weight_decay=0.0,
             weight_decay_mode="l2", rescale_grad=1.0, clip_gradient=None, clip_weights=None,
             clip_after_weight_decay=True, master_param=None, skip_update=False) -> None:
    r"""One RMSProp step on one parameter, in place.

    The update, in the order the kernel applies it (``g`` is ``grad``, ``p`` the param, or its float32
    ``master_param`` when given)::

        g  = rescale_grad * g
        g  = clip(g, clip_gradient)              # here when clip_after_weight_decay=False
        g  = g + wd * p        (l2)   or   g + wd * sign(p)   (l1)
        g  = clip(g, clip_gradient)              # here when clip_after_weight_decay=True (MXNet order)
        ms = rho * ms + (1 - rho) * g^2
        v  = ms                                   # centered: mg = rho*mg + (1-rho)*g; v = max(ms - mg^2, 0)
        d  = sqrt(v + eps)     (eps_in_sqrt)   or   sqrt(v) + eps
        p  = p - lr * wd * p   (decoupled)
        with a moment buffer:   mom = momentum*mom + lr*g/d; p -= mom      (lr_in_momentum)
                                mom = momentum*mom + g/d;    p -= lr*mom   (not lr_in_momentum)
        without:                p -= lr * g / d
        p  = clip(p, clip_weights)

    Args:
        param: float32/float64/float16/bfloat16 array, updated in place (C-contiguous, writable).
        grad: same dtype and shape as ``param``.
        mean_square: the ``ms`` accumulator, float32 (float64 for float64 params). Paddle, Keras and
            torch start it at zeros; MindSpore and TF1 at ones.
        lr: learning rate: a number or a one-element array (read by the kernel, no host sync on GPU).
        rho: decay of the moving averages, in [0, 1].
        epsilon: > 0.
        momentum: >= 0; when > 0, ``moment`` is required. A ``moment`` given with momentum 0 is still
            updated (it then holds the last step, as in Paddle and MindSpore).
        centered: Graves' variant; needs ``mean_grad`` (starts at zeros everywhere).
        eps_in_sqrt: True for Paddle, MindSpore, Keras, TF; False for torch.
        lr_in_momentum: True for Paddle, MindSpore, Keras, TF; False for torch.
        weight_decay, weight_decay_mode: ``"l2"`` (coupled, Paddle/MindSpore/torch/MXNet), ``"l1"``
            (Paddle's L1Decay) or ``"decoupled"`` (Keras 3).
        rescale_grad: multiplies the gradient first (1 / loss scale); number or one-element array.
        clip_gradient, clip_weights: clip to ``[-c, c]``; None (or a negative number) disables.
        master_param: optional float32 master copy for float16/bfloat16 params.
        skip_update: True, or a one-element array holding a nonzero value, makes the call a no-op.

    Raises:
        TypeError / ValueError naming the argument, before any array is modified.

    Example:
        >>> import numpy as np, rmsprop_ops
        >>> p = np.array([10.0], np.float32); ms = np.zeros_like(p)
        >>> rmsprop_ops.rmsprop_(p, p.copy(), ms, lr=0.1, rho=0.9, epsilon=1e-7)  # Keras' doc example
        >>> round(float(p[0]), 6)
        9.683772
    """
    _call([param], [grad], [mean_square], [moment], [mean_grad], [master_param], lr=lr, rho=rho,
          epsilon=epsilon, momentum=momentum, centered=centered, eps_in_sqrt=eps_in_sqrt,
          lr_in_momentum=lr_in_momentum, weight_decay=weight_decay, weight_decay_mode=weight_decay_mode,
          rescale_grad=rescale_grad, clip_gradient=clip_gradient, clip_weights=clip_weights,
          clip_after_weight_decay=clip_after_weight_decay, skip_update=skip_update, list_names=False)


def rmsprop_multi_(params: Sequence, grads: Sequence, mean_squares: Sequence, *, lr, rho, epsilon,
                   momentum=0.0, moments=None, centered=False, mean_grads=None, master_params=None,
                   eps_in_sqrt=True, lr_in_momentum=True, weight_decay=0.0, weight_decay_mode="l2",
                   rescale_grad=1.0, clip_gradient=None, clip_weights=None, clip_after_weight_decay=True,
                   skip_update=False) -> None:
    """One RMSProp step on a list of parameters of any sizes, in one fused call.

    Same rule and arguments as :func:`rmsprop_`, with lists in place of single arrays. ``lr`` and
    ``weight_decay`` may also be lists with one value per parameter (parameter groups, MXNet's
    ``lr_mult``/``wd_mult``). All params must share one dtype; ``moments``, ``mean_grads`` and
    ``master_params`` are None or lists with an array for every param. Everything is validated before
    anything is written, and results are bitwise identical to calling :func:`rmsprop_` per tensor.

    Example:
        >>> import numpy as np, rmsprop_ops
        >>> ps = [np.ones(3, np.float32), np.ones(5, np.float32)]
        >>> gs = [np.full(3, 0.5, np.float32), np.full(5, -1.0, np.float32)]
        >>> mss = [np.zeros_like(p) for p in ps]
        >>> rmsprop_ops.rmsprop_multi_(ps, gs, mss, lr=[0.01, 0.1], rho=0.9, epsilon=1e-6)
        >>> [round(float(p[0]), 4) for p in ps]
        [0.9684, 1.3162]
    """
    _call(params, grads, mean_squares, moments, mean_grads, master_params, lr=lr, rho=rho, epsilon=epsilon,
          momentum=momentum, centered=centered, eps_in_sqrt=eps_in_sqrt, lr_in_momentum=lr_in_momentum,
          weight_decay=weight_decay, weight_decay_mode=weight_decay_mode, rescale_grad=rescale_grad,
          clip_gradient=clip_gradient, clip_weights=clip_weights,
          clip_after_weight_decay=clip_after_weight_decay, skip_update=skip_update, list_names=True)
