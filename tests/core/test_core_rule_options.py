"""Rule options other RMSProp implementations have (#21): optax's ``nesterov`` and ``bias_correction``
(with the update count ``step``, a number or a one-element array the kernel reads), torch's
``maximize``. Each is an attribute of the registry and a line of rule.h, nothing else.

Off, each is an exact identity: a digest of 576 configurations x 4 dtypes, recorded on the build before
the options existed, is unchanged. On, the kernels match the float64 reference, the real optax
(``optax.rmsprop``) and the real torch (``torch.optim.RMSprop(maximize=True)``).
"""

from __future__ import annotations

import itertools

import numpy as np
import optax_reference
import pytest

import rmsprop_ops
from rmsprop_ops.reference import rmsprop_step

from rule_grid import DTYPES, digest

# rule_grid.digest on the build before nesterov / bias_correction / maximize were added (and on main).
BEFORE = {
    "float32": "bf739e68a576e90fb20cf39752d97d56e3d21c24711aedf531fe108d955977d1",
    "float64": "a9674023ff5bac47db6eb2b67a924cfd3e46ea43a59a0c6134cd8fd67fe474be",
    "float16": "75b7a3c378d7a3ed4875f867c4ef5f59d7170134c0a31e08b2d1f2cd6b6d80c3",
    "bfloat16": "6bb92ce64d8857b684d5dd344074e67b2bf5ea0597a4b993d9935883a27f3ddd",
}


@pytest.mark.parametrize("dtype", DTYPES)
def test_options_off_change_no_result_bit_for_bit(dtype):
    assert digest(dtype) == BEFORE[dtype]
    assert digest(dtype, nesterov=False, bias_correction=False, maximize=False, step=7) == BEFORE[dtype]


def _problem(seed, n=29, dtype=np.float64):
    rng = np.random.default_rng(seed)
    state = np.float64 if dtype == np.float64 else np.float32
    return (rng.standard_normal(n).astype(dtype), [rng.standard_normal(n).astype(dtype) for _ in range(6)],
            state)


OPTIONS = [dict(zip(("nesterov", "bias_correction", "maximize", "centered", "momentum", "eps_in_sqrt",
                     "lr_in_momentum"), v))
           for v in itertools.product([False, True], [False, True], [False, True], [False, True], [0.0, 0.9],
                                      [True, False], [True, False])]


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(k for k, v in o.items() if v is True or v == 0.9)
                         or "plain")
