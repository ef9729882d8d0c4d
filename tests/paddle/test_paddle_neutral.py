"""rmsprop_ops.RMSProp(convention="paddle") against paddle.optimizer.RMSProp, 12 steps (run: pytest -m paddle)."""

import numpy as np
import pytest

import rmsprop_ops

from cases import quadratic_problem

pytestmark = pytest.mark.paddle
paddle = pytest.importorskip("paddle")

STEPS = 12
SHAPES = [(6,), (3, 4)]


def _problem(seed):
    return quadratic_problem(seed, SHAPES, STEPS)


def _run_paddle(params, curv, noise, **kw):
    ps = [paddle.create_parameter(list(p.shape), "float32",
                                  default_initializer=paddle.nn.initializer.Assign(p)) for p in params]
    opt = paddle.optimizer.RMSProp(parameters=ps, **kw)
    for t in range(STEPS):
        loss = sum((0.5 * paddle.to_tensor(c) * p * p + paddle.to_tensor(n) * p).sum()
                   for p, c, n in zip(ps, curv, noise[t]))
        loss.backward()
        opt.step()
        opt.clear_grad()
    return [p.numpy() for p in ps]


def _run_ours(params, curv, noise, **kw):
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ps, convention="paddle", **kw)
    for t in range(STEPS):
        opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])
    return ps


CASES = [
    ("defaults", {}, {}),
    ("momentum", {"momentum": 0.9}, {"momentum": 0.9}),
    ("centered_momentum", {"centered": True, "momentum": 0.5, "rho": 0.9}, {"centered": True, "momentum": 0.5,
                                                                           "rho": 0.9}),
    ("l2", {"weight_decay": 0.1, "momentum": 0.9}, {"weight_decay": 0.1, "momentum": 0.9}),
    ("l1", {"weight_decay": 0.1, "weight_decay_mode": "l1"}, {"weight_decay": "L1Decay(0.1)"}),
    ("clip_by_value", {"clip_gradient": 0.5}, {"grad_clip": "ClipGradByValue(0.5)"}),
    ("clip_by_norm_l2", {"clipnorm": 0.5, "weight_decay": 0.1}, {"grad_clip": "ClipGradByNorm(0.5)",
                                                               "weight_decay": 0.1}),
    ("clip_by_global_norm", {"global_clipnorm": 0.7, "momentum": 0.9}, {"grad_clip": "ClipGradByGlobalNorm(0.7)",
                                                                        "momentum": 0.9}),
]

_CLIPS = {"ClipGradByValue(0.5)": lambda: paddle.nn.ClipGradByValue(0.5),
          "ClipGradByNorm(0.5)": lambda: paddle.nn.ClipGradByNorm(0.5),
          "ClipGradByGlobalNorm(0.7)": lambda: paddle.nn.ClipGradByGlobalNorm(0.7)}


@pytest.mark.parametrize("name,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_matches_paddle(name, ours, theirs):
    theirs = dict(theirs)
    if theirs.get("weight_decay") == "L1Decay(0.1)":
        theirs["weight_decay"] = paddle.regularizer.L1Decay(0.1)
    if "grad_clip" in theirs:
        theirs["grad_clip"] = _CLIPS[theirs["grad_clip"]]()
    params, curv, noise = _problem(41)
    got = _run_ours(params, curv, noise, learning_rate=0.01, **ours)
    want = _run_paddle(params, curv, noise, learning_rate=0.01, **theirs)
    for g, w, p0 in zip(got, want, params):
        assert np.abs(g - p0).max() > 1e-3
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_param_group_learning_rate_is_a_multiplier_like_paddles():
    """Paddle's per-group 'learning_rate' scales the optimizer's rate: it is ``lr_mult`` here."""
    params, curv, noise = _problem(42)
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp([{"params": [ps[0]], "lr_mult": 0.1, "weight_decay": 0.2}, {"params": [ps[1]]}],
                              convention="paddle", learning_rate=0.05)
    for t in range(STEPS):
        opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])
    pp = [paddle.create_parameter(list(p.shape), "float32",
                                  default_initializer=paddle.nn.initializer.Assign(p)) for p in params]
    ref = paddle.optimizer.RMSProp(learning_rate=0.05, parameters=[
        {"params": [pp[0]], "learning_rate": 0.1, "weight_decay": 0.2}, {"params": [pp[1]]}])
    for t in range(STEPS):
        loss = sum((0.5 * paddle.to_tensor(c) * p * p + paddle.to_tensor(n) * p).sum()
                   for p, c, n in zip(pp, curv, noise[t]))
        loss.backward()
        ref.step()
        ref.clear_grad()
    for a, b, p0 in zip(ps, pp, params):
        assert np.abs(a - p0).max() > 1e-3
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)
