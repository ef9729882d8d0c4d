"""A grid of update configurations and a digest of their results, bit for bit: recorded before an option
is added to the rule, compared after, it shows the option's "off" changes no existing result."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np

import rmsprop_ops

try:
    import ml_dtypes
except ImportError:  # bfloat16 is left out without it
    ml_dtypes = None

DTYPES = ["float32", "float64", "float16"] + (["bfloat16"] if ml_dtypes is not None else [])
GRID = list(itertools.product(
    [False, True],                  # centered
    [None, 0.0, 0.9],               # momentum (None: no moment buffer)
    [True, False],                  # eps_in_sqrt
    [True, False],                  # lr_in_momentum
    [("l2", 0.0), ("l2", 0.01), ("l1", 0.02), ("decoupled", 0.05)],
    [(None, None, True), (0.3, 2.0, True), (0.3, None, False)],  # clip_gradient, clip_weights, clip after wd
    [1.0, 0.5],                     # rescale_grad
))


def _arrays(rng, dtype, n=37):
    dt = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    state = np.float64 if dtype == "float64" else np.float32
    p = rng.standard_normal(n).astype(dt)
    g = (rng.standard_normal(n) * 0.7).astype(dt)
    g[::11] = 0.0
    ms = np.abs(rng.standard_normal(n)).astype(state) * 0.1
    mom = rng.standard_normal(n).astype(state) * 0.01
    mg = rng.standard_normal(n).astype(state) * 0.01
    master = p.astype(np.float32) if dtype in ("float16", "bfloat16") else None
    return p, g, ms, mom, mg, master


def digest(dtype: str, steps: int = 3, **extra) -> str:
    """sha256 over every buffer after `steps` steps of every configuration of GRID, in dtype (``extra``:
    more keywords for every call, e.g. options given explicitly as off)."""
    h = hashlib.sha256()
    rng = np.random.default_rng(20240917)
    for centered, momentum, eps_in_sqrt, lr_in_momentum, (mode, wd), (cg, cw, after), rescale in GRID:
        p, g, ms, mom, mg, master = _arrays(rng, dtype)
        kw = dict(lr=0.05, rho=0.9, epsilon=1e-6, momentum=momentum or 0.0, centered=centered,
                  eps_in_sqrt=eps_in_sqrt, lr_in_momentum=lr_in_momentum, weight_decay=wd,
                  weight_decay_mode=mode, clip_gradient=cg, clip_weights=cw, clip_after_weight_decay=after,
                  rescale_grad=rescale, moment=mom if momentum is not None else None,
                  mean_grad=mg if centered else None, master_param=master, **extra)
        for _ in range(steps):
            rmsprop_ops.rmsprop_(p, g, ms, **kw)
        for a in (p, ms, mom, mg, master):
            if a is not None:
                h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


if __name__ == "__main__":
    for d in DTYPES:
        print(f'    "{d}": "{digest(d)}",')
