"""MXNet's RMSProp optimizer interface (``mxnet.optimizer.RMSProp``) on NumPy / DLPack arrays.

MXNet has two code paths and they do not agree; both are reproduced:

* :meth:`RMSProp.fused_step` (MXNet's default, ``use_fused_step=True``) follows the C++ kernels
  ``rmsprop_update`` / ``rmspropalex_update`` (``src/operator/optimizer_op-inl.h``)::

      g   = rescale_grad * g + wd * w;  g = clip(g, clip_gradient)        # clip AFTER weight decay
      var = rho * var + (1 - rho) * g^2
      w   = w - lr * g / sqrt(var + eps)                                    # centered=False
      mean = rho * mean + (1 - rho) * g                                     # centered=True (Graves)
      delta = momentum * delta - lr * g / sqrt(var - mean^2 + eps);  w = w + delta
      w   = clip(w, clip_weights)

* :meth:`RMSProp.step` follows the Python fallback in ``python/mxnet/optimizer/rmsprop.py``: the
  gradient is clipped BEFORE weight decay, and the uncentered denominator is ``sqrt(var) + eps``.

``momentum`` is used only with ``centered=True``, as in MXNet. One core call updates every weight of a
``step``/``fused_step`` call (per-index learning rates and weight decays go in as per-tensor lists).

State layout matches ``create_state``: ``var`` or ``(mean, var, mom)``, except that ``mom`` holds
``-delta`` (the core accumulates ``lr * g / d`` and subtracts it); negate it to exchange with MXNet.

Example:
    >>> import numpy as np
    >>> from rmsprop_ops.mxnet_compat import RMSProp
    >>> opt = RMSProp(learning_rate=0.1, wd=0.01, rescale_grad=0.5, clip_gradient=1.0)
    >>> w = np.ones(4, np.float32); state = opt.create_state(0, w)
    >>> opt.update(0, w, np.full(4, 3.0, np.float32), state)
    >>> round(float(w[0]), 4)
    0.6838
"""

from __future__ import annotations

import numpy as np

from . import registry
from ._checks import as_bool, as_float
from ._functional import rmsprop_multi_
from ._optimizer.arrays import as_view as _as_view, math_dtype as _math_dtype

__all__ = ["RMSProp"]


