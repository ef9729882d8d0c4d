"""Step-by-step parity with paddle.optimizer.RMSProp, dynamic and static (PIR) graphs.

Our op takes IEEE-rounded square roots; Paddle's CPU kernel (Eigen) does not always, so single steps differ
by at most one float32 ulp in the momentum term. Over 20 steps that stays within 1e-6 (rtol and atol) on
this well-conditioned model; float64 runs agree to 1e-12.
"""

import itertools

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import paddle_helpers as H
from rmsprop_ops.paddle import RMSProp

pytestmark = pytest.mark.paddle

STEPS = 20
FP32 = dict(rtol=1e-6, atol=1e-6)
GRID = list(itertools.product([False, True], [0.0, 0.9], [None, "float", "l1", "l2", "paramattr"],
                              [None, "value", "norm", "global_norm"], ["float", "scheduler"], [False, True]))


def _ids(case):
    c, m, wd, clip, lr, g = case
    return f"{'centered' if c else 'plain'}-mom{m}-wd_{wd}-clip_{clip}-lr_{lr}-{'groups' if g else 'flat'}"


def _assert_same(ours, theirs, tol):
    (h_ours, acc_ours), (h_theirs, acc_theirs) = ours, theirs
    assert len(h_ours) == len(h_theirs) == STEPS
    for step, (a, b) in enumerate(zip(h_ours, h_theirs)):
        for i, (x, y) in enumerate(zip(a, b)):
            np.testing.assert_allclose(x, y, err_msg=f"param {i} after step {step + 1}", **tol)
    assert len(acc_ours) == len(acc_theirs)
    for i, (x, y) in enumerate(zip(acc_ours, acc_theirs)):
        np.testing.assert_allclose(x, y, err_msg=f"accumulator {i} ({H.ACCS[i % 3]})", **tol)


