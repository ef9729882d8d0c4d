"""Step-by-step parity with mindspore.nn.RMSProp: params, mean squares, moments, mean gradients and step
counters after every one of 12 steps, in GRAPH_MODE and PYNATIVE_MODE, with per-parameter and flat state."""

import functools

import numpy as np
import pytest

import mindspore as ms
from mindspore import Tensor, nn

from ms_helpers import assert_states_close, batches, make_net, state
from rmsprop_ops.mindspore import RMSProp, kernel_stats

pytestmark = pytest.mark.mindspore

STEPS = 12
# fp32 against MindSpore's own fp32 kernel: both round every operation, in a slightly different order
# (MindSpore updates ms as ms += (g^2 - ms) * (1 - decay)), so states agree to a few ulp per step.
# ATOL is for steps of about lr = 0.01; rounding errors scale with the step, so the int case (lr = 1) gets
# the same tolerance per unit of learning rate.
RTOL, ATOL = 2e-6, 1e-7


class DecaySchedule(nn.Cell):
    """A dynamic weight decay: wd(step) = base * 0.8^step."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def construct(self, global_step):
        return self.base * ops_pow(0.8, global_step)


def ops_pow(x, step):
    return ms.ops.pow(Tensor(x, ms.float32), step.astype(ms.float32)).reshape(())


def lr_value(kind, scale=1.0):
    """A fresh learning-rate object of each documented kind (each optimizer needs its own)."""
    if kind == "float":
        return 0.01 * scale
    if kind == "int":
        return 1 if scale == 1.0 else 2
    if kind == "tensor":
        return Tensor(0.01 * scale, ms.float32)
    if kind == "tensor1d":
        return Tensor(np.linspace(0.02, 0.002, STEPS + 2).astype(np.float32) * scale)
    if kind == "iterable":
        return [0.01 * scale * 0.9 ** i for i in range(STEPS + 2)]
    if kind == "schedule":
        return nn.ExponentialDecayLR(0.02 * scale, 0.8, 3)
    raise AssertionError(kind)


def wd_value(wd):
    return DecaySchedule(0.01) if wd == "cell" else wd


def make_params(net, groups, lr_kind, wd):
    if groups is None:
        return net.trainable_params()
    conv, gamma, fc_w, fc_b = net.trainable_params()
    first = {"params": [conv, fc_b], "lr": lr_value(lr_kind, 2.0)}
    if wd != 0.0:
        first["weight_decay"] = DecaySchedule(0.05) if isinstance(wd, str) else 0.05
    if groups == "gc":
        first["grad_centralization"] = True
    return [first, {"params": [gamma, fc_w]}, {"order_params": net.trainable_params()}]


CASES = [
    # centered, momentum, weight_decay ("cell": dynamic), groups (None/"lr"/"gc"), lr kind, loss_scale
    (False, 0.0, 0.0, None, "float", 1.0),
    (True, 0.9, 0.01, None, "schedule", 1.0),
    (False, 0.9, 0.01, "lr", "tensor1d", 4.0),
    (True, 0.0, 0.0, "lr", "iterable", 4.0),
    (False, 0.5, 0.05, None, "tensor", 8.0),
    (True, 0.9, 0.01, "gc", "float", 1.0),
    (False, 0.0, 0.01, None, "int", 1.0),
    (True, 0.5, 0.0, None, "tensor1d", 2.0),
    (False, 0.9, "cell", None, "iterable", 1.0),
    (True, 0.0, "cell", "lr", "schedule", 4.0),
    (False, 0.9, 0.02, "gc", "schedule", 2.0),
]


def _ids(case):
    c, m, wd, g, lr, ls = case
    return f"{'centered' if c else 'plain'}-mom{m}-wd{wd}-{g or 'nogroups'}-{lr}-ls{ls}"


def _train_cell(opt_cls, case):
    centered, momentum, wd, groups, lr_kind, loss_scale = case
    net = make_net()
    params = make_params(net, groups, lr_kind, wd)
    opt = opt_cls(params, learning_rate=lr_value(lr_kind), momentum=momentum, centered=centered,
                  loss_scale=loss_scale, weight_decay=wd_value(wd))
    return nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), opt, sens=loss_scale)


def _comparable(train):
    """state() of a train cell, flat state buffers replaced by nn.RMSProp's per-parameter names."""
    out = state(train)
    opt = train.optimizer
    if opt.flat_state:
        for buffer in (*opt.ms, *opt.moment, *(opt.mg if opt.centered else ())):
            del out[buffer.name]
        out.update({k: v.astype(np.float64) for k, v in opt.state_per_parameter().items()})
    return out


@pytest.mark.parametrize("flat", [False, True], ids=["per-param-state", "flat-state"])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_step_by_step_parity(mode, case, flat):
    ref = _train_cell(nn.RMSProp, case)
    ours = _train_cell(functools.partial(RMSProp, flat_state=flat), case)
    assert ours.optimizer.flat_state == flat
    atol = ATOL * (100 if case[4] == "int" else 1)
    before = kernel_stats()["launches"]
    for x, y in batches(STEPS):
        loss_ref = ref(x, y)
        loss_ours = ours(x, y)
        np.testing.assert_allclose(loss_ours.asnumpy(), loss_ref.asnumpy(), rtol=RTOL, atol=atol)
        assert_states_close(_comparable(ours), state(ref), RTOL, atol)
    # Our kernel ran every step (one launch per learning-rate group), MindSpore's ops did not.
    groups = 1 if case[3] is None else 2
    assert kernel_stats()["launches"] - before == STEPS * groups
