"""The Paddle custom ops run the core's update: each op call shows in rmsprop_ops.op_stats(), the same
counters the functional API and the MindSpore kernel add to (one librmsprop_ops_core.so per process)."""

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import rmsprop_ops
from rmsprop_ops.paddle import RMSProp, load_ops
from rmsprop_ops.paddle._optimizer import _invoke

pytestmark = pytest.mark.paddle


def test_one_op_call_is_one_core_call():
    paddle.disable_static()
    load_ops()
    sizes = (3, 5)
    t = {"Param": [paddle.ones([n]) for n in sizes], "Grad": [paddle.full([n], 0.5) for n in sizes],
         "MeanSquare": [paddle.zeros([n]) for n in sizes]}
    rmsprop_ops.reset_op_stats()
    _invoke("rmsprop_multi", t, {"learning_rate": 0.1})
    assert rmsprop_ops.op_stats()["cpu"] == {"calls": 1, "tensor_sets": 2, "elements": 8}
    assert np.all(t["Param"][0].numpy() < 1)
    p = paddle.create_parameter([4], "float32")
    opt = RMSProp(learning_rate=0.1, parameters=[p])
    (p * 2).sum().backward()
    opt.step()
    assert rmsprop_ops.op_stats()["cpu"] == {"calls": 2, "tensor_sets": 3, "elements": 12}  # one op per step
