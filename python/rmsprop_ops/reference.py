"""A float64 NumPy reference of the RMSProp rules, written independently of the kernels for tests.

It follows the formulas as the frameworks publish them, with plain if-branches, and returns new arrays;
it shares no code with the C++ rule.

Example:
    >>> import numpy as np
    >>> from rmsprop_ops.reference import rmsprop_step
    >>> out = rmsprop_step(np.array([10.0]), np.array([10.0]), np.array([0.0]), lr=0.1, rho=0.9, epsilon=1e-7)
    >>> round(float(out["param"][0]), 6)
    9.683772
"""

from __future__ import annotations

import numpy as np

__all__ = ["rmsprop_step"]


def _f64(x):
    return None if x is None else np.asarray(x, dtype=np.float64)


def rmsprop_step(param, grad, mean_square, *, lr, rho, epsilon, momentum=0.0, moment=None, centered=False,
                 mean_grad=None, eps_in_sqrt=True, lr_in_momentum=True, weight_decay=0.0,
                 weight_decay_mode="l2", rescale_grad=1.0, clip_gradient=None, clip_weights=None,
                 clip_after_weight_decay=True, nesterov=False, bias_correction=False, step=1,
                 maximize=False) -> dict:
    """One step in float64. Returns {"param", "mean_square", "moment", "mean_grad"} (None where absent).

    ``maximize`` negates the gradient first (torch); ``bias_correction`` uses ms / (1 - rho**step) (and
    mg likewise) in the denominator, ``step`` counting updates from 1 (optax); ``nesterov`` makes a
    momentum step ``upd + momentum * mom`` with ``upd`` the new contribution to ``mom`` (optax's trace).
    """
    p = _f64(param).copy()
    g = _f64(grad) * rescale_grad
    if maximize:
        g = -g
    ms = _f64(mean_square)
    mom = _f64(moment)
    mg = _f64(mean_grad)
    clip_on = clip_gradient is not None and clip_gradient >= 0

    if clip_on and not clip_after_weight_decay:
        g = np.clip(g, -clip_gradient, clip_gradient)
    if weight_decay_mode == "l2":
        g = g + weight_decay * p
    elif weight_decay_mode == "l1":
        g = g + weight_decay * np.sign(p)
    if clip_on and clip_after_weight_decay:
        g = np.clip(g, -clip_gradient, clip_gradient)

    # Evaluated as Paddle's kernel writes it, ((1 - rho) * g) * g: with rho near 0 or 1 the centered
    # variance ms - mg^2 cancels catastrophically, and only a matching evaluation order keeps the
    # reference meaningful there.
    ms = rho * ms + (1.0 - rho) * g * g
    correction = 1.0 - rho ** step if bias_correction else 1.0
    if centered:
        mg = rho * mg + (1.0 - rho) * g
        var = np.maximum(ms / correction - np.square(mg / correction), 0.0)
    else:
        var = ms / correction
    denom = np.sqrt(var + epsilon) if eps_in_sqrt else np.sqrt(var) + epsilon

    if weight_decay_mode == "decoupled":
        p = p - lr * weight_decay * p
    if mom is not None:
        update = lr * g / denom if lr_in_momentum else g / denom
        mom = momentum * mom + update
        move = update + momentum * mom if nesterov else mom
        p = p - move if lr_in_momentum else p - lr * move
    else:
        p = p - lr * g / denom
    if clip_weights is not None and clip_weights >= 0:
        p = np.clip(p, -clip_weights, clip_weights)
    return {"param": p, "mean_square": ms, "moment": mom, "mean_grad": mg}
