"""A float64 NumPy reference of row-sparse RMSProp (:func:`rmsprop_ops.rmsprop_rows_`), for tests.

Written from the dense reference (:func:`rmsprop_ops.reference.rmsprop_step`) and shares no code with the
kernels: a skipped step is the dense step with a zero gradient, applied once per skipped step
(:func:`rows_step`), and :func:`closed_form` is the documented formula for ``k`` of them at once.

Example:
    >>> import numpy as np
    >>> from rmsprop_ops.reference_rows import closed_form
    >>> closed_form(dict(param=1.0, mean_square=4.0, moment=0.5), k=2, rho=0.5, momentum=0.5)["param"]
    0.625
"""

from __future__ import annotations

import numpy as np

from .reference import rmsprop_step

__all__ = ["merge", "rows_step", "catch_up", "closed_form"]

_STATE = ("param", "mean_square", "moment", "mean_grad")


def merge(indices, values, nrows):
    """The gradient as a dense float64 array of ``nrows`` rows: repeated indices summed, in order."""
    values = np.asarray(values, np.float64)
    dense = np.zeros((nrows,) + values.shape[1:])
    for i, row in enumerate(np.asarray(indices).tolist()):
        dense[row] += values[i]
    return dense


def _zero_steps(state, rows, k, rule):
    """``k`` dense steps with a zero gradient on ``rows`` of ``state`` (a dict of float64 arrays)."""
    for _ in range(k):
        sub = {name: None if state[name] is None else state[name][rows] for name in _STATE}
        out = rmsprop_step(sub["param"], np.zeros_like(sub["param"]), sub["mean_square"], moment=sub["moment"],
                           mean_grad=sub["mean_grad"], **rule)
        for name in _STATE:
            if state[name] is not None:
                state[name][rows] = out[name]


def _state(param, mean_square, moment, mean_grad):
    f = lambda a: None if a is None else np.array(a, np.float64)  # noqa: E731 (a copy in float64)
    return {"param": f(param), "mean_square": f(mean_square), "moment": f(moment), "mean_grad": f(mean_grad)}


def rows_step(param, indices, values, mean_square, *, mode, lr, rho, epsilon, last_step=None, step=None,
              momentum=0.0, moment=None, centered=False, mean_grad=None, **rule) -> dict:
    """One row-sparse step in float64: ``mode`` "dense" steps every row (absent rows with a zero
    gradient); "exact" and "lazy" first step each given row through its ``step - last_step[row]`` skipped
    steps (zero gradient, one at a time, with this call's ``lr``), then apply the gradient. Returns the new
    param, mean_square, moment, mean_grad, last_step and step (None where absent); ``rule`` takes the
    other options of :func:`rmsprop_ops.reference.rmsprop_step`."""
    s = _state(param, mean_square, moment, mean_grad)
    nrows = s["param"].shape[0]
    rule = dict(rule, lr=lr, rho=rho, epsilon=epsilon, momentum=momentum, centered=centered)
    grad = merge(indices, values, nrows)
    if mode == "dense":
        rows = np.arange(nrows)
    else:
        rows = np.unique(np.asarray(indices, np.int64))
        last, t = np.array(last_step, np.int64), int(np.asarray(step).reshape(-1)[0])
        for row in rows.tolist():
            _zero_steps(s, [row], t - int(last[row]), rule)
        last[rows] = t + 1
    out = rmsprop_step(s["param"][rows], grad[rows], s["mean_square"][rows],
                       moment=None if s["moment"] is None else s["moment"][rows],
                       mean_grad=None if s["mean_grad"] is None else s["mean_grad"][rows], **rule)
    for name in _STATE:
        if s[name] is not None:
            s[name][rows] = out[name]
    if mode != "dense":
        s["last_step"], s["step"] = last, np.array([t + 1])
    else:
        s["last_step"], s["step"] = None, None
    return s


def catch_up(param, mean_square, *, last_step, step, lr, rho, momentum=0.0, moment=None, centered=False,
             mean_grad=None, rows=None, **rule) -> dict:
    """Every row (or ``rows``) stepped through its skipped steps with a zero gradient, in float64;
    counters set to ``step``. Returns the new state and last_step."""
    s = _state(param, mean_square, moment, mean_grad)
    rule = dict(rule, lr=lr, rho=rho, epsilon=1e-6, momentum=momentum, centered=centered)
    last, t = np.array(last_step, np.int64), int(np.asarray(step).reshape(-1)[0])
    for row in (range(len(last)) if rows is None else np.unique(rows).tolist()):
        _zero_steps(s, [row], t - int(last[row]), rule)
        last[row] = t
    s["last_step"] = last
    return s


def closed_form(state: dict, *, k, rho, momentum=0.0, step_scale=1.0, move=True) -> dict:
    """The documented formula for ``k`` skipped steps of one row (docs/sparse.md), in float64::

        mean_square *= rho**k;  mean_grad *= rho**k
        param -= step_scale * moment * (momentum + momentum**2 + ... + momentum**k)   (when move)
        moment *= momentum**k

    ``state`` maps any of param, mean_square, moment, mean_grad to numbers or arrays."""
    out = {name: None if v is None else np.float64(v) * 1.0 for name, v in state.items()}
    decay = float(rho) ** k
    for name in ("mean_square", "mean_grad"):
        if out.get(name) is not None:
            out[name] = out[name] * decay
    if out.get("moment") is not None:
        geometric = sum(float(momentum) ** i for i in range(1, k + 1))
        if move and out.get("param") is not None:
            out["param"] = out["param"] - step_scale * out["moment"] * geometric
        out["moment"] = out["moment"] * float(momentum) ** k
    return {name: float(v) if np.ndim(v) == 0 and v is not None else v for name, v in out.items()}