def test_options_match_the_float64_reference(opts):
    p0, grads, state = _problem(1)
    # ms starts at 0.1 (as MindSpore and TF1 start it at 1): from zeros, a centered, bias-corrected variance
    # is exactly 0 at step 1 (ms/b = g^2 = (mg/b)^2), and any two evaluations of that cancellation differ.
    p, ms, mom, mg = p0.copy(), np.full_like(p0, 0.1), np.zeros_like(p0), np.zeros_like(p0)
    ref = {"param": p0.copy(), "mean_square": ms.copy(), "moment": mom.copy(), "mean_grad": mg.copy()}
    kw = dict(lr=0.01, rho=0.9, epsilon=1e-6, weight_decay=0.01, **opts)
    for t, g in enumerate(grads, start=1):
        rmsprop_ops.rmsprop_(p, g, ms, moment=mom, mean_grad=mg if opts["centered"] else None, step=t, **kw)
        ref = rmsprop_step(ref["param"], g, ref["mean_square"], moment=ref["moment"],
                           mean_grad=ref["mean_grad"] if opts["centered"] else None, step=t, **kw)
        ref["mean_grad"] = ref["mean_grad"] if opts["centered"] else mg
    # The kernel folds the bias correction into its coefficients (free when off) where the reference divides
    # as optax does: the same numbers, rounded apart.
    np.testing.assert_allclose(p, ref["param"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mom, ref["moment"], rtol=1e-12, atol=1e-14)


def test_each_option_changes_the_result():
    p0, grads, _ = _problem(2, dtype=np.float32)

    def run(**kw):
        p, ms, mom = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        for t, g in enumerate(grads, start=1):
            rmsprop_ops.rmsprop_(p, g, ms, moment=mom, lr=0.01, rho=0.9, epsilon=1e-6, momentum=0.9, step=t, **kw)
        return p

    base = run()
    for opt in ("nesterov", "bias_correction", "maximize"):
        assert not np.allclose(run(**{opt: True}), base), opt


@pytest.mark.parametrize("as_array", [lambda t: np.array(t, np.int64), lambda t: np.array([t], np.float32),
                                      lambda t: np.array(t, np.float64)])
def test_step_as_an_array_read_by_the_kernel_equals_the_number(as_array):
    p0, grads, _ = _problem(3, dtype=np.float32)
    runs = []
    for wrap in (float, as_array):
        p, ms, mg = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        for t, g in enumerate(grads, start=1):
            rmsprop_ops.rmsprop_multi_([p], [g], [ms], mean_grads=[mg], centered=True, bias_correction=True,
                                       step=wrap(t), lr=0.01, rho=0.9, epsilon=1e-6)
        runs.append(p)
    np.testing.assert_array_equal(*runs)


@pytest.mark.parametrize("kw, message", [
    (dict(step=0), "step: expected a value >= 1, got 0.0"),
    (dict(step=np.array(0, np.int64), bias_correction=True), "step: expected a value >= 1, got 0.0"),
    (dict(step=float("nan")), "step: expected a finite number, got nan"),
    (dict(rho=1.0, bias_correction=True), "rho: expected a value < 1 with bias_correction=True"),
    (dict(nesterov=1), "nesterov: expected a bool, got int"),
    (dict(step=np.array([1, 2])), "step: expected a number or a one-element array, got an array of 2 elements"),
])
def test_bad_option_values_are_named(kw, message):
    p = np.ones(4, np.float32)
    with pytest.raises((TypeError, ValueError)) as info:
        rmsprop_ops.rmsprop_(p, np.ones(4, np.float32), np.zeros(4, np.float32), **{"lr": 0.1, "rho": 0.9,
                                                                                    "epsilon": 1e-6, **kw})
    assert str(info.value).startswith(message), str(info.value)
    np.testing.assert_array_equal(p, np.ones(4, np.float32))


def test_multi_equals_per_tensor_with_options_on():
    sizes = [5, 70_001, 3]
    rng = np.random.default_rng(4)
    make = lambda: [rng.standard_normal(n).astype(np.float32) for n in sizes]  # noqa: E731
    ps, gs = make(), make()
    a = [p.copy() for p in ps], [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
    b = [p.copy() for p in ps], [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
    kw = dict(lr=0.01, rho=0.9, epsilon=1e-6, momentum=0.9, nesterov=True, bias_correction=True, maximize=True,
              step=np.array(2, np.int32))
    rmsprop_ops.rmsprop_multi_(a[0], gs, a[1], moments=a[2], **kw)
    for p, g, ms, mom in zip(b[0], gs, b[1], b[2]):
        rmsprop_ops.rmsprop_(p, g, ms, moment=mom, **kw)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


# ---- against the real implementations -------------------------------------------------------------------

optax_trajectories = optax_reference.trajectories


@pytest.fixture(scope="module")
def optax_params(tmp_path_factory):
    return optax_reference.compute(tmp_path_factory)


def _ours(case, dtype):
    p0, grads = optax_trajectories.problem(dtype)
    p, ms = p0.copy(), np.full_like(p0, optax_trajectories.HYPER["initial_scale"])
    mom = np.zeros_like(p0) if case["momentum"] is not None else None
    mg = np.zeros_like(p0) if case["centered"] else None
    for t, g in enumerate(grads, start=1):
        rmsprop_ops.rmsprop_(p, g, ms, moment=mom, mean_grad=mg, lr=0.01, rho=0.9, epsilon=1e-6,
                             momentum=case["momentum"] or 0.0, centered=case["centered"], nesterov=case["nesterov"],
                             bias_correction=case["bias_correction"], step=np.array(t, np.int32),
                             eps_in_sqrt=case["eps_in_sqrt"], lr_in_momentum=True)
    assert np.abs(p - p0).max() > 1e-3
    return p


# ms starts at 0.1 (optax's initial_scale): from zeros a centered, bias-corrected variance is exactly 0 at
# step 1 (ms/b = g^2 = (mg/b)^2), and no two floating-point evaluations of that cancellation agree.
@pytest.mark.parametrize("case", optax_trajectories.CASES, ids=optax_trajectories.case_id)
def test_matches_optax_rmsprop_float64(case, optax_params):
    theirs = optax_params[f"{optax_trajectories.case_id(case)}|float64"]
    np.testing.assert_allclose(_ours(case, np.float64), theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", optax_trajectories.CASES, ids=optax_trajectories.case_id)
def test_matches_optax_rmsprop_float32(case, optax_params):
    theirs = optax_params[f"{optax_trajectories.case_id(case)}|float32"]
    # optax multiplies by an rsqrt where the kernel divides by a sqrt: float32 rounding apart.
    np.testing.assert_allclose(_ours(case, np.float32), theirs, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("centered, momentum, weight_decay", list(itertools.product([False, True], [0.0, 0.9],
                                                                                   [0.0, 0.05])))
def test_maximize_matches_torch(centered, momentum, weight_decay):
    torch = pytest.importorskip("torch")
    p0, grads, _ = _problem(6, n=31, dtype=np.float32)
    w = torch.tensor(p0.copy(), requires_grad=True)
    opt = torch.optim.RMSprop([w], lr=0.01, alpha=0.9, eps=1e-6, momentum=momentum, centered=centered,
                              weight_decay=weight_decay, maximize=True, foreach=False)
    p, ms = p0.copy(), np.zeros_like(p0)
    mom = np.zeros_like(p0) if momentum else None
    mg = np.zeros_like(p0) if centered else None
    for g in grads:
        w.grad = torch.from_numpy(g.copy())
        opt.step()
        rmsprop_ops.rmsprop_(p, g, ms, moment=mom, mean_grad=mg, lr=0.01, rho=0.9, epsilon=1e-6, momentum=momentum,
                             centered=centered, weight_decay=weight_decay, maximize=True, eps_in_sqrt=False,
                             lr_in_momentum=False)
    np.testing.assert_allclose(p, w.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert np.mean(p - p0) * np.mean(np.sum(grads, axis=0)) > 0  # it ascended
