"""rmsprop_ops.RMSProp(convention="tf1") against timm's RMSpropTF (the TF1 rule), 12 steps.

timm's optimizer file is loaded on its own (tests/support/timm_optim.py).
"""

import numpy as np
import pytest

import rmsprop_ops

from cases import quadratic_problem
from timm_optim import timm_optim_module

torch = pytest.importorskip("torch")

STEPS = 12
SHAPES = [(6,), (3, 4)]


@pytest.fixture(scope="module")
def RMSpropTF():
    with timm_optim_module("rmsprop_tf") as mod:
        if mod is None:
            pytest.skip("timm (with optim/rmsprop_tf.py) is not installed (pip install --no-deps timm)")
        yield mod.RMSpropTF


def _problem(seed):
    return quadratic_problem(seed, SHAPES, STEPS)


CASES = [
    ("defaults", {}, {}),
    ("momentum", {"momentum": 0.9, "epsilon": 1e-3}, {"momentum": 0.9, "eps": 1e-3}),
    ("centered_momentum", {"centered": True, "momentum": 0.5}, {"centered": True, "momentum": 0.5}),
    ("weight_decay", {"weight_decay": 0.1, "momentum": 0.9}, {"weight_decay": 0.1, "momentum": 0.9}),
    ("decoupled", {"weight_decay": 0.1, "weight_decay_mode": "decoupled", "momentum": 0.9},
     {"weight_decay": 0.1, "decoupled_decay": True, "momentum": 0.9}),
    ("lr_outside_momentum", {"momentum": 0.9, "lr_in_momentum": False}, {"momentum": 0.9, "lr_in_momentum": False}),
]


@pytest.mark.parametrize("name,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_matches_timm_rmsprop_tf(RMSpropTF, name, ours, theirs):
    params, curv, noise = _problem(31)
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ps, convention="tf1", learning_rate=0.05, **ours)
    ts = [torch.tensor(p) for p in params]
    theirs = dict(theirs)
    ref = RMSpropTF(ts, lr=0.05, alpha=0.9, eps=theirs.pop("eps", 1e-10), **theirs)
    for t in range(STEPS):
        opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])
        for x, c, n in zip(ts, curv, noise[t]):
            x.grad = torch.from_numpy(c * x.numpy() + n)
        ref.step()
    for p, x, p0 in zip(ps, ts, params):
        assert np.abs(p - p0).max() > 1e-3
        np.testing.assert_allclose(p, x.numpy(), rtol=1e-5, atol=1e-6)
