"""Shared test data for the core tests: dtypes, tolerances and state construction."""

from __future__ import annotations

import numpy as np

try:
    import ml_dtypes

    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # bfloat16 cases are skipped without ml_dtypes
    BF16 = None

# (name, param dtype, uses a float32 master weight)
DTYPES = [
    ("float32", np.dtype(np.float32), False),
    ("float64", np.dtype(np.float64), False),
    ("float16", np.dtype(np.float16), False),
    ("float16+master", np.dtype(np.float16), True),
    ("bfloat16", BF16, False),
    ("bfloat16+master", BF16, True),
]

# Per-step tolerances against the float64 reference fed the same inputs. float32 math is a handful of
# correctly rounded operations, so a few ulps; 16-bit params additionally round once on store.
TOL = {
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-14),
    np.dtype(np.float32): dict(rtol=4e-6, atol=1e-6),
    np.dtype(np.float16): dict(rtol=1e-3, atol=1e-4),
}
if BF16 is not None:
    TOL[BF16] = dict(rtol=8e-3, atol=1e-3)


def state_dtype(param_dtype):
    return np.dtype(np.float64) if param_dtype == np.float64 else np.dtype(np.float32)


def make_case(rng, shape, dtype, *, momentum, centered, master, ms_init=0.0):
    """Param, grad and state arrays for one tensor, with values that keep every rule well conditioned."""
    sdt = state_dtype(dtype)
    p32 = np.asarray(rng.standard_normal(shape), dtype=np.float32)
    arrays = {
        "param": p32.astype(dtype),
        "grad": np.asarray(rng.standard_normal(shape), dtype=dtype),
        "mean_square": np.asarray(ms_init + rng.uniform(0.0, 0.5, shape), dtype=sdt),
        "moment": np.asarray(rng.standard_normal(shape) * 0.01, dtype=sdt) if momentum is not None else None,
        "mean_grad": np.asarray(rng.standard_normal(shape) * 0.01, dtype=sdt) if centered else None,
        "master_param": p32.copy() if master else None,
    }
    if dtype == np.float64:
        arrays["param"] = np.asarray(rng.standard_normal(shape))
    return arrays


def quadratic_problem(seed, shapes, steps):
    """Params, per-element curvatures and per-step gradient noise for a noisy quadratic
    (grad = curv * p + noise), shared by the tests that replay a framework's optimizer step by step."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    curv = [rng.uniform(0.1, 3.0, s).astype(np.float32) for s in shapes]
    noise = [[(rng.standard_normal(s) * 0.5).astype(np.float32) for s in shapes] for _ in range(steps)]
    return params, curv, noise


class DLPackOnly:
    """An array (NumPy, torch CPU or CUDA) seen through the DLPack protocol alone: forces the core's
    protocol path, past the NumPy and torch fast paths."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, **kw):
        return self._a.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()
