"""Row-sparse gradients in the neutral optimizer (:class:`rmsprop_ops.RMSProp`).

A gradient given as :class:`RowGrad` (or an ``(indices, values)`` tuple) for a parameter of rows is applied
by :func:`rmsprop_ops.rmsprop_rows_`. Which rows mode a parameter takes follows the optimizer's
``sparse_mode`` and the parameter's rule (:func:`rows_mode`); the exact and lazy modes keep a per-row step
counter and a step counter per parameter, created at the parameter's first row-sparse gradient and saved
in ``state_dict()`` (``last_step.<i>``, ``rows_step.<i>``) with the state as it stands, so a restored run
continues bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._functional import rmsprop_multi_
from ._rows import _rows_call, catch_up_rows_, rmsprop_rows_

__all__ = ["BucketStep", "RowGrad", "SPARSE_MODES", "RowsBook", "rows_mode", "check_sparse_mode"]

SPARSE_MODES = ("auto", "dense", "exact", "lazy")


class BucketStep(NamedTuple):
    """One bucket of the optimizer (``RMSProp._buckets``) in one step: its learning rate (a number, or one
    per member) and its members' gradients."""

    bucket: dict
    lr: object
    grads: list


class RowGrad(NamedTuple):
    """A row-sparse gradient: ``values[k]`` is the gradient of row ``indices[k]`` (repeats are summed)."""

    indices: object
    values: object


def rows_mode(sparse_mode, *, momentum, weight_decay, clip_weights):
    """The rows mode of a parameter, or a ValueError naming what stops the requested one.

    "auto" takes "exact" where it gives the dense numbers (no momentum, weight decay or weight clip) and
    "dense" otherwise; "exact" and "lazy" must be possible (lazy also takes momentum)."""
    closed = weight_decay == 0 and clip_weights is None
    if sparse_mode == "auto":
        return "exact" if closed and momentum == 0 else "dense"
    if sparse_mode in ("exact", "lazy"):
        if weight_decay != 0:
            raise ValueError(f"sparse_mode: {sparse_mode!r} cannot follow weight_decay={weight_decay} (it changes "
                             "every row every step); expected 'auto' or 'dense'")
        if clip_weights is not None:
            raise ValueError(f"sparse_mode: {sparse_mode!r} cannot follow clip_weights={clip_weights} (the dense "
                             "update clips every row every step); expected 'auto' or 'dense'")
        if sparse_mode == "exact" and momentum != 0:
            raise ValueError(f"sparse_mode: 'exact' cannot follow momentum={momentum} (every row moves every "
                             "step); expected 'lazy', 'auto' or 'dense'")
    return sparse_mode


def as_row_grad(name, g, param):
    """``g`` as a RowGrad of NumPy views, checked against ``param``; None when ``g`` is not row-sparse."""
    if not isinstance(g, tuple):
        return None
    if len(g) != 2:
        raise ValueError(f"{name}: expected an array or (indices, values), got a tuple of {len(g)} items")
    if param.ndim < 1:
        raise ValueError(f"{name}: (indices, values) needs a parameter of rows (ndim >= 1), got a 0-d one")
    indices, values = (np.from_dlpack(x) if hasattr(x, "__dlpack__") and not isinstance(x, np.ndarray) else x
                       for x in g)
    return RowGrad(indices, values)


def densify_rows(g: RowGrad, param):
    """The dense gradient: repeated rows summed in the order they appear."""
    dense = np.zeros(param.shape, param.dtype)
    np.add.at(dense, np.asarray(g.indices), np.asarray(g.values, param.dtype))
    return dense


