"""One optimizer step that takes several op calls (parameter groups, dtypes, a parameter needing its own
op) is checked whole before the first call writes; and ``repr`` shows what the optimizer will do."""

from __future__ import annotations

import re

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from rmsprop_ops.paddle import RMSProp

pytestmark = pytest.mark.paddle

NAN = float("nan")


@pytest.fixture(autouse=True)
def dynamic_mode():
    paddle.disable_static()


def _snapshot(params, opt):
    tensors = list(params) + [v for per in opt._accumulators.values() for v in per.values()]
    tensors += [b for c in opt._store.chunks for b in c.buffers]
    return [(t, t.numpy().tobytes()) for t in tensors]


def _assert_unchanged(snap):
    for t, before in snap:
        assert t.numpy().tobytes() == before, t.name


def _groups_model():
    paddle.seed(0)
    a, b = paddle.nn.Linear(3, 4), paddle.nn.Linear(4, 2)
    return a, b


def _grouped(a, b, flat):
    return RMSProp(0.01, parameters=[{"params": a.parameters(), "rho": 0.8},
                                     {"params": b.parameters(), "momentum": 0.5}],
                   momentum=0.9, flat_state=flat)


def _backward(a, b):
    b(a(paddle.ones([2, 3]))).sum().backward()


BAD_GRADS = [
    ("shape", lambda p: paddle.ones([7], p.dtype), ValueError, r"Grad: expected shape \[4, 2\] like the parameter, got \[7\]"),
    ("dtype", lambda p: paddle.ones(p.shape, "float64"), TypeError,
     r"Grad: expected dtype float32 \(the parameter's\), got float64"),
]


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("case", BAD_GRADS, ids=[c[0] for c in BAD_GRADS])
def test_a_bad_gradient_in_a_later_group_stops_the_step_before_the_first_group_is_written(case, flat):
    """Paddle runs one pass per parameter group; the last group's bad gradient used to raise after the
    first group had been updated."""
    _, make_bad, exc, pattern = case
    a, b = _groups_model()
    opt = _grouped(a, b, flat)
    _backward(a, b)
    opt.step()  # the state exists
    opt.clear_grad()
    _backward(a, b)
    b.weight.clear_gradient(False)  # released, so the setter takes another dtype
    b.weight.grad = make_bad(b.weight)
    params = a.parameters() + b.parameters()
    snap = _snapshot(params, opt)
    with pytest.raises(exc, match=re.escape(b.weight.name) + ": " + pattern):
        opt.step()
    _assert_unchanged(snap)


@pytest.mark.parametrize("flat", [False, True])
def test_a_bad_gradient_in_a_later_launch_of_one_pass_is_found_first(flat):
    """float32 and float64 parameters in one list: two calls of the op in one pass."""
    paddle.seed(1)
    p32, p64 = paddle.create_parameter([3], "float32"), paddle.create_parameter([2, 2], "float64")
    opt = RMSProp(0.01, parameters=[p32, p64], momentum=0.9, flat_state=flat)

    def backward():
        (p32.sum() + p64.astype("float32").square().sum()).backward()

    backward()
    opt.step()
    opt.clear_grad()
    backward()
    p64.grad = paddle.ones([4], "float64")
    snap = _snapshot([p32, p64], opt)
    with pytest.raises(ValueError, match=re.escape(p64.name) + r": Grad: expected shape \[2, 2\] like the parameter"):
        opt.step()
    _assert_unchanged(snap)


