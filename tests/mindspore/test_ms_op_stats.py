"""The MindSpore kernel runs the core's update: each launch shows in rmsprop_ops.op_stats(), the same
counters the functional API and the Paddle ops add to (one librmsprop_ops_core.so per process)."""

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")

from mindspore import Parameter, Tensor

import rmsprop_ops
from rmsprop_ops.mindspore import rmsprop_multi_

pytestmark = pytest.mark.mindspore


def test_one_launch_is_one_core_call():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    sizes = (3, 5)
    mk = lambda n, v, name: Parameter(Tensor(np.full(n, v, np.float32)), name=name)  # noqa: E731
    ps = [mk(n, 1.0, f"p{n}") for n in sizes]
    mss, moms = [mk(n, 1.0, f"s{n}") for n in sizes], [mk(n, 0.0, f"m{n}") for n in sizes]
    rmsprop_ops.reset_op_stats()
    rmsprop_multi_(ps, [Tensor(np.full(n, 0.5, np.float32)) for n in sizes], mss, moms, 0.1)
    ms.runtime.synchronize()
    assert rmsprop_ops.op_stats()["cpu"] == {"calls": 1, "tensor_sets": 2, "elements": 8}
    assert np.all(ps[0].asnumpy() < 1)
