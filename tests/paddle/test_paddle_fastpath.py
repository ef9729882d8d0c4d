"""Dynamic mode's fast path (``rmsprop_ops.paddle._fastpath``): a step that repeats the last one's launches
skips Paddle's per-parameter machinery. Whatever changes between steps, every step must equal the step
Paddle's path takes (bit for bit), and a change the plan cannot see must send the step down that path.
"""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import rmsprop_ops.paddle._fastpath as F
from rmsprop_ops.paddle import RMSProp

pytestmark = pytest.mark.paddle


@pytest.fixture(autouse=True)
def dynamic_mode():
    paddle.disable_static()


def _model(seed=0):
    paddle.seed(seed)
    return paddle.nn.Sequential(paddle.nn.Linear(5, 4), paddle.nn.Tanh(), paddle.nn.Linear(4, 3))


def _backward(model, s):
    rs = np.random.RandomState(s)
    x, y = paddle.to_tensor(rs.randn(6, 5).astype("float32")), paddle.to_tensor(rs.randn(6, 3).astype("float32"))
    ((model(x) - y) ** 2).mean().backward()


def _freeze(m, on):
    m[0].weight.stop_gradient = on


def _drop_grad(m, on):
    if on:
        m[2].bias.clear_gradient(False)


def _regularizer(m, on):
    if on:
        m[0].weight.regularizer = paddle.regularizer.L1Decay(0.01)


def _lr_attr(m, on):
    if on:
        m[2].weight.optimize_attr["learning_rate"] = 0.5


def _need_clip(m, on):
    if on:
        m[0].bias.need_clip = False


def _tensor_lr_attr(m, on):
    if on:
        m[2].bias.optimize_attr["learning_rate"] = paddle.to_tensor(0.25)


# An event applied before the backward of steps 3, 4 and 7 (on) and left as it is in between; each
# changes what one parameter contributes to the step.
EVENTS = [_freeze, _drop_grad, _regularizer, _lr_attr, _need_clip, _tensor_lr_attr]


@pytest.mark.parametrize("flat", [None, False])
@pytest.mark.parametrize("event", EVENTS, ids=[e.__name__[1:] for e in EVENTS])
def test_every_step_equals_the_step_paddles_path_takes(event, flat, monkeypatch):
    real = F.try_step
    taken = []

    def counting(opt, plan):
        ran = real(opt, plan) if opt is ours else False
        taken.append(ran) if opt is ours else None
        return ran

    monkeypatch.setattr(F, "try_step", counting)
    m1, m2 = _model(), _model()
    kw = dict(momentum=0.9, centered=True, weight_decay=paddle.regularizer.L2Decay(0.001),
              grad_clip=paddle.nn.ClipGradByValue(0.05), flat_state=flat)
    ours = RMSProp(0.02, parameters=m1.parameters(), **kw)
    ref = RMSProp(0.02, parameters=m2.parameters(), **kw)  # never takes the fast path
    for s in range(9):
        for m, opt in ((m1, ours), (m2, ref)):
            event(m, s in (3, 4, 7))
            _backward(m, s)
            _drop_grad(m, event is _drop_grad and s in (3, 4, 7))
            opt.step()
            opt.clear_grad()
        for a, b in zip(m1.parameters(), m2.parameters()):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"step {s}")
    for a, b in zip(ours.state_dict().values(), ref.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert taken[0] is False and taken[1] is True  # the first step records the plan, the second repeats it
    assert any(taken[2:]) and not all(taken[1:])


@pytest.mark.parametrize("flat", [None, False])
def test_the_fast_path_bumps_the_parameters_inplace_versions_and_follows_the_scheduler(flat):
    m1, m2 = _model(), _model()
    s1 = paddle.optimizer.lr.StepDecay(0.05, step_size=1, gamma=0.5)
    s2 = paddle.optimizer.lr.StepDecay(0.05, step_size=1, gamma=0.5)
    ours = RMSProp(s1, parameters=m1.parameters(), momentum=0.5, flat_state=flat)
    ref = paddle.optimizer.RMSProp(s2, parameters=m2.parameters(), momentum=0.5)
    for s in range(5):
        versions = [p.inplace_version for p in m1.parameters()]
        for m, opt, sched in ((m1, ours, s1), (m2, ref, s2)):
            _backward(m, s)
            opt.step()
            opt.clear_grad()
            sched.step()
        assert [p.inplace_version for p in m1.parameters()] == [v + 1 for v in versions]
    assert ours._plan is not None
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_mixed_dtypes_take_two_calls_and_the_second_is_checked_before_the_first_runs():
    paddle.seed(4)
    p32, p64, q32 = (paddle.create_parameter([3], "float32"), paddle.create_parameter([2, 2], "float64"),
                     paddle.create_parameter([4], "float32"))
    opt = RMSProp(0.01, parameters=[p32, p64, q32], momentum=0.9)

    def backward():
        (p32.square().sum() + p64.astype("float32").square().sum() + q32.sum()).backward()

    for _ in range(2):
        backward()
        opt.step()
        opt.clear_grad()
    assert opt._plan is not None and len(opt._plan.launches) == 2  # float32 (p32, q32), then float64
    backward()
    p64.grad = paddle.ones([4], "float64")
    before = [p.numpy().copy() for p in (p32, p64, q32)]
    with pytest.raises(ValueError, match=r"Grad: expected shape \[2, 2\] like the parameter, got \[4\]"):
        opt.step()
    for p, b in zip((p32, p64, q32), before):
        np.testing.assert_array_equal(p.numpy(), b)


def test_a_checkpoint_load_and_groups_leave_the_fast_path():
    m = _model()
    opt = RMSProp(0.02, parameters=m.parameters(), momentum=0.9)
    for s in range(2):
        _backward(m, s)
        opt.step()
        opt.clear_grad()
    assert opt._plan is not None
    opt.set_state_dict({k: v.clone() for k, v in opt.state_dict().items()})
    assert opt._plan is None
    grouped = RMSProp(0.02, parameters=[{"params": m.parameters()}], momentum=0.9)
    for s in range(2):
        _backward(m, s)
        grouped.step()
        grouped.clear_grad()
    assert grouped._plan is None
