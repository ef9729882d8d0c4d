"""rmsprop_ops.mxnet_compat.RMSProp against MXNet's published update rules.

MXNet 1.9.1 only installs beside numpy<1.24, so its rules are written down here as a NumPy reference,
transcribed from the MXNet sources:

* MXNet 1.9.1 (``release="1.9.1"``): ``src/operator/optimizer_op-inl.h`` at tag 1.9.1,
  ``RMSPropUpdateKernel::Map`` (centered=False) and ``RMSPropAlexUpdateKernel::Map`` (centered=True),
  the only rule 1.x runs (``Optimizer.update``);
* MXNet 2.x (``release="2.0"``): ``python/mxnet/optimizer/rmsprop.py`` ``RMSProp.step`` at 2.0.0.beta1 /
  master, whose kernels (``fused_step``) compute the same rule;
* learning rate / weight decay per index: ``python/mxnet/optimizer/optimizer.py``,
  ``Optimizer._update_count``, ``_get_lr``, ``_get_wd``, ``set_wd_mult`` (1.9.1 zeroes the weight decay of
  names not ending in ``_weight`` / ``_gamma``; 2.x does not).

The reference computes in float32 like MXNet's ``DType=float32`` kernels. Real MXNet 1.9.1 trajectories,
recorded in a separate numpy<1.24 environment by ``tests/data/record_mxnet_rmsprop.py``, are replayed at the
end of this file (and check the transcription of the fused path too).
"""

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops.mxnet_compat import RELEASES, RMSProp

STEPS = 12
SHAPES = [(5,), (2, 3), (4,)]
f32 = np.float32


def _fused_ref(w, g, st, *, lr, wd, rho, eps, momentum, centered, rescale, clip_g, clip_w):
    """optimizer_op-inl.h: grad_rescaled = rescale*g + wd*w; clip AFTER wd; sqrt(n + eps)."""
    g = f32(rescale) * g + f32(wd) * w
    if clip_g is not None and clip_g >= 0:
        g = np.clip(g, -f32(clip_g), f32(clip_g))
    if not centered:
        n = st
        n[:] = (f32(1) - f32(rho)) * (g * g) + f32(rho) * n
        w = w - f32(lr) * (g / np.sqrt(n + f32(eps)))
    else:
        mean, n, delta = st
        n[:] = (f32(1) - f32(rho)) * g * g + f32(rho) * n
        mean[:] = (f32(1) - f32(rho)) * g + f32(rho) * mean
        delta[:] = f32(momentum) * delta - (f32(lr) * g / np.sqrt(n - mean * mean + f32(eps)))
        w = w + delta
    if clip_w is not None and clip_w >= 0:
        w = np.clip(w, -f32(clip_w), f32(clip_w))
    return w


def _step_ref(w, g, st, *, lr, wd, rho, eps, momentum, centered, rescale, clip_g, clip_w):
    """rmsprop.py RMSProp.step: grad *= rescale; clip BEFORE wd; sqrt(var) + eps when uncentered."""
    g = g * f32(rescale)
    if clip_g is not None:
        g = np.clip(g, -f32(clip_g), f32(clip_g))
    g = g + f32(wd) * w
    if not centered:
        var = st
        var[:] = var * f32(rho) + (f32(1) - f32(rho)) * np.square(g)
        w = w - f32(lr) * (g / (np.sqrt(var) + f32(eps)))
    else:
        mean, var, mom = st
        mean[:] = mean * f32(rho) + (f32(1) - f32(rho)) * g
        var[:] = var * f32(rho) + (f32(1) - f32(rho)) * np.square(g)
        mom[:] = mom * f32(momentum) - f32(lr) * g / np.sqrt(var - np.square(mean) + f32(eps))
        w = w + mom
    if clip_w:
        w = np.clip(w, -f32(clip_w), f32(clip_w))
    return w


