"""optax.rmsprop trajectories for test_core_rule_options.py, computed in a process of their own: JAX starts
threads, and a test process that forks later (the thread pool's fork test) must not have it imported.

Usage: optax_trajectories.py OUT.npz. For every case of OPTAX_CASES and both float32 and float64, the
params after the problem's steps, keyed "<case id>|<dtype>".
"""

from __future__ import annotations

import itertools
import os
import sys

import numpy as np

CASES = [dict(zip(("centered", "momentum", "nesterov", "bias_correction", "eps_in_sqrt"), v))
         for v in itertools.product([False, True], [None, 0.9], [False, True], [False, True], [True, False])
         if not (v[1] is None and v[2])]
HYPER = dict(learning_rate=0.01, decay=0.9, eps=1e-6, initial_scale=0.1)  # ms starts at 0.1, see the test


def case_id(case) -> str:
    return "-".join(f"{k}={v}" for k, v in case.items())


def problem(dtype, seed=5, n=33, steps=6):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n).astype(dtype), [rng.standard_normal(n).astype(dtype) for _ in range(steps)]


def main(out):
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 arrays stay float64 (float32 ones are unaffected)
    import jax.numpy as jnp
    import optax

    results = {}
    for case, dtype in itertools.product(CASES, (np.float32, np.float64)):
        p0, grads = problem(dtype)
        tx = optax.rmsprop(**HYPER, **case)
        params = jnp.asarray(p0)
        state = tx.init(params)
        for g in grads:
            updates, state = tx.update(jnp.asarray(g), state, params)
            params = optax.apply_updates(params, updates)
        results[f"{case_id(case)}|{np.dtype(dtype).name}"] = np.asarray(params)
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