class RMSProp:
    """``mxnet.optimizer.RMSProp`` with the same constructor, defaults and methods.

    Args:
        learning_rate: 0.001; None means ``lr_scheduler``'s rate, or 0.01 without one (MXNet).
        rho: 0.9.  momentum: 0.9, used only when ``centered``.  epsilon: 1e-8.
        centered: Graves' version with momentum (``rmspropalex_update``).
        clip_weights, clip_gradient: clip to ``[-c, c]``; None or 0 disables (as MXNet's ``if c:``).
        use_fused_step: :meth:`update` calls :meth:`fused_step` (True) or :meth:`step`.
        rescale_grad: multiplies the gradient first (often ``1 / batch_size``).
        wd: coupled L2 weight decay; scaled per index by :meth:`set_wd_mult`.
        lr_scheduler: a callable of ``num_update`` (MXNet's LRScheduler objects, or
            :mod:`rmsprop_ops.schedules`); MXNet counts updates from 1.
        begin_num_update: the initial update count.
        param_idx2name: index -> name; names not ending in ``_weight``/``_gamma`` get ``wd_mult`` 0.
        gamma1, gamma2: MXNet 1.x's names for ``rho`` and ``momentum`` (1.9.1 is the release that
            installs today); given, they take precedence.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.9, epsilon=1e-8, centered=False,
                 clip_weights=None, use_fused_step=True, rescale_grad=1.0, wd=0.0, clip_gradient=None,
                 lr_scheduler=None, begin_num_update=0, param_idx2name=None, gamma1=None, gamma2=None):
        rho = rho if gamma1 is None else gamma1
        momentum = momentum if gamma2 is None else gamma2
        for name, value in (("rho", rho), ("momentum", momentum), ("epsilon", epsilon), ("wd", wd),
                            ("rescale_grad", rescale_grad)):
            registry.check_attr("rmsprop", "weight_decay" if name == "wd" else name, value)
        for name, value in (("clip_weights", clip_weights), ("clip_gradient", clip_gradient)):
            if value is not None:
                as_float(name, value)
        if learning_rate is None and lr_scheduler is None:
            learning_rate = 0.01
        if learning_rate is not None:
            registry.check_attr("rmsprop", "learning_rate", learning_rate)
        if lr_scheduler is not None:
            if not callable(lr_scheduler):
                raise TypeError(f"lr_scheduler: expected a callable of num_update, got {type(lr_scheduler).__name__}")
            if learning_rate is not None and hasattr(lr_scheduler, "base_lr"):
                lr_scheduler.base_lr = learning_rate
        if param_idx2name is not None and not isinstance(param_idx2name, dict):
            raise TypeError(f"param_idx2name: expected a dict, got {type(param_idx2name).__name__}")
        self.lr = learning_rate
        self.lr_scheduler = lr_scheduler
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self.centered = as_bool("centered", centered)
        self.clip_weights, self.clip_gradient = clip_weights, clip_gradient
        self.use_fused_step = as_bool("use_fused_step", use_fused_step)
        self.rescale_grad, self.wd = float(rescale_grad), float(wd)
        self.begin_num_update = self.num_update = int(begin_num_update)
        self._index_update_count = {}
        self.idx2name = dict(param_idx2name or {})
        self.set_lr_mult({})
        self.set_wd_mult({})

    # ------------------------------------------------------------------ MXNet Optimizer API
    @property
    def learning_rate(self):
        return self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr

    def set_learning_rate(self, lr):
        if self.lr_scheduler is not None:
            raise UserWarning("LRScheduler of the optimizer has already been defined; set_learning_rate "
                              "only works without one (as in MXNet)")
        registry.check_attr("rmsprop", "learning_rate", lr)
        self.lr = lr

    def set_lr_mult(self, args_lr_mult):
        """Per-parameter learning-rate multipliers, keyed by index or name."""
        self.lr_mult = dict(args_lr_mult)

    def set_wd_mult(self, args_wd_mult):
        """Per-parameter weight-decay multipliers; names not ending in _weight/_gamma default to 0."""
        self.wd_mult = {n: 0.0 for n in self.idx2name.values() if not n.endswith(("_weight", "_gamma"))}
        self.wd_mult.update(args_wd_mult)

    def _mult(self, table, index):
        if index in table:
            return table[index]
        if index in self.idx2name:
            return table.get(self.idx2name[index], 1.0)
        return 1.0

    def _update_count(self, index):
        count = self._index_update_count.get(index, self.begin_num_update) + 1
        self._index_update_count[index] = count
        self.num_update = max(count, self.num_update)

    def create_state(self, index, weight):
        """``var`` (zeros), or ``(mean, var, mom)`` when centered."""
        w = _as_view("weight", weight)
        dt = _math_dtype(w.dtype)
        if self.centered:
            return (np.zeros(w.shape, dt), np.zeros(w.shape, dt), np.zeros(w.shape, dt))
        return np.zeros(w.shape, dt)

    def update(self, index, weight, grad, state):
        """One parameter: :meth:`fused_step` or :meth:`step` depending on ``use_fused_step``."""
        (self.fused_step if self.use_fused_step else self.step)([index], [weight], [grad], [state])

    def fused_step(self, indices, weights, grads, states):
        """MXNet's fused kernels' semantics (clip after weight decay, eps inside the square root)."""
        self._run(indices, weights, grads, states, fused=True)

    def step(self, indices, weights, grads, states):
        """MXNet's Python ``step`` semantics (clip before weight decay; ``sqrt(var) + eps`` uncentered)."""
        self._run(indices, weights, grads, states, fused=False)

    # ------------------------------------------------------------------ one core call
    def _run(self, indices, weights, grads, states, *, fused):
        indices, weights, grads, states = list(indices), list(weights), list(grads), list(states)
        n = len(indices)
        for name, seq in (("weights", weights), ("grads", grads), ("states", states)):
            if len(seq) != n:
                raise ValueError(f"{name}: expected {n} entries (one per index), got {len(seq)}")
        if len(set(indices)) != n:
            raise ValueError(f"indices: expected unique indices, got {indices}")
        if self.centered:
            for i, s in enumerate(states):
                if not (isinstance(s, tuple) and len(s) == 3):
                    raise TypeError(f"states[{i}]: expected the (mean, var, mom) tuple from create_state")
            mean_grads, mean_squares, moments = (list(x) for x in zip(*states)) if n else ([], [], [])
        else:
            mean_squares, mean_grads, moments = states, None, None
        counts = dict(self._index_update_count)
        num_update = self.num_update
        for index in indices:
            self._update_count(index)
        try:
            base = self.learning_rate
            lrs = [float(base) * float(self._mult(self.lr_mult, i)) for i in indices]
            wds = [self.wd * float(self._mult(self.wd_mult, i)) for i in indices]
            rmsprop_multi_(
                weights, grads, mean_squares, lr=lrs, rho=self.rho, epsilon=self.epsilon,
                momentum=self.momentum if self.centered else 0.0, moments=moments, centered=self.centered,
                mean_grads=mean_grads, eps_in_sqrt=fused or self.centered, lr_in_momentum=True,
                weight_decay=wds, weight_decay_mode="l2", rescale_grad=self.rescale_grad,
                clip_gradient=self.clip_gradient or None, clip_weights=self.clip_weights or None,
                clip_after_weight_decay=fused)
        except Exception:
            self._index_update_count, self.num_update = counts, num_update
            raise
