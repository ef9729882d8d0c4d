"""The rule options added to the registry (nesterov, bias_correction with its step, maximize) reach the
Paddle ops with no Paddle-specific code: the generated ops take them as attributes (and the Step input),
and give the bits the functional API gives."""

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import rmsprop_ops
from rmsprop_ops.paddle import load_ops
from rmsprop_ops.paddle._optimizer import _invoke

pytestmark = pytest.mark.paddle

OPTIONS = dict(nesterov=True, bias_correction=True, maximize=True)


@pytest.mark.parametrize("step_as", ["attr", "tensor"])
def test_options_reach_the_paddle_op(step_as):
    paddle.disable_static()
    load_ops()
    rng = np.random.default_rng(0)
    sizes = (5, 17)
    p0 = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    gs = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    t = {"Param": [paddle.to_tensor(p) for p in p0], "Grad": [paddle.to_tensor(g) for g in gs],
         "MeanSquare": [paddle.zeros([n]) for n in sizes], "Moment": [paddle.zeros([n]) for n in sizes]}
    attrs = dict(learning_rate=0.01, momentum=0.9, **OPTIONS)
    if step_as == "tensor":
        t["CurrentStep"] = paddle.to_tensor(np.array(3, np.int64))
    else:
        attrs["step"] = 3.0
    _invoke("rmsprop_multi", t, attrs)
    ps, mss, moms = [p.copy() for p in p0], [np.zeros(n, np.float32) for n in sizes], [np.zeros(n, np.float32)
                                                                                        for n in sizes]
    f32 = lambda x: float(np.float32(x))  # noqa: E731 - Paddle op attributes are float32
    rmsprop_ops.rmsprop_multi_(ps, gs, mss, moments=moms, lr=f32(0.01), rho=f32(0.9), epsilon=f32(1e-6),
                               momentum=f32(0.9), step=3, **OPTIONS)
    for got, want, start in zip(t["Param"], ps, p0):
        np.testing.assert_array_equal(got.numpy(), want)
        assert not np.array_equal(want, start)
