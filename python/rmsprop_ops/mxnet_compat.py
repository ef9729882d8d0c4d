"""MXNet's RMSProp optimizer interface (``mxnet.optimizer.RMSProp``) on NumPy / DLPack arrays.

One optimizer follows one MXNet release on every path, chosen with ``release``:

* ``"1.9.1"`` (default; the release ``pip install mxnet`` gives): the C++ kernels ``rmsprop_update`` /
  ``rmspropalex_update`` of ``src/operator/optimizer_op-inl.h``, which are all MXNet 1.x runs
  (``Optimizer.update``)::

      g   = rescale_grad * g + wd * w;  g = clip(g, clip_gradient)        # clip AFTER weight decay
      n   = rho * n + (1 - rho) * g^2
      w   = w - lr * g / sqrt(n + eps)                                      # centered=False
      g_  = rho * g_ + (1 - rho) * g                                        # centered=True (Graves)
      delta = momentum * delta - lr * g / sqrt(n - g_^2 + eps);  w = w + delta
      w   = clip(w, clip_weights)

  State as 1.9.1's ``create_state``: ``(n,)``, or ``(n, g, delta)`` when centered.

* ``"2.0"`` (2.0.0.beta1 and master): ``RMSProp.step`` and ``fused_step`` compute the same rule (the
  2.x kernels were rewritten to match the Python code): the gradient is clipped BEFORE weight decay and
  the uncentered denominator is ``sqrt(var) + eps``. State: ``var``, or ``(mean, var, mom)``; 2.x also
  dropped 1.x's rule that names not ending in ``_weight`` / ``_gamma`` get no weight decay.

:meth:`RMSProp.step`, :meth:`RMSProp.fused_step` and :meth:`RMSProp.update` therefore agree bit for
bit within a release. ``delta`` / ``mom`` hold MXNet's own sign (``w += delta``), so states load into
MXNet unchanged. ``momentum`` is used only with ``centered=True``, as in MXNet. One core call updates
every weight of a ``step`` / ``fused_step`` call (per-index rates and decays go in as lists).

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

from ._functional import rmsprop_multi_
from ._optimizer.arrays import as_view, math_dtype
from ._toolkit.checks import core_attr, flag, real

__all__ = ["RMSProp", "RELEASES"]

RELEASES = ("1.9.1", "2.0")


class RMSProp:
    """``mxnet.optimizer.RMSProp`` with the same constructor, defaults and methods.

    Args:
        learning_rate: 0.001; None means ``lr_scheduler``'s rate, or 0.01 without one (MXNet).
        rho: 0.9.  momentum: 0.9, used only when ``centered``.  epsilon: 1e-8.
        centered: Graves' version with momentum (``rmspropalex_update``).
        clip_weights, clip_gradient: clip to ``[-c, c]``; None or 0 disables (as MXNet's ``if c:``).
        use_fused_step: :meth:`update` calls :meth:`fused_step` (True) or :meth:`step` (the same rule).
        rescale_grad: multiplies the gradient first (often ``1 / batch_size``).
        wd: coupled L2 weight decay; scaled per index by :meth:`set_wd_mult`.
        lr_scheduler: a callable of ``num_update`` (MXNet's LRScheduler objects, or
            :mod:`rmsprop_ops.schedules`); MXNet counts updates from 1.
        begin_num_update: the initial update count.
        param_idx2name: index -> name; in 1.9.1 names not ending in ``_weight``/``_gamma`` get
            ``wd_mult`` 0.
        gamma1, gamma2: MXNet 1.x's names for ``rho`` and ``momentum`` (1.9.1 only: 2.x refuses them).
        release: ``"1.9.1"`` or ``"2.0"``: the MXNet release every path follows.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.9, epsilon=1e-8, centered=False,
                 clip_weights=None, use_fused_step=True, rescale_grad=1.0, wd=0.0, clip_gradient=None,
                 lr_scheduler=None, begin_num_update=0, param_idx2name=None, gamma1=None, gamma2=None,
                 release="1.9.1"):
        if release not in RELEASES:
            raise ValueError(f"release: expected one of {list(RELEASES)}, got {release!r}")
        self.release = release
        for name, value in (("gamma1", gamma1), ("gamma2", gamma2)):
            if value is not None and release != "1.9.1":
                raise TypeError(f"{name}: MXNet 2.x removed {name}; pass {'rho' if name == 'gamma1' else 'momentum'}=")
        rho = rho if gamma1 is None else gamma1
        momentum = momentum if gamma2 is None else gamma2
        self.rho = core_attr("gamma1" if gamma1 is not None else "rho", rho, "rho")
        self.momentum = core_attr("gamma2" if gamma2 is not None else "momentum", momentum, "momentum")
        self.epsilon = core_attr("epsilon", epsilon)
        self.wd = core_attr("wd", wd, "weight_decay")
        self.rescale_grad = core_attr("rescale_grad", rescale_grad)
        self.clip_weights = None if clip_weights is None else real("clip_weights", clip_weights)
        self.clip_gradient = None if clip_gradient is None else real("clip_gradient", clip_gradient)
        if learning_rate is None and lr_scheduler is None:
            learning_rate = 0.01
        if learning_rate is not None:
            learning_rate = core_attr("learning_rate", learning_rate)
        if lr_scheduler is not None:
            if not callable(lr_scheduler):
                raise TypeError(f"lr_scheduler: expected a callable of num_update, got {type(lr_scheduler).__name__}")
            if learning_rate is not None and hasattr(lr_scheduler, "base_lr"):
                lr_scheduler.base_lr = learning_rate
        if param_idx2name is not None and not isinstance(param_idx2name, dict):
            raise TypeError(f"param_idx2name: expected a dict, got {type(param_idx2name).__name__}")
        self.lr = learning_rate
        self.lr_scheduler = lr_scheduler
        self.centered = flag("centered", centered)
        self.use_fused_step = flag("use_fused_step", use_fused_step)
        self.begin_num_update = self.num_update = int(begin_num_update)
        self._index_update_count = {}
        self.idx2name = dict(param_idx2name or {})
        self.set_lr_mult({})
        self.set_wd_mult({})

    def __repr__(self):
        return (f"mxnet_compat.RMSProp(release={self.release!r}, learning_rate={self.lr!r}, rho={self.rho!r}, "
                f"momentum={self.momentum!r}, epsilon={self.epsilon!r}, centered={self.centered!r}, "
                f"wd={self.wd!r}, rescale_grad={self.rescale_grad!r}, clip_gradient={self.clip_gradient!r}, "
                f"clip_weights={self.clip_weights!r}, num_update={self.num_update})")

    # ------------------------------------------------------------------ MXNet Optimizer API
    @property
    def learning_rate(self):
        return self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr

    def set_learning_rate(self, lr):
        if self.lr_scheduler is not None:
            raise UserWarning("LRScheduler of the optimizer has already been defined; set_learning_rate "
                              "only works without one (as in MXNet)")
        self.lr = core_attr("learning_rate", lr)

    def set_lr_mult(self, args_lr_mult):
        """Per-parameter learning-rate multipliers, keyed by index or name."""
        self.lr_mult = dict(args_lr_mult)

    def set_wd_mult(self, args_wd_mult):
        """Per-parameter weight-decay multipliers (1.9.1: names not ending in _weight/_gamma default to 0)."""
        self.wd_mult = {}
        if self.release == "1.9.1":
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
        """1.9.1: ``(n,)``, or ``(n, g, delta)`` when centered; 2.0: ``var``, or ``(mean, var, mom)``."""
        w = as_view("weight", weight)
        zeros = lambda: np.zeros(w.shape, math_dtype(w.dtype))  # noqa: E731
        if self.centered:
            return (zeros(), zeros(), zeros())
        return (zeros(),) if self.release == "1.9.1" else zeros()

    def update(self, index, weight, grad, state):
        """One parameter: :meth:`fused_step` or :meth:`step` (which agree) as ``use_fused_step`` says."""
        (self.fused_step if self.use_fused_step else self.step)([index], [weight], [grad], [state])

    def fused_step(self, indices, weights, grads, states):
        """Several parameters in one core call, with the rule of ``release``."""
        self._run(indices, weights, grads, states)

    def step(self, indices, weights, grads, states):
        """The same as :meth:`fused_step`: no MXNet release has two differing paths."""
        self._run(indices, weights, grads, states)

    # ------------------------------------------------------------------ one core call
    def _split_states(self, states):
        """(mean_squares, mean_grads, deltas) in the core's roles, from this release's state layout."""
        if self.centered:
            for i, s in enumerate(states):
                if not (isinstance(s, tuple) and len(s) == 3):
                    raise TypeError(f"states[{i}]: expected the 3-tuple from create_state")
            if not states:
                return [], [], []
            a, b, delta = (list(x) for x in zip(*states))
            return (a, b, delta) if self.release == "1.9.1" else (b, a, delta)  # (n, g, .) vs (mean, var, .)
        out = []
        for i, s in enumerate(states):
            if isinstance(s, tuple):
                if len(s) != 1:
                    raise TypeError(f"states[{i}]: expected (n,) or an array from create_state, got {len(s)} items")
                s = s[0]
            out.append(s)
        return out, None, None

    def _run(self, indices, weights, grads, states):
        indices, weights, grads, states = list(indices), list(weights), list(grads), list(states)
        n = len(indices)
        for name, seq in (("weights", weights), ("grads", grads), ("states", states)):
            if len(seq) != n:
                raise ValueError(f"{name}: expected {n} entries (one per index), got {len(seq)}")
        if len(set(indices)) != n:
            raise ValueError(f"indices: expected unique indices, got {indices}")
        mean_squares, mean_grads, deltas = self._split_states(states)
        # MXNet's delta is added (w += delta), the core's moment subtracted: negate around the call
        # (exactly, sign bit only), so that the state keeps MXNet's sign
        flips = [as_view(f"states[{i}][2]", d) for i, d in enumerate(deltas)] if deltas is not None else []
        counts = dict(self._index_update_count)
        num_update = self.num_update
        for index in indices:
            self._update_count(index)
        try:
            base = self.learning_rate
            lrs = [float(base) * float(self._mult(self.lr_mult, i)) for i in indices]
            wds = [self.wd * float(self._mult(self.wd_mult, i)) for i in indices]
            v1 = self.release == "1.9.1"
            for d in flips:
                np.negative(d, out=d)
            try:
                rmsprop_multi_(
                    weights, grads, mean_squares, lr=lrs, rho=self.rho, epsilon=self.epsilon,
                    momentum=self.momentum if self.centered else 0.0, moments=deltas, centered=self.centered,
                    mean_grads=mean_grads, eps_in_sqrt=v1 or self.centered, lr_in_momentum=True,
                    weight_decay=wds, weight_decay_mode="l2", rescale_grad=self.rescale_grad,
                    clip_gradient=self.clip_gradient or None, clip_weights=self.clip_weights or None,
                    clip_after_weight_decay=v1)
            finally:
                for d in flips:
                    np.negative(d, out=d)
        except Exception:
            self._index_update_count, self.num_update = counts, num_update
            raise