@pytest.mark.parametrize("flat", [False, True])
def test_a_bad_tensor_learning_rate_of_a_later_parameter_stops_the_step_first(flat):
    """A Tensor ParamAttr learning rate gives its parameter an op of its own, after the fused call."""
    paddle.seed(2)
    layer = paddle.nn.Linear(3, 2)
    layer.bias.optimize_attr["learning_rate"] = paddle.to_tensor(NAN)
    opt = RMSProp(0.01, parameters=layer.parameters(), momentum=0.9, flat_state=flat)
    layer(paddle.ones([2, 3])).sum().backward()
    opt._create_accumulators(None, layer.parameters())
    snap = _snapshot(layer.parameters(), opt)
    with pytest.raises(ValueError, match=re.escape(layer.bias.name) + r": learning rate .*expected a finite value >= 0, got nan"):
        opt.step()
    _assert_unchanged(snap)


def test_repr_shows_hyper_parameters_convention_and_layout():
    layer = paddle.nn.Linear(3, 2)
    opt = RMSProp(0.01, parameters=layer.parameters(), rho=0.9, momentum=0.5, centered=True,
                  weight_decay=paddle.regularizer.L2Decay(0.001), grad_clip=paddle.nn.ClipGradByValue(0.5))
    text = repr(opt)
    assert text.startswith("rmsprop_ops.paddle.RMSProp(") and " object at 0x" not in text
    for part in ("learning_rate=0.01", "rho=0.9", "epsilon=1e-06", "momentum=0.5", "centered=True",
                 "weight_decay=L2Decay(0.001)", "grad_clip=ClipGradByValue(min=-0.5, max=0.5)",
                 "convention='paddle'", "fused=True", "flat_state='auto' (flat in dynamic mode)",
                 "multi_precision=False", "parameters=2"):
        assert part in text, (part, text)
    sched = paddle.optimizer.lr.StepDecay(0.1, step_size=2)
    other = RMSProp(sched, parameters=[{"params": layer.parameters()}], lr_in_momentum=False, flat_state=False,
                    fused=False, clip_weights=2.0, name="opt")
    text = repr(other)
    for part in ("learning_rate=StepDecay(last_lr=0.1, last_epoch=0)", "convention='custom'", "eps_in_sqrt=True",
                 "lr_in_momentum=False", "clip_weights=2.0", "fused=False", "flat_state=False", "name='opt'",
                 "parameters=1 groups of 2"):
        assert part in text, (part, text)


def test_repr_in_a_static_program():
    paddle.enable_static()
    try:
        text = repr(RMSProp(0.5))
    finally:
        paddle.disable_static()
    assert "parameters='all of the program'" in text and "learning_rate=0.5" in text


def test_the_rule_is_one_record_and_groups_override_its_fields():
    from rmsprop_ops.paddle._args import Rule

    layer = paddle.nn.Linear(3, 2)
    opt = RMSProp(0.01, parameters=layer.parameters(), rho=0.9, momentum=0.5)
    assert opt._rule == Rule(rho=0.9, epsilon=1e-6, momentum=0.5)
    group = opt._rule.for_group({"params": [], "rho": 0.7, "centered": True, "weight_decay": 0.1})
    assert group == Rule(rho=0.7, epsilon=1e-6, momentum=0.5, centered=True)
    assert opt._rule.for_group({"params": []}) is opt._rule
    assert group.op_attrs() == dict(rho=0.7, epsilon=1e-6, momentum=0.5, eps_in_sqrt=True, lr_in_momentum=True,
                                    clip_after_weight_decay=False, clip_weights=-1.0)


def test_numpy_scalars_are_accepted_and_huge_ints_refused_by_name():
    layer = paddle.nn.Linear(3, 2)
    opt = RMSProp(np.float32(0.01), parameters=layer.parameters(), rho=np.float64(0.9), momentum=np.float16(0.5),
                  epsilon=np.float32(1e-6))
    layer(paddle.ones([2, 3])).sum().backward()
    opt.step()
    # the toolkit's number check (_toolkit.checks.real): the argument named, the int described, not printed
    with pytest.raises(ValueError,
                       match=r"^rho: expected a finite number, got an int of \d+ bits \(too large for a float\)$"):
        RMSProp(0.01, parameters=layer.parameters(), rho=10 ** 400)
