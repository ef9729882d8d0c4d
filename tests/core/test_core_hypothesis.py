"""Property tests: random shapes and values against the reference, and a fuzz of the pybind11 boundary
run in a subprocess so that a crash fails the test instead of killing pytest."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import rmsprop_ops
from rmsprop_ops.reference import rmsprop_step

finite32 = st.floats(-1e3, 1e3, width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40),
    data=st.data(),
    centered=st.booleans(),
    momentum=st.sampled_from([None, 0.0, 0.9]),
    eps_in_sqrt=st.booleans(),
    lr_in_momentum=st.booleans(),
    rho=st.floats(0.0, 1.0),
    lr=st.floats(0.0, 1.0),
    epsilon=st.floats(1e-8, 1.0),
)
def test_random_shapes_and_values_match_reference(shape, data, centered, momentum, eps_in_sqrt,
                                                  lr_in_momentum, rho, lr, epsilon):
    arr = lambda: data.draw(hnp.arrays(np.float64, shape, elements=finite32))  # noqa: E731
    p, g = arr(), arr()
    ms = np.array(np.abs(arr()))
    mom = arr() if momentum is not None else None
    mg = np.array(arr() * 0.1) if centered else None
    hyper = dict(lr=lr, rho=rho, epsilon=epsilon, momentum=momentum or 0.0, centered=centered,
                 eps_in_sqrt=eps_in_sqrt, lr_in_momentum=lr_in_momentum)
    ref = rmsprop_step(p, g, ms, moment=mom, mean_grad=mg, **hyper)
    rmsprop_ops.rmsprop_(p, g, ms, moment=mom, mean_grad=mg, **hyper)
    np.testing.assert_allclose(ms, ref["mean_square"], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(p, ref["param"], rtol=1e-9, atol=1e-9)
    if mom is not None:
        np.testing.assert_allclose(mom, ref["moment"], rtol=1e-9, atol=1e-9)


FUZZ = os.path.join(os.path.dirname(__file__), "..", "scripts", "fuzz_boundary.py")


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzz_boundary_in_subprocess(seed):
    proc = subprocess.run([sys.executable, FUZZ, str(seed), "300"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "fuzz ok" in proc.stdout
