"""A user can check that our op is what runs: every update of ``rmsprop_ops.paddle.RMSProp`` is a call of the
core's shared library, counted by ``rmsprop_ops.op_stats()`` (the counters the functional API and the
MindSpore kernel add to), in dynamic mode (Paddle's path and the fast path) and in static programs, with
every state layout."""

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import rmsprop_ops
from rmsprop_ops.paddle import RMSProp

pytestmark = [pytest.mark.paddle,
              pytest.mark.skipif(not hasattr(rmsprop_ops, "op_stats"),
                                 reason="rmsprop_ops.op_stats() (the core's call counter) is not in this build")]

SIZES = (6, 4, 3)


def _cpu(before, after):
    return {k: after["cpu"][k] - before["cpu"][k] for k in ("calls", "tensor_sets", "elements")}


@pytest.mark.parametrize("flat", [None, False])
def test_dynamic_mode_steps_show_in_op_stats(flat):
    paddle.disable_static()
    params = [paddle.create_parameter([n], "float32") for n in SIZES]
    opt = RMSProp(0.01, parameters=params, momentum=0.9, flat_state=flat)
    before = rmsprop_ops.op_stats()
    for _ in range(3):  # the first step takes Paddle's path, the next ones the fast path
        sum((p * p).sum() for p in params).backward()
        opt.step()
        opt.clear_grad()
    assert opt._plan is not None
    assert _cpu(before, rmsprop_ops.op_stats()) == {"calls": 3, "tensor_sets": 9, "elements": 3 * sum(SIZES)}


@pytest.mark.parametrize("kw", [{}, dict(flat_state=True), dict(fused=False)], ids=["default", "flat", "unfused"])
def test_static_program_runs_show_in_op_stats(kw):
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", [2, 5], "float32")
            loss = paddle.nn.Linear(5, 3)(x).sum()
            RMSProp(0.01, momentum=0.9, **kw).minimize(loss)
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        before = rmsprop_ops.op_stats()
        for _ in range(2):
            exe.run(main, feed={"x": np.ones((2, 5), "float32")})
        ops_per_run = 2 if kw.get("fused") is False else 1
        assert _cpu(before, rmsprop_ops.op_stats()) == {"calls": 2 * ops_per_run, "tensor_sets": 4, "elements": 36}
    finally:
        paddle.disable_static()
