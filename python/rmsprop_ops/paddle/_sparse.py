"""SelectedRows gradients (``paddle.nn.Embedding(sparse=True)``) in dynamic mode: the core's rows update.

Paddle's sparse RMSProp kernel sums repeated rows and then runs the dense rule over every row, absent rows
with a zero gradient. The core's rows update (:func:`rmsprop_ops.rmsprop_rows_`) takes the gradient's rows
and values as they are (through DLPack, no dense copy, no Paddle merge) and, per ``sparse_mode``, either
catches skipped rows up in closed form when they are next touched ("exact": Paddle's numbers at a cost
that follows the rows touched) or steps every row ("dense": Paddle's numbers, where momentum, weight decay
or ``clip_weights`` leave no closed form). "lazy" also catches momentum moves up (docs/sparse.md).

The rows path runs on CPU tensors; elsewhere, and for flat state, the gradient is densified for the
dense op, as before. Checkpoints: :meth:`SparseRows.catch_up` brings every row up to date, so Paddle's
accumulators then hold the dense state and the counters restart with the loaded state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import paddle

from .._rows import _rows_call, catch_up_rows_
from .._rows_optimizer import check_sparse_mode, rows_mode

__all__ = ["SparseRows"]

_HP = ("rho", "epsilon", "momentum", "centered")


class RowsCall(NamedTuple):
    """One parameter's row-sparse update of a step, ready to check and to run."""

    name: str
    args: tuple   # param, indices, values, mean_square
    kwargs: dict  # everything else of _rows_call


class _Counters(NamedTuple):
    last_step: paddle.Tensor
    step: paddle.Tensor
    mode: str


class _Table(NamedTuple):
    """What a catch-up of one parameter needs, as its last update had it."""

    param: paddle.Tensor
    mean_square: paddle.Tensor
    moment: paddle.Tensor
    mean_grad: paddle.Tensor | None
    master: paddle.Tensor | None
    rho: float
    momentum: float
    lr: object
    lr_mult: float


class SparseRows:
    """The row-sparse side of one :class:`rmsprop_ops.paddle.RMSProp`.

    ``route`` (at the start of a step) picks, for every SelectedRows gradient, the rows mode or the dense
    fallback; ``defer`` (in place of the op of such a parameter) prepares its update; ``check`` validates
    every prepared update before the step writes anything and ``run`` applies them."""

    def __init__(self, sparse_mode):
        check_sparse_mode("sparse_mode", sparse_mode)
        self.sparse_mode = sparse_mode
        self.modes = {}     # param name -> rows mode, this step
        self.counters = {}  # param name -> _Counters
        self.tables = {}    # param name -> _Table, for catch-up
        self.pending = []   # RowsCall of this step

    # ---- step
    def route(self, opt, pairs, hp, densify):
        """``pairs`` with the SelectedRows gradients that take the rows update kept and the others made
        dense by ``densify(param, grad)``. Raises ValueError, before anything is written, for a
        ``sparse_mode`` a parameter's rule cannot follow."""
        self.modes, self.pending = {}, []
        out = []
        for param, grad in pairs:
            if isinstance(grad, paddle.Tensor) and grad.is_selected_rows():
                mode = self._mode(opt, param, grad, hp)
                if mode is None:
                    grad = densify(param, grad)
                else:
                    self.modes[param.name] = mode
            out.append((param, grad))
        return out

    def _mode(self, opt, param, grad, hp):
        if not param.place.is_cpu_place() or len(param.shape) < 1:
            return None
        if opt._flat_state:
            return None  # the state is (or will be) a slice of a shared buffer
        coeff = opt._decay.get(param.name, (0.0, 0))[0]
        try:
            return rows_mode(self.sparse_mode, momentum=float(hp[2]), weight_decay=float(coeff),
                             clip_weights=None if opt._clip_weights < 0 else opt._clip_weights)
        except ValueError as e:
            raise ValueError(f"{param.name}: {e}") from None

    def defer(self, opt, param, grad, hp, coeff, wd_mode, clip, master, accumulators, lr, lr_mult, skip):
        """Prepare ``param``'s update (run by :meth:`run`)."""
        rho, epsilon, momentum, centered = hp
        name = param.name
        mode = self.modes[name]
        counters = self._counters(param, mode)
        dl = lambda t: None if t is None else t.detach()  # noqa: E731 (DLPack refuses tensors needing grad)
        ms, mom, mg = (dl(t) for t in accumulators)
        mg = mg if centered else None
        param, master = dl(param), dl(master)
        if counters is not None:
            self.tables[name] = _Table(param, ms, mom, mg, master, float(rho), float(momentum), lr, lr_mult)
        kwargs = dict(
            lr=lr, lr_mult=lr_mult, rho=float(rho), epsilon=float(epsilon), momentum=float(momentum),
            centered=bool(centered), mode=mode, moment=mom, mean_grad=mg, master_param=master, last_step=None if counters is None else counters.last_step,
            step=None if counters is None else counters.step, eps_in_sqrt=opt._eps_in_sqrt,
            lr_in_momentum=opt._lr_in_momentum, weight_decay=float(coeff), weight_decay_mode=("l2", "l1")[wd_mode],
            rescale_grad=1.0, clip_gradient=clip, clip_weights=None if opt._clip_weights < 0 else opt._clip_weights,
            clip_after_weight_decay=False, skip_update=False if skip is None else skip)
        rows = np.asarray(grad.rows(), dtype=np.int64)
        values = grad._get_tensor_from_selected_rows()
        self.pending.append(RowsCall(name, (param, rows, values, ms), kwargs))

    def _counters(self, param, mode):
        if mode == "dense":
            return None
        c = self.counters.get(param.name)
        if c is None or c.mode != mode:
            c = _Counters(paddle.zeros([int(param.shape[0])], dtype="int64"), paddle.zeros([1], dtype="int64"), mode)
            self.counters[param.name] = c
        return c

    def take(self):
        pending, self.pending = self.pending, []
        return pending

    @staticmethod
    def check(calls):
        """Validate every update (indices, values, counters, state) before any of them writes."""
        for call in calls:
            try:
                _rows_call(*call.args, **call.kwargs, check_only=True)
            except (TypeError, ValueError) as e:
                raise type(e)(f"{call.name}: Grad: {e}") from None

    @staticmethod
    def run(calls):
        for call in calls:
            _rows_call(*call.args, **call.kwargs)

    # ---- checkpoints
    def catch_up(self, opt):
        """Every row of every parameter with counters brought up to its step, with the rule of its last
        update (in "lazy" mode the parameters make their pending momentum moves, scaled by that update's
        learning rate where lr is outside the momentum); the counters then say every row is current."""
        for name, c in self.counters.items():
            t = self.tables[name]
            lr = float(np.asarray(t.lr).reshape(-1)[0]) if hasattr(t.lr, "__dlpack__") else float(t.lr)
            catch_up_rows_(t.param, t.mean_square, last_step=c.last_step, step=c.step, rho=t.rho, mode=c.mode,
                           momentum=t.momentum, moment=t.moment, centered=t.mean_grad is not None,
                           mean_grad=t.mean_grad, master_param=t.master, lr=lr, lr_mult=t.lr_mult,
                           lr_in_momentum=opt._lr_in_momentum)

    def reset(self):
        """Loaded state is current for every row: counters start again."""
        self.counters, self.tables = {}, {}