class RowsBook:
    """Modes and counters of the parameters that take row-sparse gradients, and the steps that use them.

    The optimizer hands each step's buckets (see ``RMSProp._apply``) here: :meth:`check` validates every
    row-sparse part of the step before anything is written, :meth:`take` runs a bucket that has a
    row-sparse gradient or counters, and returns False for the others, which the optimizer runs as before."""

    def __init__(self, sparse_mode):
        check_sparse_mode("sparse_mode", sparse_mode)
        self.sparse_mode = sparse_mode
        self.modes = {}      # param index -> rows mode
        self.last_step = {}  # param index -> int64 [rows]
        self.step = {}       # param index -> int64 [1]

    # ---- gradients
    def normalize(self, opt, grads, densify):
        """``grads`` with each ``(indices, values)`` a RowGrad, or, when ``densify`` (the optimizer transforms
        gradients in Python: clipping, accumulation, the finite check), its dense equivalent."""
        if not isinstance(grads, (list, tuple)) or len(grads) != len(opt._views):
            return grads  # the optimizer names the problem
        out = list(grads)
        for i, g in enumerate(out):
            rows = as_row_grad(f"grads[{i}]", g, opt._views[i])
            if rows is not None:
                out[i] = densify_rows(rows, opt._views[i]) if densify else rows
        return out

    def mode_of(self, opt, i):
        if i not in self.modes:
            hp = opt.param_groups[opt._owner[i]]
            try:
                self.modes[i] = rows_mode(hp.get("sparse_mode") or self.sparse_mode,
                                          momentum=opt._effective_momentum(hp), weight_decay=opt._effective_wd(hp),
                                          clip_weights=hp["clip_weights"])
            except ValueError as e:
                raise ValueError(f"grads[{i}]: {e}") from None
        return self.modes[i]

    def _rule(self, opt, b, pos, lr, rescale):
        kw = b["kw"]
        return dict(lr=lr[pos] if isinstance(lr, list) else lr, rho=kw["rho"], epsilon=kw["epsilon"],
                    momentum=kw["momentum"], centered=kw["centered"], clip_gradient=kw["clip_gradient"],
                    clip_weights=kw["clip_weights"], eps_in_sqrt=opt.eps_in_sqrt, lr_in_momentum=opt.lr_in_momentum,
                    weight_decay=b["wd"][pos] if isinstance(b["wd"], list) else b["wd"],
                    weight_decay_mode=opt.weight_decay_mode, rescale_grad=rescale,
                    clip_after_weight_decay=opt.clip_after_weight_decay)

    @staticmethod
    def _state(b, pos):
        return (b["params"][pos], b["ms"][pos], b["mom"][pos] if b["mom"] is not None else None,
                b["mg"][pos] if b["mg"] is not None else None)

    def check(self, opt, plans, rescale):
        """Validate every row-sparse gradient of a step (``plans``: a BucketStep per bucket)."""
        for b, lr, grads in plans:
            for pos, (i, g) in enumerate(zip(b["idx"], grads)):
                if not isinstance(g, RowGrad):
                    continue
                mode = self.mode_of(opt, i)
                param, ms, mom, mg = self._state(b, pos)
                last, step = self.last_step.get(i), self.step.get(i)
                if mode != "dense" and last is None:  # counters are made by the first write
                    last, step = np.zeros(param.shape[0], np.int64), np.zeros(1, np.int64)
                try:
                    _rows_call(param, g.indices, g.values, ms, last_step=last, step=step, mode=mode, moment=mom,
                               mean_grad=mg, master_param=None, lr_mult=1.0, skip_update=False, check_only=True,
                               **self._rule(opt, b, pos, lr, rescale))
                except (TypeError, ValueError) as e:
                    raise type(e)(f"grads[{i}]: {e}") from None

    def take(self, opt, plan, rescale):
        """Run a BucketStep if a member has a row-sparse gradient or counters; False otherwise.

        Dense gradients of members with counters first bring their rows up to date (the dense step moves
        every row), then go through one multi-tensor call with the bucket's other dense gradients."""
        b, lr, grads = plan
        if not any(isinstance(g, RowGrad) for g in grads) and not any(i in self.last_step for i in b["idx"]):
            return False
        dense = []
        for pos, (i, g) in enumerate(zip(b["idx"], grads)):
            param, ms, mom, mg = self._state(b, pos)
            rule = self._rule(opt, b, pos, lr, rescale)
            if isinstance(g, RowGrad):
                mode = self.mode_of(opt, i)
                if mode != "dense" and i not in self.last_step:
                    self.last_step[i] = np.zeros(param.shape[0], np.int64)
                    self.step[i] = np.zeros(1, np.int64)
                rmsprop_rows_(param, g.indices, g.values, ms, last_step=self.last_step.get(i), step=self.step.get(i),
                              mode=mode, moment=mom, mean_grad=mg, **rule)
            else:
                self._catch_up(opt, i, param, ms, mom, mg, rule)
                dense.append(pos)
        if dense:
            pick = lambda xs: None if xs is None else [xs[p] for p in dense]  # noqa: E731
            rule = self._rule(opt, b, 0, lr, rescale)
            rule["lr"] = [lr[p] for p in dense] if isinstance(lr, list) else lr
            rule["weight_decay"] = pick(b["wd"]) if isinstance(b["wd"], list) else b["wd"]
            rmsprop_multi_(pick(b["params"]), [grads[p] for p in dense], pick(b["ms"]), moments=pick(b["mom"]),
                           mean_grads=pick(b["mg"]), **rule)
            for p in dense:
                i = b["idx"][p]
                if i in self.last_step:  # every row took this step
                    self.step[i] += 1
                    self.last_step[i].fill(int(self.step[i][0]))
        return True

    def _catch_up(self, opt, i, param, ms, mom, mg, rule):
        if i not in self.last_step:
            return
        catch_up_rows_(param, ms, last_step=self.last_step[i], step=self.step[i], rho=rule["rho"],
                       mode=self.mode_of(opt, i), momentum=rule["momentum"], moment=mom, centered=rule["centered"],
                       mean_grad=mg, lr=rule["lr"], lr_in_momentum=rule["lr_in_momentum"])

    def catch_up_all(self, opt, lr_step):
        """Every parameter with counters brought up to date; the lazy moves scaled by the learning rate of
        step ``lr_step`` where lr is outside the momentum."""
        group_lr = opt.learning_rates(lr_step)
        for b in opt._buckets:
            for pos, i in enumerate(b["idx"]):
                if i in self.last_step:
                    param, ms, mom, mg = self._state(b, pos)
                    lr = group_lr[opt._owner[i]] * float(b["lr_mult"][pos])
                    self._catch_up(opt, i, param, ms, mom, mg, self._rule(opt, b, pos, lr, 1.0))

    # ---- checkpoints
    def state_arrays(self):
        out = {}
        for i in sorted(self.last_step):
            out[f"last_step.{i}"] = self.last_step[i]
            out[f"rows_step.{i}"] = self.step[i]
        return out

    def prepare_load(self, keys, views):
        """Counters (zeros, to be overwritten) for every parameter a checkpoint holds them for, so that the
        checkpoint's keys match this optimizer's."""
        for key in keys:
            if not key.startswith("last_step."):
                continue
            try:
                i = int(key.split(".", 1)[1])
            except ValueError:
                continue
            if 0 <= i < len(views) and views[i].ndim >= 1 and i not in self.last_step:
                self.last_step[i] = np.zeros(views[i].shape[0], np.int64)
                self.step[i] = np.zeros(1, np.int64)


def check_sparse_mode(name, value):
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a str, got {type(value).__name__} ({value!r})")
    if value not in SPARSE_MODES:
        raise ValueError(f"{name}: expected one of {list(SPARSE_MODES)}, got {value!r}")
