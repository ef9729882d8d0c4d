"""Row-sparse gradients in the neutral optimizer (:class:`rmsprop_ops.RMSProp`).

A gradient given as :class:`RowGrad` (or an ``(indices, values)`` tuple) for a parameter of rows is applied
by :func:`rmsprop_ops.rmsprop_rows_` with the rule of the parameter's launch. Which rows mode a parameter
takes follows ``sparse_mode`` and its rule (:func:`rows_mode`); the exact and lazy modes keep a per-row
step counter and a step counter per parameter, created at the parameter's first row-sparse gradient and
saved in ``state_dict()`` (``last_step.<i>``, ``rows_step.<i>``) with the state as it stands, so a restored
run continues bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._rows import _rows_call, catch_up_rows_, rmsprop_rows_

__all__ = ["RowGrad", "SPARSE_MODES", "RowsBook", "RowsStep", "rows_mode", "check_sparse_mode"]

SPARSE_MODES = ("auto", "dense", "exact", "lazy")


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


@dataclass(frozen=True)
class RowUpdate:
    """One parameter's row-sparse update in a step, validated."""

    member: int
    grad: RowGrad
    mode: str
    rule: dict


@dataclass
class RowsStep:
    """The row-sparse side of one step: the updates, and the members with counters that take a dense
    gradient (caught up before the dense launches, all their rows current after them)."""

    book: "RowsBook"
    updates: list
    dense_counted: list

    def before_dense(self, opt, rates):
        for i in self.dense_counted:
            self.book.catch_up(opt, i, rates)

    def after_dense(self, opt):
        for u in self.updates:
            self.book.run(opt, u)
        for i in self.dense_counted:  # every row took this step
            self.book.step[i] += 1
            self.book.last_step[i].fill(int(self.book.step[i][0]))


