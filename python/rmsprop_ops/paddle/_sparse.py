"""SelectedRows gradients (``paddle.nn.Embedding(sparse=True)``) in dynamic mode: the core's rows update.

Paddle's sparse RMSProp kernel sums repeated rows and then runs the dense rule over every row, absent rows
with a zero gradient. The core's rows update (:func:`rmsprop_ops.rmsprop_rows_`) takes the gradient's rows
and values as they are (through DLPack, no dense copy, no Paddle merge) and, per ``sparse_mode``, either
catches skipped rows up in closed form when they are next touched ("exact": Paddle's numbers at a cost
that follows the rows touched) or steps every row ("dense": Paddle's numbers, where momentum, weight decay
or ``clip_weights`` leave no closed form). "lazy" also catches momentum moves up (docs/sparse.md).

The rows path runs on CPU tensors (each parameter's accumulators, which with flat state are views of
its slices of the flat buffers); elsewhere the gradient is densified for the dense op, as before. Checkpoints: :meth:`SparseRows.catch_up` brings every row up to date, so Paddle's
accumulators then hold the dense state and the counters restart with the loaded state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import paddle

from .._rows import _rows_call, catch_up_rows_
from .._rows_optimizer import check_sparse_mode, rows_mode
from ._param_attrs import NO_DECAY, fusable_lr_mult, fused_decay

__all__ = ["SparseRows"]

# Rule options the rows update does not model (its catch-up has no update count and no look-ahead).
_NOT_IN_ROWS = ("nesterov", "bias_correction")


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

    ``route`` (at the start of a pass) picks, for every SelectedRows gradient, the rows mode or the dense
    fallback; ``prepare`` (in place of the op of such a parameter) builds its update; ``check`` validates
    every prepared update before the step writes anything and ``run`` applies them. What belongs to one
    pass (the modes, the prepared calls) is the pass's (``_launch.Step``); this object keeps the counters
    and what a catch-up needs, across steps."""

    def __init__(self, sparse_mode):
        check_sparse_mode("sparse_mode", sparse_mode)
        self.sparse_mode = sparse_mode
        self.counters = {}  # param name -> _Counters
        self.tables = {}    # param name -> _Table, for catch-up

    # ---- step
    def route(self, opt, pairs, rule, densify):
        """``pairs`` with the SelectedRows gradients that take the rows update kept and the others made
        dense by ``densify(param, grad)``, and the rows mode of each kept one (parameter name -> mode);
        ``rule``: the pass's ``_args.Rule``. Raises ValueError, before anything is written, for a
        ``sparse_mode`` a parameter's rule cannot follow."""
        out, modes = [], {}
        for param, grad in pairs:
            if isinstance(grad, paddle.Tensor) and grad.is_selected_rows():
                mode = self._mode(opt, param, rule)
                if mode is None:
                    grad = densify(param, grad)
                else:
                    modes[param.name] = mode
            out.append((param, grad))
        return out, modes

    def _mode(self, opt, param, rule):
        if not param.place.is_cpu_place() or len(param.shape) < 1:
            return None
        lacking = [name for name in _NOT_IN_ROWS if getattr(rule.resolved, name)]
        if lacking:
            if self.sparse_mode in ("exact", "lazy"):
                raise ValueError(f"{param.name}: sparse_mode: expected 'auto' or 'dense' with {lacking[0]}=True "
                                 f"(the rows update has no {lacking[0]}; those make the gradient dense for the "
                                 f"dense op), got {self.sparse_mode!r}")
            return None
        decay = fused_decay(param, opt.regularization) or NO_DECAY
        try:
            return rows_mode(self.sparse_mode, momentum=rule.op_attrs()["momentum"], weight_decay=decay.coeff,
                             clip_weights=rule.clip_weights)
        except ValueError as e:
            raise ValueError(f"{param.name}: {e}") from None

    def prepare(self, opt, param, grad, mode, rule, decay, clip, master, skip):
        """``param``'s update in rows ``mode`` (a RowsCall for :meth:`check` and :meth:`run`): ``rule``
        (``_args.Rule``), ``decay`` (``_param_attrs.Decay``) and the value-clip bound as the dense op would
        have them."""
        attrs = rule.op_attrs()  # the convention's momentum and eps placement for this rule
        rho, epsilon, momentum, centered = rule.rho, rule.epsilon, attrs["momentum"], rule.centered
        target = param if master is None else master
        accumulators = tuple(opt._accumulators[opt._acc_name(k)][target.name]
                             for k in ("mean_square", "momentum", "mean_grad"))
        mult = fusable_lr_mult(param)
        lr = opt._global_learning_rate() if mult is not None else opt._create_param_lr((param, grad))
        lr_mult = 1.0 if mult is None else mult
        coeff, wd_mode = decay
        name = param.name
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
            step=None if counters is None else counters.step, eps_in_sqrt=attrs["eps_in_sqrt"],
            lr_in_momentum=attrs["lr_in_momentum"], weight_decay=float(coeff),
            weight_decay_mode=("l2", "l1", "decoupled")[wd_mode], rescale_grad=1.0, clip_gradient=clip,
            clip_weights=rule.clip_weights, clip_after_weight_decay=attrs["clip_after_weight_decay"],
            skip_update=False if skip is None else skip)
        rows = np.asarray(grad.rows(), dtype=np.int64)
        values = grad._get_tensor_from_selected_rows()
        if rule.resolved.maximize:  # the rows API takes no maximize; negating first is the same rule
            values = paddle.scale(values, -1.0)
        return RowsCall(name, (param, rows, values, ms), kwargs)

    def _counters(self, param, mode):
        if mode == "dense":
            return None
        c = self.counters.get(param.name)
        if c is None or c.mode != mode:
            c = _Counters(paddle.zeros([int(param.shape[0])], dtype="int64"), paddle.zeros([1], dtype="int64"), mode)
            self.counters[param.name] = c
        return c

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
                           lr_in_momentum=opt._rule.lr_in_momentum)

    def reset(self):
        """Loaded state is current for every row: counters start again."""
        self.counters, self.tables = {}, {}
