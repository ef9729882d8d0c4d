"""RowTensor gradients in the MindSpore optimizer.

``nn.EmbeddingLookup(sparse=True, target="CPU")`` in GRAPH_MODE hands the optimizer a ``RowTensor`` (the
rows looked up and one row of gradient per lookup). The optimizer makes it dense inside the graph,
repeated rows summed, and runs the dense update: MindSpore's dense numbers (``nn.RMSProp`` itself fails on
a RowTensor). The row-sparse update of the core (docs/sparse.md) is not wired into MindSpore: its cost
here is the dense update's. In PYNATIVE_MODE MindSpore hands over the values alone, without their rows,
and the optimizer refuses them by shape.
"""

from __future__ import annotations

from mindspore import ops
from mindspore.ops import composite as C

__all__ = ["dense_gradients"]

_to_dense = C.MultitypeFuncGraph("rmsprop_ops_row_tensor_to_dense")


@_to_dense.register("RowTensor", "Tensor")
def _row_tensor(grad, param):
    return ops.tensor_scatter_add(ops.zeros_like(param), ops.expand_dims(grad.indices, -1), grad.values)


@_to_dense.register("Tensor", "Tensor")
def _tensor(grad, param):
    return grad


def dense_gradients(hyper_map, gradients, params):
    """``gradients`` with every RowTensor made dense (inside the graph); Tensors as they are."""
    return hyper_map(_to_dense, gradients, params)
