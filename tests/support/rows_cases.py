"""Shared data for the row-sparse tests: gradient streams, tables and their state, and the runners that
drive the core's rows API and the dense API side by side."""

from __future__ import annotations

import dataclasses

import numpy as np

import rmsprop_ops


@dataclasses.dataclass
class Table:
    """A parameter table and its state (None where a buffer is absent)."""

    param: np.ndarray
    mean_square: np.ndarray
    moment: np.ndarray | None = None
    mean_grad: np.ndarray | None = None
    master_param: np.ndarray | None = None
    last_step: np.ndarray | None = None
    step: np.ndarray | None = None

    def copy(self) -> "Table":
        return Table(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).copy()
                        for f in dataclasses.fields(self)})

    def state_kwargs(self) -> dict:
        """The state buffers as keyword arguments, with centered=True when the table has a mean gradient."""
        return dict(moment=self.moment, mean_grad=self.mean_grad, master_param=self.master_param,
                    centered=self.mean_grad is not None)


def make_table(rng, shape, dtype=np.float32, *, moment=False, centered=False, master=False, counters=True,
               ms_init=0.0) -> Table:
    sdt = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    p32 = rng.standard_normal(shape).astype(np.float32)
    return Table(
        param=p32.astype(dtype) if np.dtype(dtype) != np.float64 else rng.standard_normal(shape),
        mean_square=np.full(shape, ms_init, sdt),
        moment=np.zeros(shape, sdt) if moment else None,
        mean_grad=np.zeros(shape, sdt) if centered else None,
        master_param=p32.copy() if master else None,
        last_step=np.zeros(shape[0], np.int64) if counters else None,
        step=np.zeros(1, np.int64) if counters else None,
    )


@dataclasses.dataclass
class Grad:
    indices: np.ndarray
    values: np.ndarray


def grad_stream(seed, nrows, row_shape, steps, dtype=np.float32, *, max_rows=8, cold=()):
    """Gradients that touch random rows, repeat rows within a step, are sometimes empty, and leave the
    ``cold`` rows alone except at the first and last steps (long gaps)."""
    rng = np.random.default_rng(seed)
    cold = list(cold)
    warm = np.setdiff1d(np.arange(nrows), cold)
    out = []
    for t in range(steps):
        n = int(rng.integers(0, max_rows + 1)) if t % 7 else 0  # every 7th step is empty
        idx = rng.choice(warm, n) if n else np.zeros(0, np.int64)
        if n > 2:
            idx[1] = idx[0]  # a repeated row
        if cold and t in (0, steps - 2):
            idx = np.concatenate([idx, cold])
        vals = rng.standard_normal((len(idx),) + tuple(row_shape)).astype(dtype)
        out.append(Grad(idx.astype(np.int64), vals))
    return out


def dense_grad(g: Grad, shape, dtype):
    """The gradient as a dense array: repeated rows summed in order, in the gradient's dtype."""
    dense = np.zeros(shape, dtype)
    np.add.at(dense, g.indices, g.values)
    return dense


def _rule(hyper):
    return {k: v for k, v in hyper.items() if k != "centered"}


def step_rows(table: Table, g: Grad, mode, **hyper):
    hyper = _rule(hyper)
    rmsprop_ops.rmsprop_rows_(table.param, g.indices, g.values, table.mean_square, last_step=table.last_step,
                              step=table.step, mode=mode, **table.state_kwargs(), **hyper)


def step_dense(table: Table, g: Grad, **hyper):
    hyper = _rule(hyper)
    mult = hyper.pop("lr_mult", 1.0)
    if mult != 1.0:
        hyper["lr"] = [hyper["lr"] * mult]
        rmsprop_ops.rmsprop_multi_([table.param], [dense_grad(g, table.param.shape, table.param.dtype)],
                                   [table.mean_square], moments=[table.moment] if table.moment is not None else None,
                                   mean_grads=[table.mean_grad] if table.mean_grad is not None else None,
                                   centered=table.mean_grad is not None, **hyper)
        return
    rmsprop_ops.rmsprop_(table.param, dense_grad(g, table.param.shape, table.param.dtype), table.mean_square,
                         **table.state_kwargs(), **hyper)


def catch_up(table: Table, mode, **hyper):
    keep = ("rho", "momentum", "lr", "lr_in_momentum", "lr_mult")
    rmsprop_ops.catch_up_rows_(table.param, table.mean_square, last_step=table.last_step, step=table.step,
                               mode=mode, **table.state_kwargs(), **{k: v for k, v in hyper.items() if k in keep})