class _MXNetReference:
    """Optimizer bookkeeping of optimizer.py: per-index update counts, lr_scheduler(num_update), mults."""

    def __init__(self, *, fused, learning_rate=0.001, rho=0.9, momentum=0.9, epsilon=1e-8, centered=False,
                 clip_weights=None, rescale_grad=1.0, wd=0.0, clip_gradient=None, lr_scheduler=None,
                 lr_mult=None, wd_mult=None, idx2name=None, name_rule=True):
        self.rule = _fused_ref if fused else _step_ref
        self.kw = dict(rho=rho, eps=epsilon, momentum=momentum, centered=centered, rescale=rescale_grad,
                       clip_g=clip_gradient, clip_w=clip_weights)
        self.lr, self.wd, self.sched = learning_rate, wd, lr_scheduler
        self.lr_mult = dict(lr_mult or {})
        self.idx2name = dict(idx2name or {})
        self.wd_mult = {n: 0.0 for n in self.idx2name.values()
                        if name_rule and not n.endswith(("_weight", "_gamma"))}
        self.wd_mult.update(wd_mult or {})
        self.counts, self.num_update = {}, 0

    def _mult(self, table, i):
        return table[i] if i in table else table.get(self.idx2name.get(i), 1.0)

    def step(self, indices, weights, grads, states):
        out = []
        for i, w, g, st in zip(indices, weights, grads, states):
            self.counts[i] = self.counts.get(i, 0) + 1
            self.num_update = max(self.counts[i], self.num_update)
            lr = (self.sched(self.num_update) if self.sched else self.lr) * self._mult(self.lr_mult, i)
            wd = self.wd * self._mult(self.wd_mult, i)
            out.append(self.rule(w, g, st, lr=lr, wd=wd, **self.kw))
        return out


def _problem(seed):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(f32) for s in SHAPES]
    curv = [rng.uniform(0.5, 4.0, s).astype(f32) for s in SHAPES]
    noise = [[rng.standard_normal(s).astype(f32) for s in SHAPES] for _ in range(STEPS)]
    return params, curv, noise


def _states(centered, params):
    if centered:
        return [(np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)) for p in params]
    return [np.zeros_like(p) for p in params]


