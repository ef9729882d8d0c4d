"""The neutral optimizer against optax.rmsprop (nesterov, bias_correction, centered, eps placement), from
trajectories computed in a subprocess (tests/scripts/optax_trajectories.py: JAX's threads stay out of the
test process)."""

from __future__ import annotations

import numpy as np
import optax_reference
import pytest

import rmsprop_ops

optax_trajectories = optax_reference.trajectories
H = optax_trajectories.HYPER


@pytest.fixture(scope="module")
def optax_params(tmp_path_factory):
    return optax_reference.compute(tmp_path_factory)


def _ours(case, dtype, accumulation=None):
    p0, grads = optax_trajectories.problem(dtype)
    p = p0.copy()
    opt = rmsprop_ops.RMSProp([p], convention="keras", learning_rate=H["learning_rate"], rho=H["decay"],
                              epsilon=H["eps"], initial_accumulator_value=H["initial_scale"],
                              momentum=case["momentum"] or 0.0, centered=case["centered"],
                              nesterov=case["nesterov"], bias_correction=case["bias_correction"],
                              eps_in_sqrt=case["eps_in_sqrt"], gradient_accumulation_steps=accumulation)
    for g in grads:
        for _ in range(accumulation or 1):  # k equal micro-batches average to g
            assert opt.step([g.copy()])
    assert np.abs(p - p0).max() > 1e-3
    return p


@pytest.mark.parametrize("case", optax_trajectories.CASES, ids=optax_trajectories.case_id)
def test_neutral_optimizer_matches_optax_float64(case, optax_params):
    theirs = optax_params[f"{optax_trajectories.case_id(case)}|float64"]
    np.testing.assert_allclose(_ours(case, np.float64), theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", [c for c in optax_trajectories.CASES if c["bias_correction"]][:4],
                         ids=optax_trajectories.case_id)
def test_bias_correction_counts_updates_not_accumulation_calls(case, optax_params):
    theirs = optax_params[f"{optax_trajectories.case_id(case)}|float64"]
    np.testing.assert_allclose(_ours(case, np.float64, accumulation=2), theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", ["auto", "dense", "lazy"])
@pytest.mark.parametrize("kw", [dict(nesterov=True, momentum=0.9), dict(bias_correction=True),
                                dict(bias_correction=True, momentum=0.9, centered=True)])
def test_row_gradients_follow_nesterov_and_bias_correction(kw, mode):
    """A row-sparse gradient gives the dense numbers when the rule has options the rows' catch-up does not
    model (it is made dense), never an update that silently leaves them out."""
    a, b = np.ones((6, 3)), np.ones((6, 3))
    oa = rmsprop_ops.RMSProp([a], learning_rate=0.1, sparse_mode=mode, **kw)
    ob = rmsprop_ops.RMSProp([b], learning_rate=0.1, **kw)
    rng = np.random.default_rng(0)
    for t in range(4):
        idx = np.array([1, 4, 1]) if t % 2 else np.array([0, 5])
        vals = rng.standard_normal((len(idx), 3))
        dense = np.zeros((6, 3))
        np.add.at(dense, idx, vals)
        assert oa.step([rmsprop_ops.RowGrad(idx, vals)]) and ob.step([dense])
    np.testing.assert_array_equal(a, b)
