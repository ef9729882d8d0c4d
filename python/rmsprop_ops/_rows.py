"""Row-sparse RMSProp on NumPy / DLPack arrays: the thin layer over the core's rows API (rows_api.h)."""

from __future__ import annotations

from . import _core, registry
from ._toolkit.checks import as_bool, as_float, as_optional_clip, weight_decay_mode_code

__all__ = ["ROWS_MODES", "rmsprop_rows_", "catch_up_rows_"]

# The rows op's modes, in the registry's order (its enum values).
ROWS_MODES = tuple(next(a["choices"] for a in registry.schema("rmsprop_rows")["attrs"] if a["name"] == "mode"))

_CATCH_UP_EPSILON = 1e-6  # any valid epsilon: a catch-up never divides


def _mode_code(mode):
    if not isinstance(mode, str):
        raise TypeError(f"mode: expected a str, got {type(mode).__name__} ({mode!r})")
    if mode not in ROWS_MODES:
        raise ValueError(f"mode: expected one of {list(ROWS_MODES)}, got {mode!r}")
    return ROWS_MODES.index(mode)


def _scalar_or_array(name, value):
    if hasattr(value, "__dlpack__") or hasattr(value, "__array_interface__"):
        return value
    return as_float(name, value)


def _skip(skip_update):
    if isinstance(skip_update, bool) or skip_update is None:
        return bool(skip_update)
    if hasattr(skip_update, "__dlpack__") or hasattr(skip_update, "__array_interface__"):
        return skip_update
    raise TypeError(f"skip_update: expected a bool or a one-element array, got {type(skip_update).__name__}")


def rmsprop_rows_(param, indices, values, mean_square, *, lr, rho, epsilon, last_step=None, step=None,
                  mode="exact", momentum=0.0, moment=None, centered=False, mean_grad=None, master_param=None,
                  eps_in_sqrt=True, lr_in_momentum=True, weight_decay=0.0, weight_decay_mode="l2", lr_mult=1.0,
                  rescale_grad=1.0, clip_gradient=None, clip_weights=None, clip_after_weight_decay=True,
                  skip_update=False) -> None:
    r"""One RMSProp step of a row-sparse gradient, in place.

    The gradient of ``param`` (rows along the first axis) is ``values[i]`` at row ``indices[i]``; repeated
    indices are summed first, in the order they appear. The rule is :func:`rmsprop_ops.rmsprop_`'s, and
    ``mode`` says what happens to the rows the gradient leaves out:

    * ``"dense"``: every row takes the step, absent rows with a zero gradient (their mean square and mean
      gradient decay, they move by their moment): the dense update's numbers, every rule option. No
      counters (``last_step`` and ``step`` None).
    * ``"exact"``: only the given rows are visited. A row absent for ``k`` steps is caught up when it is
      next given (or by :func:`catch_up_rows_`): ``ms *= rho**k``, ``mg *= rho**k``, ``moment = 0``, which is
      what the dense update would have done to it, and its parameter did not move. Needs momentum 0, no
      weight decay and no ``clip_weights`` (ValueError otherwise).
    * ``"lazy"``: ``"exact"`` with momentum: a row absent for ``k`` steps also makes its ``k`` momentum
      moves when next given, ``p -= s * moment * (m + m**2 + ... + m**k)``, ``moment *= m**k`` (``m`` the
      momentum, ``s`` 1, or ``lr`` of this call when ``lr_in_momentum=False``). Between two of its steps a
      row's parameter lags the dense one by the moves not yet made.

    ``"exact"`` and ``"lazy"`` keep ``last_step`` (int64, one counter per row: the steps the row has
    taken) and ``step`` (int64, one element: the steps the table has taken); both start at zeros. A step
    at ``t = step[0]`` catches each given row up by ``t - last_step[row]`` steps, updates it, sets its
    counter to ``t + 1`` and ``step[0]`` to ``t + 1``. ``skip_update`` leaves everything as it was.

    Args:
        param: float32/float64/float16/bfloat16 array of rows, updated in place.
        indices: int64 or int32 array of rows, each in ``[0, len(param))``; may be empty.
        values: ``(len(indices),) + param.shape[1:]``, the param's dtype.
        mean_square, moment, mean_grad, master_param: the state, shaped like ``param``, as in
            :func:`rmsprop_ops.rmsprop_`.
        lr_mult: multiplies ``lr``.
        Other arguments: as in :func:`rmsprop_ops.rmsprop_`.

    Raises:
        TypeError / ValueError naming the argument (an index out of range, a counter ahead of ``step``,
        an option ``mode`` cannot follow), before any array is modified.

    Example:
        >>> import numpy as np, rmsprop_ops
        >>> table = np.ones((4, 2), np.float32); ms = np.zeros_like(table)
        >>> last, step = np.zeros(4, np.int64), np.zeros(1, np.int64)
        >>> rmsprop_ops.rmsprop_rows_(table, np.array([2, 0, 2]), np.ones((3, 2), np.float32), ms,
        ...                           last_step=last, step=step, lr=0.1, rho=0.9, epsilon=1e-6)
        >>> [round(float(x), 4) for x in table[:, 0]], last.tolist(), int(step[0])
        ([0.6838, 1.0, 0.6838, 1.0], [1, 0, 1, 0], 1)
    """
    _rows_call(param, indices, values, mean_square, lr=lr, rho=rho, epsilon=epsilon, last_step=last_step, step=step,
               mode=mode, momentum=momentum, moment=moment, centered=centered, mean_grad=mean_grad,
               master_param=master_param, eps_in_sqrt=eps_in_sqrt, lr_in_momentum=lr_in_momentum,
               weight_decay=weight_decay, weight_decay_mode=weight_decay_mode, lr_mult=lr_mult,
               rescale_grad=rescale_grad, clip_gradient=clip_gradient, clip_weights=clip_weights,
               clip_after_weight_decay=clip_after_weight_decay, skip_update=skip_update)