class RowsBook:
    """Modes and counters of the parameters that take row-sparse gradients.

    The optimizer asks :meth:`normalize` for a step's gradients (row-sparse ones as RowGrad, or dense
    where the optimizer transforms gradients in Python), then :meth:`split`, which validates every
    row-sparse update and returns the dense gradients for the launches and a :class:`RowsStep`."""

    def __init__(self, sparse_mode):
        check_sparse_mode("sparse_mode", sparse_mode)
        self.sparse_mode = sparse_mode
        self.modes = {}      # member -> rows mode
        self.last_step = {}  # member -> int64 [rows]
        self.step = {}       # member -> int64 [1]
        self._where = None   # member -> (LaunchPlan, position)

    # ---- gradients
    def normalize(self, opt, grads, densify):
        if not isinstance(grads, (list, tuple)) or len(grads) != len(opt._views):
            return grads  # the optimizer names the problem
        out = list(grads)
        for i, g in enumerate(out):
            rows = as_row_grad(f"grads[{i}]", g, opt._views[i])
            if rows is not None:
                out[i] = densify_rows(rows, opt._views[i]) if densify else rows
        return out

    def _plan_of(self, opt, i):
        if self._where is None:
            self._where = {m: (plan, k) for plan in opt._plans for k, m in enumerate(plan.members)}
        return self._where[i]

    def mode_of(self, opt, i):
        if i not in self.modes:
            plan, k = self._plan_of(opt, i)
            hp = opt.param_groups[opt._owners[i]]
            wd = plan.weight_decay[k] if isinstance(plan.weight_decay, list) else plan.weight_decay
            try:
                self.modes[i] = rows_mode(hp.get("sparse_mode") or self.sparse_mode, momentum=plan.key.momentum,
                                          weight_decay=wd, clip_weights=plan.key.clip_weights)
            except ValueError as e:
                raise ValueError(f"grads[{i}]: {e}") from None
        return self.modes[i]

    def rule_of(self, opt, i, rates):
        """The rule arguments of member ``i``'s row update (its launch's), ``rates`` the groups' rates."""
        plan, k = self._plan_of(opt, i)
        key, r = plan.key, opt.rule
        return dict(lr=float(rates[opt._owners[i]] * plan.lr_mults[k]), rho=key.rho, epsilon=key.epsilon,
                    momentum=key.momentum, centered=key.centered, clip_gradient=key.clip_gradient,
                    clip_weights=key.clip_weights, eps_in_sqrt=key.eps_in_sqrt, lr_in_momentum=r.lr_in_momentum,
                    weight_decay=plan.weight_decay[k] if isinstance(plan.weight_decay, list) else plan.weight_decay,
                    weight_decay_mode=r.weight_decay_mode, rescale_grad=opt._gradient.core_rescale,
                    clip_after_weight_decay=r.clip_after_weight_decay)

    def _state(self, opt, i):
        s = opt._slots
        return opt._views[i], s.mean_square[i], s.moment[i], s.mean_grad[i]

    def split(self, opt, grads, rates):
        """``(dense grads, RowsStep)``: the dense gradients for the launches (None for the row-sparse
        ones), and the row-sparse updates, each validated as the core would (indices, values, counters,
        the mode's conditions) before anything of the step is written."""
        if not any(isinstance(g, RowGrad) for g in grads) and not self.last_step:
            return grads, None
        dense, updates = list(grads), []
        for i, g in enumerate(grads):
            if not isinstance(g, RowGrad):
                continue
            dense[i] = None
            mode = self.mode_of(opt, i)
            rule = self.rule_of(opt, i, rates)
            param, ms, mom, mg = self._state(opt, i)
            last, step = self.last_step.get(i), self.step.get(i)
            if mode != "dense" and last is None:  # counters are made at the first write
                last, step = np.zeros(param.shape[0], np.int64), np.zeros(1, np.int64)
            try:
                _rows_call(param, g.indices, g.values, ms, last_step=last, step=step, mode=mode, moment=mom,
                           mean_grad=mg, master_param=None, lr_mult=1.0, skip_update=False, check_only=True, **rule)
            except (TypeError, ValueError) as e:
                raise type(e)(f"grads[{i}]: {e}") from None
            updates.append(RowUpdate(i, g, mode, rule))
        counted = [i for i in self.last_step if dense[i] is not None]
        return dense, RowsStep(self, updates, counted)

    def run(self, opt, u: RowUpdate):
        param, ms, mom, mg = self._state(opt, u.member)
        if u.mode != "dense" and u.member not in self.last_step:
            self.last_step[u.member] = np.zeros(param.shape[0], np.int64)
            self.step[u.member] = np.zeros(1, np.int64)
        rmsprop_rows_(param, u.grad.indices, u.grad.values, ms, last_step=self.last_step.get(u.member),
                      step=self.step.get(u.member), mode=u.mode, moment=mom, mean_grad=mg, **u.rule)

    def catch_up(self, opt, i, rates):
        """Member ``i``'s rows up to its step (lazy moves scaled by ``rates``' rate where lr is outside
        the momentum)."""
        if i not in self.last_step:
            return
        param, ms, mom, mg = self._state(opt, i)
        rule = self.rule_of(opt, i, rates)
        catch_up_rows_(param, ms, last_step=self.last_step[i], step=self.step[i], rho=rule["rho"],
                       mode=self.mode_of(opt, i), momentum=rule["momentum"], moment=mom, centered=rule["centered"],
                       mean_grad=mg, lr=rule["lr"], lr_in_momentum=rule["lr_in_momentum"])

    # ---- checkpoints
    def state_arrays(self):
        out = {}
        for i in sorted(self.last_step):
            out[f"last_step.{i}"] = self.last_step[i]
            out[f"rows_step.{i}"] = self.step[i]
        return out

    def split_state(self, state, views):
        """``state`` without its counters, and the counters checked (int64, one per row of their param):
        ``{member: (last_step, step)}``. Writes nothing."""
        if not hasattr(state, "keys"):
            return state, {}
        rest, counters = {}, {}
        for key in state.keys():
            kind, _, index = key.partition(".")
            if kind not in ("last_step", "rows_step"):
                rest[key] = state[key]
                continue
            i = int(index) if index.isdigit() else -1
            if not 0 <= i < len(views) or views[i].ndim < 1:
                raise ValueError(f"state: unexpected key {key!r} (no parameter of rows at position {index})")
            v = np.asarray(state[key])
            want = (views[i].shape[0],) if kind == "last_step" else (1,)
            if v.shape != want or v.dtype != np.int64:
                raise ValueError(f"state[{key!r}]: expected shape {want} and dtype int64, got shape {v.shape} and "
                                 f"dtype {v.dtype}")
            counters.setdefault(i, [None, None])[0 if kind == "last_step" else 1] = v
        for i, (last, step) in counters.items():
            if last is None or step is None:
                raise ValueError(f"state: expected both last_step.{i} and rows_step.{i}, got one")
            if last.min(initial=0) < 0 or last.max(initial=0) > step[0]:
                raise ValueError(f"state['last_step.{i}']: expected counts in [0, rows_step.{i}={step[0]}]")
        return rest, counters

    def load(self, counters):
        """Counters from :meth:`split_state` replace this book's (members without them: all rows current)."""
        self.last_step = {i: np.array(last) for i, (last, _) in counters.items()}
        self.step = {i: np.array(step) for i, (_, step) in counters.items()}


def check_sparse_mode(name, value):
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a str, got {type(value).__name__} ({value!r})")
    if value not in SPARSE_MODES:
        raise ValueError(f"{name}: expected one of {list(SPARSE_MODES)}, got {value!r}")
