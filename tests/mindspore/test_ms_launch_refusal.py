"""Every launch of a step is checked before the first one writes (issue #17).

A step of ``rmsprop_ops.mindspore.RMSProp`` makes one launch per (learning rate, dtype) group. A learning
rate set to NaN, inf or a negative value after construction (a group's Parameter, a 1-D per-step Tensor, a
schedule) exists only while the step runs, so the kernel refuses it; the step must then leave every
Parameter (params, state, ``global_step``) as it was, whichever group holds the bad value and wherever it
sits in the launch order, in GRAPH_MODE and PYNATIVE_MODE, alone and inside a ``TrainOneStepCell``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, Tensor, nn
from mindspore.nn.learning_rate_schedule import LearningRateSchedule

import rmsprop_ops.mindspore as rms
from rmsprop_ops.mindspore._build import FUNC_NAME, kernel_handle

pytestmark = pytest.mark.mindspore

NAN, INF = float("nan"), float("inf")


class _Tail(LearningRateSchedule):
    """A healthy schedule: 0.05 * 0.5^step."""

    def construct(self, global_step):
        return 0.05 * ms.ops.pow(Tensor(0.5, ms.float32), global_step.astype(ms.float32)).reshape(())


_names = itertools.count()


def _p(shape, dtype=np.float32):
    n = int(np.prod(shape))
    return Parameter(Tensor(np.linspace(-1, 1, n).reshape(shape).astype(dtype)), name=f"p{next(_names)}")


# Optimizer layouts with several launches: (id, factory -> (params argument, list of params), positions of
# params whose learning rate can be set from outside: a Parameter, not a schedule's output).
def _three_static_groups():
    ps = [_p((3,)), _p((2, 2)), _p((5,))]
    return [{"params": ps[:1], "lr": 0.1}, {"params": ps[1:2]}, {"params": ps[2:], "lr": 0.2}], ps


def _static_and_per_step_groups():
    ps = [_p((3,)), _p((2, 2)), _p((4,))]
    steps = Tensor(np.full(8, 0.03, np.float32))
    return [{"params": ps[:1], "lr": steps}, {"params": ps[1:2], "lr": 0.1}, {"params": ps[2:], "lr": _Tail()}], ps


def _groups_and_dtypes():
    ps = [_p((3,)), _p((2,), np.float64), _p((2, 2)), _p((3,), np.float64)]
    return [{"params": ps[:2], "lr": 0.1}, {"params": ps[2:]}], ps


def _one_lr_two_dtypes():
    ps = [_p((3,)), _p((2,), np.float64)]
    return ps, ps


LAYOUTS = [("three-static-groups", _three_static_groups, (0, 1, 2)),
           ("static-per-step-schedule", _static_and_per_step_groups, (0, 1)),
           ("groups-and-dtypes", _groups_and_dtypes, (0, 3)), ("one-lr-two-dtypes", _one_lr_two_dtypes, (1,))]


def _set_lr(opt, param, value):
    """Puts ``value`` into the learning rate ``param``'s group reads (every entry of a per-step Tensor).

    With an op: in PYNATIVE_MODE a compiled step keeps reading the data a Parameter had when it compiled,
    so ``set_data`` would go unseen (by nn.RMSProp too)."""
    lr = opt.get_lr_parameter(param)
    assert isinstance(lr, Parameter), lr
    ms.ops.assign(lr, Tensor(np.full(lr.shape, value, np.float32)))


def _refusal(value):
    return f"lr: expected a finite number, got {value}" if value != value or abs(value) == INF \
        else f"lr: expected a value >= 0, got {value}"


def _snapshot(cell):
    return {p.name: p.asnumpy().copy() for p in cell.get_parameters()}


def _grads(ps):
    return tuple(Tensor(np.full(p.shape, 0.5, p.asnumpy().dtype)) for p in ps)


def _wait(outputs):
    """PyNative may run a compiled step asynchronously: reading its outputs waits for it (and raises)."""
    for out in outputs if isinstance(outputs, tuple) else (outputs,):
        if isinstance(out, Tensor):
            out.asnumpy()


def _cases():
    out = []
    for k, (layout, make, settable) in enumerate(LAYOUTS):
        for which in settable:
            for value in (NAN, -0.5) + ((INF,) if k == 0 else ()):
                out.append(pytest.param(layout, make, which, value, id=f"{layout}-param{which}-{value}"))
    return out


@pytest.mark.parametrize("flat", [False, True], ids=["per-param-state", "flat-state"])
@pytest.mark.parametrize("layout, make, which, value", _cases())
def test_a_bad_learning_rate_anywhere_refuses_the_whole_step(mode, flat, layout, make, which, value):
    params, ps = make()
    opt = rms.RMSProp(params, learning_rate=0.05, momentum=0.5, centered=layout == "groups-and-dtypes",
                      flat_state=flat)
    assert len(opt._plan.launches) >= 2
    _wait(opt(_grads(ps)))  # a healthy step first: the refusal must not depend on fresh state
    _set_lr(opt, ps[which], value)
    before, launches = _snapshot(opt), rms.kernel_stats()["launches"]
    kernel_handle().rmsprop_ops_ms_clear_error()
    with pytest.raises(RuntimeError, match=FUNC_NAME):
        _wait(opt(_grads(ps)))
    assert rms.last_error() == _refusal(value)
    assert rms.kernel_stats()["launches"] == launches
    after = _snapshot(opt)
    for name, data in before.items():
        np.testing.assert_array_equal(after[name], data, err_msg=name)
    assert [np.array_equal(p.asnumpy(), before[p.name]) for p in ps] == [True] * len(ps)


class _Net(nn.Cell):
    def __init__(self, ps):
        super().__init__()
        self.ps = ms.ParameterTuple(ps)

    def construct(self, x):
        out = x.sum()
        for p in self.ps:
            out = out + (p.astype(ms.float32) * p.astype(ms.float32)).sum()
        return out


def test_refusal_inside_a_train_cell_leaves_every_group_unchanged():
    ms.set_context(mode=ms.GRAPH_MODE)
    params, ps = _groups_and_dtypes()
    net = _Net(ps)
    opt = rms.RMSProp(params, learning_rate=0.05, momentum=0.9)
    train = nn.TrainOneStepCell(net, opt)
    x = Tensor(np.ones(2, np.float32))
    train(x)
    _set_lr(opt, ps[-1], NAN)  # the last group: its launch runs after the first group's
    before = _snapshot(train)
    with pytest.raises(RuntimeError, match=FUNC_NAME):
        _wait(train(x))
    after = _snapshot(train)
    for name, data in before.items():
        np.testing.assert_array_equal(after[name], data, err_msg=name)
    assert int(opt.global_step.asnumpy()[0]) == 1


def test_healthy_group_learning_rates_pass_through_unchanged(mode):
    # The guard makes every launch's lr depend on every other one: valid values must come out bit for bit
    # (0.1, 0.05 and a value with a full mantissa), which parity with nn.RMSProp shows.
    results = []
    for cls in (nn.RMSProp, rms.RMSProp):
        params, ps = _three_static_groups()
        params[2]["lr"] = 0.0123456789
        opt = cls(params, learning_rate=0.05, momentum=0.5)
        for _ in range(3):
            _wait(opt(_grads(ps)))
        results.append([p.asnumpy() for p in ps])
    for ours, ref in zip(results[1], results[0]):
        np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("seed, mode_name", [(0, "graph"), (1, "pynative")])
def test_fuzz_optimizer_steps_in_subprocess(seed, mode_name):
    """Random groups, dtypes, layouts and faults (tests/scripts/fuzz_ms_optimizer.py): a refused step changes
    nothing, a healthy one moves every parameter with one launch per (learning rate, dtype) group."""
    import ast
    import os
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "fuzz_ms_optimizer.py")
    proc = subprocess.run([sys.executable, script, str(seed), "24", mode_name], capture_output=True, text=True,
                          timeout=900, env=dict(os.environ, GLOG_v="3"))
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "fuzz ok" in proc.stdout
    outcomes = ast.literal_eval(proc.stdout.split("outcomes:", 1)[1].splitlines()[0].strip())
    assert outcomes.get("ok", 0) >= 2 and outcomes.get("refused", 0) >= 8, outcomes
