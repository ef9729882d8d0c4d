"""rmsprop_ops.RMSProp(convention="torch") against torch.optim.RMSprop, 12 steps of every option."""

import numpy as np
import pytest

import rmsprop_ops

torch = pytest.importorskip("torch")

STEPS = 12
SHAPES = [(7,), (3, 5), (1,)]


def _problem(seed):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    curv = [rng.uniform(0.1, 3.0, s).astype(np.float32) for s in SHAPES]
    noise = [[rng.standard_normal(s).astype(np.float32) * 0.3 for s in SHAPES] for _ in range(STEPS)]
    return params, curv, noise


def _grads(ps, curv, noise_t):
    """Gradient of sum(curv * p^2 / 2) plus noise, computed from each optimizer's own params."""
    return [(c * np.asarray(p) + n).astype(np.float32) for p, c, n in zip(ps, curv, noise_t)]


def _run_ours(params, curv, noise, groups=None, **kw):
    ps = [p.copy() for p in params]
    spec = ps if groups is None else [dict(g, params=[ps[i] for i in g["params"]]) for g in groups]
    opt = rmsprop_ops.RMSProp(spec, convention="torch", **kw)
    for t in range(STEPS):
        opt.step(_grads(ps, curv, noise[t]))
    return ps


def _run_torch(params, curv, noise, groups=None, **kw):
    ts = [torch.tensor(p, requires_grad=True) for p in params]
    spec = ts if groups is None else [dict(g, params=[ts[i] for i in g["params"]]) for g in groups]
    opt = torch.optim.RMSprop(spec, foreach=False, **kw)
    for t in range(STEPS):
        for tensor, g in zip(ts, _grads([x.detach().numpy() for x in ts], curv, noise[t])):
            tensor.grad = torch.from_numpy(g)
        opt.step()
    return [t.detach().numpy() for t in ts]


CASES = [
    ("defaults", {}, {}),
    ("lr_alpha_eps", {"learning_rate": 0.05, "rho": 0.9, "epsilon": 1e-6}, {"lr": 0.05, "alpha": 0.9, "eps": 1e-6}),
    ("momentum", {"momentum": 0.9}, {"momentum": 0.9}),
    ("centered", {"centered": True}, {"centered": True}),
    ("centered_momentum", {"centered": True, "momentum": 0.8, "learning_rate": 0.02},
     {"centered": True, "momentum": 0.8, "lr": 0.02}),
    ("weight_decay", {"weight_decay": 0.1}, {"weight_decay": 0.1}),
    ("all", {"weight_decay": 0.05, "momentum": 0.5, "centered": True, "rho": 0.95, "epsilon": 1e-4},
     {"weight_decay": 0.05, "momentum": 0.5, "centered": True, "alpha": 0.95, "eps": 1e-4}),
]


@pytest.mark.parametrize("name,ours,theirs", CASES, ids=[c[0] for c in CASES])
def test_matches_torch(name, ours, theirs):
    params, curv, noise = _problem(1)
    got = _run_ours(params, curv, noise, **ours)
    want = _run_torch(params, curv, noise, **theirs)
    for g, w, p0 in zip(got, want, params):
        assert np.abs(g - p0).max() > 1e-3  # the params really moved
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_param_groups_match_torch():
    params, curv, noise = _problem(2)
    ours = [{"params": [0], "lr": 0.03, "momentum": 0.9}, {"params": [1, 2], "weight_decay": 0.2}]
    theirs = [{"params": [0], "lr": 0.03, "momentum": 0.9}, {"params": [1, 2], "weight_decay": 0.2}]
    got = _run_ours(params, curv, noise, groups=ours)
    want = _run_torch(params, curv, noise, groups=theirs)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_torch_cpu_tensors_are_updated_in_place_through_dlpack():
    params, curv, noise = _problem(3)
    ts = [torch.tensor(p) for p in params]
    opt = rmsprop_ops.RMSProp(ts, convention="torch", momentum=0.9)
    for t in range(STEPS):
        opt.step([torch.from_numpy(g) for g in _grads([x.numpy() for x in ts], curv, noise[t])])
    want = _run_torch(params, curv, noise, momentum=0.9)
    for t, w in zip(ts, want):
        np.testing.assert_allclose(t.numpy(), w, rtol=1e-5, atol=1e-6)


def test_torch_tensors_with_python_side_options_equal_numpy_arrays():
    params, curv, noise = _problem(4)
    kw = {"convention": "keras", "learning_rate": 0.05, "clipnorm": 0.5, "use_ema": True,
          "gradient_accumulation_steps": 2, "skip_nonfinite": True}
    ts = [torch.tensor(p) for p in params]
    arrs = [p.copy() for p in params]
    o_t, o_a = rmsprop_ops.RMSProp(ts, **kw), rmsprop_ops.RMSProp(arrs, **kw)
    for t in range(STEPS):
        o_t.step([torch.from_numpy(g) for g in _grads([x.numpy() for x in ts], curv, noise[t])])
        o_a.step(_grads(arrs, curv, noise[t]))
    o_t.finalize_variable_values()
    o_a.finalize_variable_values()
    for t, a in zip(ts, arrs):
        np.testing.assert_array_equal(t.numpy(), a)


MAXIMIZE_CASES = [
    ("plain", {}),
    ("momentum", {"momentum": 0.9}),
    ("weight_decay_centered", {"weight_decay": 0.1, "centered": True, "momentum": 0.5}),
]


@pytest.mark.parametrize("name,kw", MAXIMIZE_CASES, ids=[c[0] for c in MAXIMIZE_CASES])
def test_maximize_matches_torch(name, kw):
    """torch's maximize negates the gradient first (before the coupled decay): the neutral optimizer's
    maximize=True, with the gradients of the negated objective, follows it step for step."""
    params, curv, noise = _problem(5)
    neg_noise = [[-n for n in step] for step in noise]
    got = _run_ours(params, [-c for c in curv], neg_noise, maximize=True, **kw)
    want = _run_torch(params, [-c for c in curv], neg_noise, maximize=True, **kw)
    for g, w, p0 in zip(got, want, params):
        assert np.abs(g - p0).max() > 1e-3
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_torch_names_are_accepted_under_the_torch_convention():
    params, curv, noise = _problem(6)
    got = _run_ours(params, curv, noise, lr=0.02, alpha=0.9, eps=1e-6, momentum=0.5)
    want = _run_torch(params, curv, noise, lr=0.02, alpha=0.9, eps=1e-6, momentum=0.5)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