@pytest.mark.parametrize("case", GRID, ids=[_ids(c) for c in GRID])
def test_dynamic_parity(case):
    centered, momentum, wd, clip, lr, groups = case
    # Dynamic mode runs the fused calls either way; the flag still reaches the optimizer's code for it.
    # Every other pair of cases keeps flat state, so each combination of the two flags meets every option.
    fused = (GRID.index(case) % 2) == 1
    flat = (GRID.index(case) // 2) % 2 == 1
    kw = dict(steps=STEPS, wd=wd, clip=clip, lr=lr, groups=groups, centered=centered, momentum=momentum)
    h_ref, a_ref, _ = H.run_dynamic(paddle.optimizer.RMSProp, **kw)
    h, a, _ = H.run_dynamic(RMSProp, fused=fused, flat_state=flat, **kw)
    _assert_same((h, a), (h_ref, a_ref), FP32)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("centered,momentum,wd", [(False, 0.0, "l2_dyadic"), (True, 0.9, "l1_dyadic"),
                                                (True, 0.0, None), (False, 0.9, "paramattr_lr_tenth")])
def test_dynamic_parity_float64_is_exact(fused, centered, momentum, wd):
    kw = dict(steps=STEPS, dtype="float64", wd=wd, clip="global_norm", lr="scheduler", centered=centered,
              momentum=momentum)
    h_ref, a_ref, _ = H.run_dynamic(paddle.optimizer.RMSProp, **kw)
    h, a, _ = H.run_dynamic(RMSProp, fused=fused, **kw)
    _assert_same((h, a), (h_ref, a_ref), dict(rtol=0, atol=1e-12))


STATIC_GRID = list(itertools.product([False, True], [0.0, 0.9], [None, "float", "l1", "l2", "paramattr"],
                                     [None, "norm", "global_norm"], ["float", "scheduler"]))


def _make(cls, **extra):
    def make(**kw):
        return cls(**kw, **extra)
    return make


@pytest.mark.parametrize("case", STATIC_GRID, ids=[_ids(c + (False,)) for c in STATIC_GRID])
def test_static_parity(case):
    centered, momentum, wd, clip, lr = case
    fused = (STATIC_GRID.index(case) % 2) == 0
    flat = (STATIC_GRID.index(case) // 2) % 2 == 1
    kw = dict(steps=STEPS, wd=wd, clip=clip, lr=lr, centered=centered, momentum=momentum)
    h_ref, a_ref, ops_ref, _, _ = H.run_static(_make(paddle.optimizer.RMSProp), **kw)
    h, a, ops, _, _ = H.run_static(_make(RMSProp, fused=fused, flat_state=flat), **kw)
    _assert_same((h, a), (h_ref, a_ref), FP32)
    assert "pd_op.rmsprop_" in ops_ref
    assert "pd_op.rmsprop_" not in ops
    ours = [o for o in ops if o.startswith("custom_op.rmsprop_ops_")]
    kind = "_centered" if centered else ""
    # Fused: one op per weight-decay kind (the ParamAttr case mixes L1 and L2); otherwise one per param
    # (with flat state the multi-tensor op over one parameter: flat state has no single-tensor op).
    # Per-parameter state: the twin declaring only the parameters in place.
    form = "_flat_" if flat else "_static_"
    if fused:
        expected = [f"custom_op.rmsprop_ops_rmsprop{kind}_multi{form}"] * (2 if wd == "paramattr" else 1)
    else:
        expected = [f"custom_op.rmsprop_ops_rmsprop{kind}{'_multi_flat_' if flat else '_static_'}"] * 4
    assert ours == expected


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_parity_with_per_parameter_learning_rate_and_decay(mode, centered, fused):
    # One weight with ParamAttr(learning_rate=0.5, regularizer=L2Decay(2**-4)), the rest the optimizer's
    # L2Decay(2**-6): the fused op takes them as per-parameter lists, only where values differ.
    kw = dict(steps=STEPS, wd="paramattr_l2_lr", lr="scheduler", centered=centered, momentum=0.9)
    if mode == "dynamic":
        h_ref, a_ref, _ = H.run_dynamic(paddle.optimizer.RMSProp, **kw)
        h, a, _ = H.run_dynamic(RMSProp, fused=fused, **kw)
    else:
        h_ref, a_ref, _, _, _ = H.run_static(_make(paddle.optimizer.RMSProp), **kw)
        h, a, ops, _, _ = H.run_static(_make(RMSProp, fused=fused), **kw)
        assert len([o for o in ops if o.startswith("custom_op.rmsprop_ops_")]) == (1 if fused else 4)
    _assert_same((h, a), (h_ref, a_ref), FP32)


def test_paddle_static_lacks_clip_by_value():
    """Why ours fuses ClipGradByValue: Paddle's own PIR static path raises for it."""
    with pytest.raises(NotImplementedError):
        H.run_static(_make(paddle.optimizer.RMSProp), steps=1, clip="value")


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("centered,momentum,wd", [(False, 0.0, None), (True, 0.9, "l2"), (False, 0.5, "l1")])
def test_static_clip_by_value(fused, centered, momentum, wd):
    kw = dict(steps=STEPS, wd=wd, lr="scheduler", centered=centered, momentum=momentum)
    # Reference: Paddle's RMSProp on gradients clipped by explicit paddle.clip ops (clip, then regularize).
    h_ref, a_ref, _, _, _ = H.run_static(_make(paddle.optimizer.RMSProp), manual_value_clip=0.2, **kw)
    h, a, ops, _, _ = H.run_static(_make(RMSProp, fused=fused), clip="value", **kw)
    _assert_same((h, a), (h_ref, a_ref), FP32)
    assert "pd_op.clip" not in ops


@pytest.mark.parametrize("fused", [False, True])
def test_static_matches_dynamic_with_clip_by_value(fused):
    kw = dict(steps=STEPS, wd="float", lr="scheduler", centered=True, momentum=0.9)
    h_dyn, a_dyn, _ = H.run_dynamic(paddle.optimizer.RMSProp, clip="value", **kw)
    h, a, _, _, _ = H.run_static(_make(RMSProp, fused=fused), clip="value", **kw)
    _assert_same((h, a), (h_dyn, a_dyn), FP32)


@pytest.mark.parametrize("fused", [False, True])
def test_static_no_grad_set(fused):
    h, _, _, opt, _ = H.run_static(_make(RMSProp, fused=fused), steps=3, no_grad=True)
    init = H.init_values([x.shape for x in h[0]])
    np.testing.assert_array_equal(h[-1][0], init[0])  # frozen weight untouched
    assert not np.array_equal(h[-1][1], init[1])
    frozen = [n for n in opt._accumulators["mean_square"] if n.startswith("linear") and n.endswith("w_0")]
    assert len(frozen) == 1  # no accumulator was made for the frozen weight


def _train_custom(opt_cls, build, steps=STEPS, **opt_kw):
    """Dynamic run of a model from build() -> (layers, parameters-arg); returns per-step params + accumulators."""
    paddle.disable_static()
    l1, l2, parameters = build()
    params = l1.parameters() + l2.parameters()
    for p, v in zip(params, H.init_values([p.shape for p in params])):
        p.set_value(v)
    opt = opt_cls(learning_rate=0.02, parameters=parameters, **opt_kw)
    history = []
    for x, y in H.batches(steps):
        H.loss_of(l1, l2, paddle.to_tensor(x), paddle.to_tensor(y)).backward()
        opt.step()
        opt.clear_grad()
        history.append([p.numpy().copy() for p in params])
    return history, [a.numpy().copy() for a in H.accumulators(opt, params)]


@pytest.mark.parametrize("fused", [False, True])
def test_value_clip_need_clip_and_asymmetric_bounds(fused):
    def build():
        l1 = paddle.nn.Linear(H.IN, H.HID, bias_attr=paddle.ParamAttr(need_clip=False))
        l2 = paddle.nn.Linear(H.HID, H.OUT)
        return l1, l2, l1.parameters() + l2.parameters()

    for clip in (paddle.nn.ClipGradByValue(0.2), paddle.nn.ClipGradByValue(max=0.15, min=-0.05)):
        ref = _train_custom(paddle.optimizer.RMSProp, build, grad_clip=clip, momentum=0.5, weight_decay=0.01)
        ours = _train_custom(RMSProp, build, grad_clip=clip, momentum=0.5, weight_decay=0.01, fused=fused)
        _assert_same(ours, ref, FP32)


@pytest.mark.parametrize("fused", [False, True])
def test_group_grad_clip_and_centered(fused):
    def build():
        l1, l2 = paddle.nn.Linear(H.IN, H.HID), paddle.nn.Linear(H.HID, H.OUT)
        return l1, l2, [{"params": l1.parameters(), "grad_clip": paddle.nn.ClipGradByValue(0.1),
                         "centered": True, "weight_decay": paddle.regularizer.L1Decay(0.01)},
                        {"params": l2.parameters(), "grad_clip": paddle.nn.ClipGradByNorm(0.2)}]

    ref = _train_custom(paddle.optimizer.RMSProp, build, momentum=0.3)
    ours = _train_custom(RMSProp, build, momentum=0.3, fused=fused)
    _assert_same(ours, ref, FP32)