CASES = [
    ("defaults", {}),
    ("options", {"learning_rate": 0.01, "rescale_grad": 0.5, "clip_gradient": 0.8, "wd": 0.05, "clip_weights": 1.1}),
    ("centered", {"learning_rate": 0.005, "centered": True}),
    ("centered_options", {"learning_rate": 0.01, "centered": True, "momentum": 0.7, "rescale_grad": 2.0,
                          "clip_gradient": 1.5, "wd": 0.02, "clip_weights": 1.3, "epsilon": 1e-5, "rho": 0.95}),
    ("mults", {"learning_rate": 0.01, "wd": 0.1, "lr_mult": {0: 2.0, "fc_bias": 0.5},
               "idx2name": {0: "fc_weight", 1: "fc_bias", 2: "bn_gamma"}}),
    ("mults_explicit_wd", {"learning_rate": 0.01, "wd": 0.1, "wd_mult": {0: 3.0, 2: 0.0}}),
    ("scheduler", {"learning_rate": None, "lr_scheduler": lambda n: 0.02 * 0.5 ** ((n - 1) // 4),
                   "centered": True}),
]


def _make_ours(kw):
    kw = dict(kw)
    lr_mult, wd_mult, idx2name = kw.pop("lr_mult", None), kw.pop("wd_mult", None), kw.pop("idx2name", None)
    opt = RMSProp(param_idx2name=idx2name, **kw)
    if lr_mult:
        opt.set_lr_mult(lr_mult)
    if wd_mult:
        opt.set_wd_mult(wd_mult)
    return opt


def _mxnet_state(release, centered, ours):
    """Our state in the reference's layout: (mean, n, delta) centered, n otherwise."""
    if not centered:
        return ours[0] if release == "1.9.1" else ours
    return (ours[1], ours[0], ours[2]) if release == "1.9.1" else ours


@pytest.mark.parametrize("path", ["fused_step", "step", "update"])
@pytest.mark.parametrize("release", ["1.9.1", "2.0"])
@pytest.mark.parametrize("name,kw", CASES, ids=[c[0] for c in CASES])
def test_matches_mxnet_rules(name, kw, release, path):
    params, curv, noise = _problem(11)
    ref_kw = {k: v for k, v in kw.items() if k != "idx2name"}
    ref = _MXNetReference(fused=release == "1.9.1", name_rule=release == "1.9.1", idx2name=kw.get("idx2name"),
                          **{k: v for k, v in ref_kw.items() if v is not None})
    ours = _make_ours(dict(kw, release=release))
    centered = kw.get("centered", False)
    ws_ref, st_ref = [p.copy() for p in params], _states(centered, params)
    ws = [p.copy() for p in params]
    st = [ours.create_state(i, w) for i, w in enumerate(ws)]
    for t in range(STEPS):
        ws_ref = ref.step(range(3), ws_ref, [c * w + n for w, c, n in zip(ws_ref, curv, noise[t])], st_ref)
        grads = [c * w + n for w, c, n in zip(ws, curv, noise[t])]
        if path == "update":
            for i in range(3):
                ours.update(i, ws[i], grads[i], st[i])
        else:
            getattr(ours, path)(list(range(3)), ws, grads, st)
    assert ours.num_update == ref.num_update == STEPS
    for w, r, p0 in zip(ws, ws_ref, params):
        assert np.abs(w - p0).max() > 1e-3
        np.testing.assert_allclose(w, r, rtol=1e-5, atol=1e-6)
    for s, r in zip(st, st_ref):
        s = _mxnet_state(release, centered, s)
        for a, b in zip(s if centered else [s], r if centered else [r]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # delta with MXNet's sign


@pytest.mark.parametrize("release", ["1.9.1", "2.0"])
@pytest.mark.parametrize("centered", [False, True])
def test_step_fused_step_and_update_agree_within_a_release(release, centered):
    """No MXNet release has two differing paths (the issue's case: clip_gradient, wd and rho 0.5)."""
    params, curv, noise = _problem(12)
    out = []
    for path in ("fused_step", "step", "update"):
        opt = RMSProp(learning_rate=0.01, wd=0.5, clip_gradient=0.1, rho=0.5, epsilon=1e-2, centered=centered,
                      release=release, use_fused_step=path != "step")
        w = params[0].copy()
        st = opt.create_state(0, w)
        for t in range(STEPS):
            g = curv[0] * w + noise[t][0]
            opt.update(0, w, g, st) if path == "update" else getattr(opt, path)([0], [w], [g], [st])
        out.append((w, st))
    for w, st in out[1:]:
        np.testing.assert_array_equal(w, out[0][0])
        for a, b in zip(st, out[0][1]):
            np.testing.assert_array_equal(a, b)


def test_the_two_releases_really_differ():
    params, curv, noise = _problem(12)
    out = []
    for release in RELEASES:
        opt = RMSProp(learning_rate=0.01, wd=0.5, clip_gradient=0.1, epsilon=1e-2, release=release)
        w = params[0].copy()
        st = opt.create_state(0, w)
        for t in range(STEPS):
            opt.update(0, w, curv[0] * w + noise[t][0], st)
        out.append(w)
    assert np.abs(out[0] - out[1]).max() > 1e-4


def test_release_layouts_and_names():
    w = np.ones(3, f32)
    assert isinstance(RMSProp().create_state(0, w), tuple) and len(RMSProp().create_state(0, w)) == 1
    assert isinstance(RMSProp(release="2.0").create_state(0, w), np.ndarray)
    assert len(RMSProp(centered=True, release="2.0").create_state(0, w)) == 3
    assert RMSProp(gamma1=0.5, gamma2=0.7).rho == 0.5
    with pytest.raises(TypeError, match="gamma1: MXNet 2.x removed gamma1; pass rho="):
        RMSProp(gamma1=0.5, release="2.0")
    with pytest.raises(ValueError, match="release"):
        RMSProp(release="1.8")
    assert "release='2.0'" in repr(RMSProp(release="2.0"))
    opt = RMSProp(param_idx2name={0: "fc_bias"}, wd=0.1)
    assert opt._mult(opt.wd_mult, 0) == 0.0
    opt = RMSProp(param_idx2name={0: "fc_bias"}, wd=0.1, release="2.0")
    assert opt._mult(opt.wd_mult, 0) == 1.0


def test_neutral_optimizer_mxnet_convention_is_the_fused_rule():
    params, curv, noise = _problem(13)
    for centered in (False, True):
        kw = dict(learning_rate=0.01, rescale_grad=0.5, clip_gradient=0.8, clip_weights=1.2, centered=centered)
        ref = _MXNetReference(fused=True, wd=0.05, **kw)
        ws_ref, st_ref = [p.copy() for p in params], _states(centered, params)
        ws = [p.copy() for p in params]
        opt = rmsprop_ops.RMSProp(ws, convention="mxnet", weight_decay=0.05, **kw)
        for t in range(STEPS):
            ws_ref = ref.step(range(3), ws_ref, [c * w + n for w, c, n in zip(ws_ref, curv, noise[t])], st_ref)
            opt.step([c * w + n for w, c, n in zip(ws, curv, noise[t])])
        for w, r in zip(ws, ws_ref):
            np.testing.assert_allclose(w, r, rtol=1e-5, atol=1e-6)


def test_bad_calls_raise_and_leave_everything_untouched():
    opt = RMSProp(learning_rate=0.1, centered=True)
    w = np.ones(3, f32)
    st = opt.create_state(0, w)
    with pytest.raises(ValueError, match="grads"):
        opt.step([0, 1], [w, w.copy()], [w], [st, st])
    with pytest.raises((TypeError, ValueError)):
        opt.step([0], [w], [np.ones(4, f32)], [st])
    assert opt.num_update == 0 and (w == 1).all() and all((s == 0).all() for s in st)
    with pytest.raises(ValueError, match="rho"):
        RMSProp(rho=1.5)


# ------------------------------------------------------------------------------ recorded MXNet 1.9.1
# tests/data/mxnet_1.9.1_rmsprop.npz was written by tests/data/record_mxnet_rmsprop.py running
# mx.optimizer.RMSProp.update (MXNet 1.9.1, numpy 1.23.5, CPU, float32) in a separate environment.
# MXNet 1.x calls rho ``gamma1`` and momentum ``gamma2`` and orders the centered state (n, g, delta).
_DATA = __import__("pathlib").Path(__file__).resolve().parents[1] / "data" / "mxnet_1.9.1_rmsprop.npz"


def _recorded():
    import json

    with np.load(_DATA) as f:
        data = {k: f[k] for k in f.files}
    return data, json.loads(str(data["cases"]))


def _keys(d):
    return {int(k) if k.isdigit() else k: v for k, v in d.items()}


def _ours_from_mx1(cfg):
    kw = dict(cfg)  # MXNet 1.x keyword names (gamma1, gamma2) are accepted as they are
    lr_mult = kw.pop("lr_mult", None)
    if "param_idx2name" in kw:
        kw["param_idx2name"] = _keys(kw["param_idx2name"])
    if "factor_scheduler" in kw:
        step, factor = kw.pop("factor_scheduler")
        base = kw["learning_rate"]
        kw["lr_scheduler"] = lambda n: base * factor ** ((n - 1) // step)  # FactorScheduler's loop, closed form
    opt = RMSProp(**kw)
    if lr_mult:
        opt.set_lr_mult(_keys(lr_mult))
    return opt


@pytest.mark.parametrize("one_call", [False, True], ids=["update_per_index", "one_fused_step"])
@pytest.mark.parametrize("case", ["plain", "options", "centered", "centered_options", "mults", "scheduler"])
def test_matches_recorded_mxnet_1_9_1(case, one_call):
    data, cases = _recorded()
    assert str(data["mxnet_version"]) == "1.9.1"
    cfg = cases[case]
    n = len(SHAPES)
    ws = [data[f"init_{i}"].copy() for i in range(n)]
    curv = [data[f"curv_{i}"] for i in range(n)]
    noise = [data[f"noise_{i}"] for i in range(n)]
    opt = _ours_from_mx1(cfg)
    states = [opt.create_state(i, w) for i, w in enumerate(ws)]
    for t in range(STEPS):
        grads = [curv[i] * ws[i] + noise[i][t] for i in range(n)]
        if one_call:
            opt.fused_step(list(range(n)), ws, grads, states)
        else:
            for i in range(n):
                opt.update(i, ws[i], grads[i], states[i])
        for i in range(n):
            np.testing.assert_allclose(ws[i], data[f"{case}/traj_{i}"][t + 1], rtol=1e-5, atol=1e-6,
                                       err_msg=f"step {t + 1}, weight {i}")
    for i in range(n):
        assert np.abs(ws[i] - data[f"init_{i}"]).max() > 1e-3
        # the states are MXNet 1.9.1's, in its order and sign: (n,) or (n, g, delta)
        assert len(states[i]) == (3 if cfg.get("centered") else 1)
        for k, s in enumerate(states[i]):
            np.testing.assert_allclose(s, data[f"{case}/state_{i}_{k}"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["plain", "options", "centered", "centered_options", "scheduler"])
def test_numpy_transcription_matches_recorded_mxnet(case):
    """The fused-rule transcription above reproduces the real MXNet trajectories too."""
    data, cases = _recorded()
    cfg = dict(cases[case])
    n = len(SHAPES)
    kw = {"learning_rate": cfg.get("learning_rate", 0.001), "rho": cfg.get("gamma1", 0.9),
          "momentum": cfg.get("gamma2", 0.9), "centered": cfg.get("centered", False),
          "rescale_grad": cfg.get("rescale_grad", 1.0), "wd": cfg.get("wd", 0.0),
          "clip_gradient": cfg.get("clip_gradient"), "clip_weights": cfg.get("clip_weights"),
          "epsilon": cfg.get("epsilon", 1e-8)}
    if "factor_scheduler" in cfg:
        step, factor = cfg["factor_scheduler"]
        kw["lr_scheduler"] = lambda u: cfg["learning_rate"] * factor ** ((u - 1) // step)
    ref = _MXNetReference(fused=True, **{k: v for k, v in kw.items() if v is not None})
    ws = [data[f"init_{i}"].copy() for i in range(n)]
    st = _states(kw["centered"], ws)
    for t in range(STEPS):
        ws = ref.step(range(n), ws, [data[f"curv_{i}"] * ws[i] + data[f"noise_{i}"][t] for i in range(n)], st)
    for i in range(n):
        np.testing.assert_allclose(ws[i], data[f"{case}/traj_{i}"][-1], rtol=1e-5, atol=1e-6)
