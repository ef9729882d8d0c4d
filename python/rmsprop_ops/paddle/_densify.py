"""Sparse (SelectedRows) gradients in dynamic mode, e.g. from ``paddle.nn.Embedding(sparse=True)``.

Paddle's sparse RMSProp kernel (``RmspropSparseKernel``) first merges the gradient, summing duplicate rows
(``MergeAdd``), then updates every element of the parameter, reading rows absent from the gradient as 0
(``SparseRmspropGradFunctor``): mean_square, mean_grad and moment of untouched rows still decay and the
parameter still moves by its moment. That is the dense update with the merged rows scattered into zeros,
which is what this builds (with the same merge op, so duplicate rows are summed in Paddle's order; adding
to 0 is exact), so the usual op takes it unchanged.
"""

from __future__ import annotations

import paddle
from paddle import _C_ops

__all__ = ["densify_grads", "dense", "pairs"]


def pairs(parameters_and_grads):
    """The (param, grad) pairs of a pass's argument (a list, or a parameter group's dict)."""
    if isinstance(parameters_and_grads, dict):
        return parameters_and_grads.get("params", [])
    return parameters_and_grads


def densify_grads(parameters_and_grads, route=None):
    """``parameters_and_grads`` with each SelectedRows gradient replaced by its dense equivalent (the
    argument itself when there is none). ``route(pairs, densify)``, when given, decides instead: it returns
    the pairs with the gradients the row-sparse update takes left sparse (``_sparse``)."""
    items = pairs(parameters_and_grads)
    if not any(isinstance(g, paddle.Tensor) and g.is_selected_rows() for _, g in items):
        return parameters_and_grads
    out = route(items, dense) if route is not None else [(p, dense(p, g)) for p, g in items]
    if isinstance(parameters_and_grads, dict):
        return dict(parameters_and_grads, params=out)
    return out


def dense(param, grad):
    """A dygraph SelectedRows gradient as a dense tensor of the parameter's shape; others unchanged."""
    if not (isinstance(grad, paddle.Tensor) and grad.is_selected_rows()):
        return grad
    with paddle.no_grad():
        merged = _C_ops.merge_selected_rows(grad)
        return _C_ops.add_n([paddle.zeros(param.shape, grad.dtype), merged])