def _rows_call(param, indices, values, mean_square, *, lr, rho, epsilon, last_step, step, mode, momentum, moment,
               centered, mean_grad, master_param, eps_in_sqrt, lr_in_momentum, weight_decay, weight_decay_mode,
               lr_mult, rescale_grad, clip_gradient, clip_weights, clip_after_weight_decay, skip_update,
               check_only=False):
    """rmsprop_rows_; check_only=True validates everything (every index and counter) and writes nothing."""
    _core.rows(param, indices, values, mean_square, moment, mean_grad, master_param, last_step, step,
               lr=_scalar_or_array("lr", lr), lr_mult=as_float("lr_mult", lr_mult), rho=as_float("rho", rho),
               epsilon=as_float("epsilon", epsilon), momentum=as_float("momentum", momentum),
               centered=as_bool("centered", centered), eps_in_sqrt=as_bool("eps_in_sqrt", eps_in_sqrt),
               lr_in_momentum=as_bool("lr_in_momentum", lr_in_momentum),
               weight_decay=as_float("weight_decay", weight_decay),
               weight_decay_mode=weight_decay_mode_code(weight_decay_mode),
               rescale_grad=_scalar_or_array("rescale_grad", rescale_grad),
               clip_gradient=as_optional_clip("clip_gradient", clip_gradient),
               clip_weights=as_optional_clip("clip_weights", clip_weights),
               clip_after_weight_decay=as_bool("clip_after_weight_decay", clip_after_weight_decay),
               skip_update=_skip(skip_update), mode=_mode_code(mode), catch_up=False, check_only=check_only)


def catch_up_rows_(param, mean_square, *, last_step, step, rho, mode="exact", momentum=0.0, moment=None,
                   centered=False, mean_grad=None, master_param=None, lr=None, lr_in_momentum=True, lr_mult=1.0,
                   indices=None) -> None:
    """Bring rows up to the table's step, in place: what the dense update holds now (see
    :func:`rmsprop_rows_`). Every row, or the rows in ``indices``; their counters become ``step[0]``, which
    stays as it is. The state is then the dense state within float32 rounding, and in ``"lazy"`` mode the
    parameters have made their pending momentum moves. ``lr`` (times ``lr_mult``) scales those moves when
    ``lr_in_momentum=False`` and is unused otherwise.

    Example:
        >>> import numpy as np, rmsprop_ops
        >>> table = np.ones((2, 1), np.float32); ms = np.ones_like(table)
        >>> last, step = np.array([0, 3]), np.array([3])
        >>> rmsprop_ops.catch_up_rows_(table, ms, last_step=last, step=step, rho=0.5)
        >>> ms.ravel().tolist(), last.tolist()
        ([0.125, 1.0], [3, 3])
    """
    if lr is None:
        if mode == "lazy" and not lr_in_momentum and as_float("momentum", momentum) > 0:
            raise ValueError("lr: expected the learning rate of the skipped steps (mode 'lazy' with "
                             "lr_in_momentum=False scales their momentum moves by it), got None")
        lr = 0.0
    _core.rows(param, indices, None, mean_square, moment, mean_grad, master_param, last_step, step,
               lr=_scalar_or_array("lr", lr), lr_mult=as_float("lr_mult", lr_mult), rho=as_float("rho", rho),
               epsilon=_CATCH_UP_EPSILON, momentum=as_float("momentum", momentum),
               centered=as_bool("centered", centered), eps_in_sqrt=True,
               lr_in_momentum=as_bool("lr_in_momentum", lr_in_momentum), weight_decay=0.0, weight_decay_mode=0,
               rescale_grad=1.0, clip_gradient=-1.0, clip_weights=-1.0, clip_after_weight_decay=True,
               skip_update=False, mode=_mode_code(mode), catch_up=True)
