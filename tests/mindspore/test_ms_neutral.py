"""rmsprop_ops.RMSProp(convention="mindspore") against mindspore.nn.RMSProp, 12 steps (run: pytest -m mindspore)."""

import numpy as np
import pytest

import rmsprop_ops

from cases import quadratic_problem

pytestmark = pytest.mark.mindspore
ms = pytest.importorskip("mindspore")

STEPS = 12
SHAPES = [(6,), (3, 4)]


def _problem(seed):
    return quadratic_problem(seed, SHAPES, STEPS)


def _run_mindspore(params, curv, noise, scale, **kw):
    ps = [ms.Parameter(ms.Tensor(p.copy()), name=f"w{i}") for i, p in enumerate(params)]
    opt = ms.nn.RMSProp(ps, **kw)
    for t in range(STEPS):
        grads = tuple(ms.Tensor(scale * (c * p.asnumpy() + n)) for p, c, n in zip(ps, curv, noise[t]))
        opt(grads)
    return [p.asnumpy() for p in ps]


def _run_ours(params, curv, noise, scale, **kw):
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ps, convention="mindspore", **kw)
    for t in range(STEPS):
        opt.step([scale * (c * p + n) for p, c, n in zip(ps, curv, noise[t])])
    return ps


CASES = [
    ("defaults", {}, {}),
    ("momentum", {"momentum": 0.9, "learning_rate": 0.01}, {"momentum": 0.9, "learning_rate": 0.01}),
    ("centered_momentum", {"centered": True, "momentum": 0.5, "learning_rate": 0.01, "epsilon": 1e-6},
     {"centered": True, "momentum": 0.5, "learning_rate": 0.01, "epsilon": 1e-6}),
    ("weight_decay_loss_scale", {"weight_decay": 0.1, "momentum": 0.9, "learning_rate": 0.01,
                                 "loss_scale_factor": 8.0},
     {"weight_decay": 0.1, "momentum": 0.9, "learning_rate": 0.01, "loss_scale": 8.0}),
]


@pytest.mark.parametrize("name,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_matches_mindspore(name, ours, theirs):
    params, curv, noise = _problem(51)
    scale = ours.get("loss_scale_factor", 1.0)
    got = _run_ours(params, curv, noise, scale, **ours)
    want = _run_mindspore(params, curv, noise, scale, **theirs)
    for g, w, p0 in zip(got, want, params):
        assert np.abs(g - p0).max() > 1e-3
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_groups_and_a_dynamic_learning_rate_list_match_mindspore():
    """MindSpore's group 'lr' / 'weight_decay' are absolute; a list learning_rate is indexed by the step."""
    params, curv, noise = _problem(52)
    lrs = [0.02 * 0.8 ** t for t in range(STEPS)]
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp([{"params": [ps[0]], "lr": 0.005, "weight_decay": 0.3}, {"params": [ps[1]]}],
                              convention="mindspore", learning_rate=lambda step: lrs[step], momentum=0.9)
    for t in range(STEPS):
        opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])
    mp = [ms.Parameter(ms.Tensor(p.copy()), name=f"w{i}") for i, p in enumerate(params)]
    ref = ms.nn.RMSProp([{"params": [mp[0]], "lr": 0.005, "weight_decay": 0.3}, {"params": [mp[1]]}],
                        learning_rate=lrs, momentum=0.9)
    for t in range(STEPS):
        ref(tuple(ms.Tensor(c * p.asnumpy() + n) for p, c, n in zip(mp, curv, noise[t])))
    for a, b, p0 in zip(ps, mp, params):
        assert np.abs(a - p0).max() > 1e-3
        np.testing.assert_allclose(a, b.asnumpy(), rtol=1e-5, atol=1e-6)
