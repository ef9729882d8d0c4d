"""rmsprop_ops.translate: checkpoints moved between torch, timm, Keras 3, MXNet 1.9.1 and the neutral
optimizer, checked by continuing training after the load next to the real framework (fp32 tolerance;
bit for bit where both sides run this package's core), and the refusals of what cannot map exactly."""

import os

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops import translate
from rmsprop_ops.mxnet_compat import RMSProp as MXRMSProp

from cases import quadratic_problem
from timm_optim import timm_optim_module

torch = pytest.importorskip("torch")

STEPS = 6
SHAPES = [(5,), (2, 3)]
TOL = dict(rtol=1e-5, atol=1e-6)


def _problem(seed):
    return quadratic_problem(seed, SHAPES, 2 * STEPS)


def _grads(ps, curv, noise_t):
    return [(c * np.asarray(p) + n).astype(np.float32) for p, c, n in zip(ps, curv, noise_t)]


def _torch_run(opt, ts, curv, noise, steps):
    for t in steps:
        for x, g in zip(ts, _grads([x.detach().numpy() for x in ts], curv, noise[t])):
            x.grad = torch.from_numpy(g)
        opt.step()


def _ours_run(opt, ps, curv, noise, steps):
    for t in steps:
        opt.step(_grads(ps, curv, noise[t]))


def _close(ours, theirs):
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)


TORCH_CASES = [
    ("momentum", {"lr": 0.02, "momentum": 0.9}),
    ("centered_momentum_wd", {"lr": 0.02, "momentum": 0.5, "centered": True, "weight_decay": 0.1, "alpha": 0.9}),
    ("plain", {"lr": 0.05}),
]


@pytest.mark.parametrize("lr_inside", [False, True], ids=["buffer_as_torch", "buffer_times_lr"])
@pytest.mark.parametrize("name,kw", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_torch_to_neutral_continues_like_torch(name, kw, lr_inside):
    params, curv, noise = _problem(1)
    ts = [torch.tensor(p, requires_grad=True) for p in params]
    topt = torch.optim.RMSprop(ts, foreach=False, **kw)
    _torch_run(topt, ts, curv, noise, range(STEPS))
    ps = [x.detach().numpy().copy() for x in ts]
    opt = rmsprop_ops.RMSProp(ps, convention="torch", lr_in_momentum=lr_inside, **kw)
    opt.import_state(translate.from_torch(topt.state_dict()))
    assert opt.calls == STEPS
    _torch_run(topt, ts, curv, noise, range(STEPS, 2 * STEPS))
    _ours_run(opt, ps, curv, noise, range(STEPS, 2 * STEPS))
    _close(ps, [x.detach().numpy() for x in ts])


@pytest.mark.parametrize("lr_inside", [False, True], ids=["buffer_as_torch", "buffer_times_lr"])
@pytest.mark.parametrize("name,kw", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_neutral_to_torch_continues_like_the_neutral_optimizer(name, kw, lr_inside):
    params, curv, noise = _problem(2)
    ps = [p.copy() for p in params]
    opt = rmsprop_ops.RMSProp(ps, convention="torch", lr_in_momentum=lr_inside, **kw)
    _ours_run(opt, ps, curv, noise, range(STEPS))
    ts = [torch.tensor(p, requires_grad=True) for p in ps]
    topt = torch.optim.RMSprop(ts, foreach=False, **kw)
    topt.load_state_dict(translate.to_torch(opt.export_state(), topt.state_dict(), as_tensor=torch.as_tensor))
    _ours_run(opt, ps, curv, noise, range(STEPS, 2 * STEPS))
    _torch_run(topt, ts, curv, noise, range(STEPS, 2 * STEPS))
    _close(ps, [x.detach().numpy() for x in ts])
    assert float(topt.state_dict()["state"][0]["step"]) == 2 * STEPS


def test_torch_params_without_state_start_fresh():
    params, curv, noise = _problem(3)
    ts = [torch.tensor(p, requires_grad=True) for p in params]
    topt = torch.optim.RMSprop(ts, lr=0.02, momentum=0.9, foreach=False)
    ts[0].grad = torch.from_numpy(_grads([params[0]], curv[:1], noise[0][:1])[0])
    topt.step()  # params[1] never had a gradient: torch has no state for it
    state = translate.from_torch(topt.state_dict())
    assert state.params[1].mean_square is None
    ps = [x.detach().numpy().copy() for x in ts]
    opt = rmsprop_ops.RMSProp(ps, convention="torch", lr=0.02, momentum=0.9)
    opt.import_state(state)
    assert not opt.state_dict()["mean_square.1"].any() and not opt.state_dict()["moment.1"].any()
    _torch_run(topt, ts, curv, noise, range(1, STEPS))
    _ours_run(opt, ps, curv, noise, range(1, STEPS))
    _close(ps, [x.detach().numpy() for x in ts])


@pytest.mark.parametrize("lr_in_momentum", [True, False])
def test_timm_round_trip_continues_like_timm(lr_in_momentum):
    with timm_optim_module("rmsprop_tf") as mod:
        if mod is None:
            pytest.skip("timm is not installed (pip install --no-deps timm)")
        params, curv, noise = _problem(4)
        kw = {"lr": 0.02, "alpha": 0.9, "eps": 1e-3, "momentum": 0.9, "lr_in_momentum": lr_in_momentum}
        ts = [torch.tensor(p) for p in params]
        ref = mod.RMSpropTF(ts, **kw)
        _torch_run(ref, ts, curv, noise, range(STEPS))
        ps = [x.numpy().copy() for x in ts]
        opt = rmsprop_ops.RMSProp(ps, convention="tf1", **kw)  # timm's names under the tf1 convention
        opt.import_state(translate.from_timm(ref.state_dict()))
        # and back into a second timm optimizer
        ts2 = [torch.tensor(p) for p in ps]
        ref2 = mod.RMSpropTF(ts2, **kw)
        ref2.load_state_dict(translate.to_timm(opt.export_state(), ref2.state_dict(), as_tensor=torch.as_tensor))
        _torch_run(ref, ts, curv, noise, range(STEPS, 2 * STEPS))
        _ours_run(opt, ps, curv, noise, range(STEPS, 2 * STEPS))
        _torch_run(ref2, ts2, curv, noise, range(STEPS, 2 * STEPS))
        _close(ps, [x.numpy() for x in ts])
        _close([x.numpy() for x in ts2], [x.numpy() for x in ts])


# ------------------------------------------------------------------------------ Keras 3
KERAS_CASES = [
    ("momentum", {"learning_rate": 0.02, "momentum": 0.9}),
    ("centered_ema", {"learning_rate": 0.02, "momentum": 0.5, "centered": True, "use_ema": True,
                      "ema_momentum": 0.8}),
    ("accumulation", {"learning_rate": 0.05, "gradient_accumulation_steps": 4}),
]


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("these comparisons run Keras on its torch backend")
    return keras


def _keras_run(opt, vs, curv, noise, steps):
    for t in steps:
        gs = _grads([np.asarray(v.numpy()) for v in vs], curv, noise[t])
        opt.apply([torch.from_numpy(g) for g in gs], vs)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("name,kw", KERAS_CASES, ids=[c[0] for c in KERAS_CASES])
def test_keras_round_trip_continues_like_keras(keras, name, kw):
    params, curv, noise = _problem(5)
    vs = [keras.Variable(p) for p in params]
    kopt = keras.optimizers.RMSprop(**kw)
    _keras_run(kopt, vs, curv, noise, range(STEPS - 1))  # odd count: mid-accumulation
    state = translate.from_keras([v.numpy() for v in kopt.variables], kopt.get_config())
    assert state.iterations == STEPS - 1
    ps = [np.asarray(v.numpy()).copy() for v in vs]
    opt = rmsprop_ops.RMSProp(ps, convention="keras", **kw)
    opt.import_state(state)
    # and back into a second Keras optimizer, built on its own variables
    vs2 = [keras.Variable(p) for p in ps]
    kopt2 = keras.optimizers.RMSprop(**kw)
    kopt2.build(vs2)
    values = translate.to_keras(opt.export_state(), kopt2.get_config())
    kopt2.load_own_variables({str(i): v for i, v in enumerate(values)})
    _keras_run(kopt, vs, curv, noise, range(STEPS - 1, 2 * STEPS))
    _ours_run(opt, ps, curv, noise, range(STEPS - 1, 2 * STEPS))
    _keras_run(kopt2, vs2, curv, noise, range(STEPS - 1, 2 * STEPS))
    _close(ps, [v.numpy() for v in vs])
    _close([v.numpy() for v in vs2], [v.numpy() for v in vs])
    if kw.get("use_ema"):
        kopt.finalize_variable_values(vs)
        with opt.swap_ema_weights():
            _close(ps, [v.numpy() for v in vs])


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_keras_layout_names_every_variable(keras):
    vs = [keras.Variable(np.ones(2, np.float32)), keras.Variable(np.ones(3, np.float32))]
    for kw in ({}, {"momentum": 0.5, "centered": True}, {"use_ema": True, "gradient_accumulation_steps": 2},
               {"learning_rate": keras.optimizers.schedules.ExponentialDecay(0.1, 3, 0.5)}):
        opt = keras.optimizers.RMSprop(**kw)
        opt.build(vs)
        layout = translate.keras_layout(opt.get_config(), 2)
        assert len(layout) == len(opt.variables)
        for name, v in zip(layout, opt.variables):
            want = {"iterations": "iteration", "learning_rate": "learning_rate", "mean_square": "velocity",
                    "moment": "momentum", "mean_grad": "average_gradient", "average": "average",
                    "accumulator": "gradient_accumulator"}[name.split(".")[0]]
            assert want in v.path, (name, v.path)


# ------------------------------------------------------------------------------ MXNet 1.9.1
_DATA = __import__("pathlib").Path(__file__).resolve().parents[1] / "data" / "mxnet_1.9.1_rmsprop.npz"


@pytest.mark.parametrize("case", ["centered", "centered_options", "plain"])
def test_recorded_mxnet_states_load_and_round_trip(case):
    import json

    with np.load(_DATA) as f:
        data = {k: f[k] for k in f.files}
    cfg = json.loads(str(data["cases"]))[case]
    centered = bool(cfg.get("centered"))
    n = len([k for k in data if k.startswith(f"{case}/traj_")])
    recorded = [tuple(data[f"{case}/state_{i}_{k}"] for k in range(3 if centered else 1)) for i in range(n)]
    state = translate.from_mxnet(recorded, centered=centered)
    back = translate.to_mxnet(state, centered=centered)
    for r, b in zip(recorded, back):
        for x, y in zip(r, b):
            np.testing.assert_array_equal(x, y)
    # the neutral optimizer (mxnet convention) and mxnet_compat continue from the recorded states alike
    ws = [data[f"{case}/traj_{i}"][-1].copy() for i in range(n)]
    kw = {"learning_rate": cfg.get("learning_rate", 0.001), "rho": cfg.get("gamma1", 0.9),
          "momentum": cfg.get("gamma2", 0.9), "epsilon": cfg.get("epsilon", 1e-8), "centered": centered,
          "rescale_grad": cfg.get("rescale_grad", 1.0), "clip_gradient": cfg.get("clip_gradient"),
          "clip_weights": cfg.get("clip_weights")}
    ours = [w.copy() for w in ws]
    opt = rmsprop_ops.RMSProp(ours, convention="mxnet", weight_decay=cfg.get("wd", 0.0), **kw)
    opt.import_state(state)
    mx = MXRMSProp(wd=cfg.get("wd", 0.0), **kw)
    mx_ws = [w.copy() for w in ws]
    mx_states = [tuple(np.array(x) for x in r) for r in recorded]
    curv = [data[f"curv_{i}"] for i in range(n)]
    for t in range(4):
        g = [curv[i] * ours[i] + data[f"noise_{i}"][t] for i in range(n)]
        opt.step(g)
        mx.fused_step(list(range(n)), mx_ws, [curv[i] * mx_ws[i] + data[f"noise_{i}"][t] for i in range(n)],
                      mx_states)
    for a, b in zip(ours, mx_ws):
        np.testing.assert_array_equal(a, b)
    for s, m in zip(translate.to_mxnet(opt.export_state(), centered=centered), mx_states):
        for x, y in zip(s, m):
            np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------------------ refusals
def _trained(**kw):
    ps = [np.ones(3, np.float32), np.full(2, 2.0, np.float32)]
    opt = rmsprop_ops.RMSProp(ps, **kw)
    for _ in range(3):
        opt.step([np.full(3, 0.5, np.float32), np.full(2, -1.0, np.float32)])
    return opt


REFUSALS = [
    ("buffer the target does not keep", dict(momentum=0.9), dict(), ValueError, "momentum buffer.*does not keep"),
    ("buffer the target needs", dict(), dict(momentum=0.9), ValueError, "keeps a momentum buffer.*does not have"),
    ("mean gradient the target needs", dict(), dict(centered=True), ValueError, "keeps a mean gradient"),
    ("EMA the target does not keep", dict(use_ema=True), dict(), ValueError, "moving average that this optimizer"),
    ("lr-outside buffer into a zero rate", dict(momentum=0.9, convention="torch"),
     dict(momentum=0.9, learning_rate=0.0), None, None),
    ("lr-inside buffer out at a zero rate", dict(momentum=0.9), dict(momentum=0.9, convention="torch", lr=0.0),
     ValueError, "cannot be divided by a learning rate of 0.0"),
]


@pytest.mark.parametrize("name,src,dst,exc,match", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_what_cannot_map_is_refused_untouched(name, src, dst, exc, match):
    state = _trained(**src).export_state()
    target = rmsprop_ops.RMSProp([np.zeros(3, np.float32), np.zeros(2, np.float32)], **dst)
    before = target.state_dict()
    if exc is None:  # into lr-inside at rate 0 the buffer is exactly zero: allowed
        target.import_state(state)
        return
    with pytest.raises(exc, match=match):
        target.import_state(state)
    for k, v in target.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v), np.asarray(before[k]))


def test_other_refusals():
    outside = translate.RMSPropState((translate.ParamState(np.ones(2), moment=np.ones(2), moment_includes_lr=False),))
    with pytest.raises(ValueError, match="learning_rate: params\\[0\\]'s momentum buffer moves"):
        translate.with_lr_in_momentum(outside, True)
    np.testing.assert_array_equal(translate.with_lr_in_momentum(outside, True, learning_rate=0.5).params[0].moment,
                                  [0.5, 0.5])
    with pytest.raises(ValueError, match="expected a number or 1 values"):
        translate.with_lr_in_momentum(outside, True, learning_rate=[0.1, 0.2])
    with pytest.raises(ValueError, match="momentum buffer.*MXNet"):
        translate.to_mxnet(translate.with_lr_in_momentum(outside, True, learning_rate=0.1), centered=False)
    with pytest.raises(ValueError, match="expected \\(n, g, delta\\)"):
        translate.from_mxnet([(np.ones(2),)], centered=True)
    with pytest.raises(ValueError, match="expected 2 params"):
        _trained().import_state(translate.RMSPropState((translate.ParamState(np.ones(3)),)))
    with pytest.raises(TypeError, match="RMSPropState"):
        _trained().import_state({"mean_square.0": np.ones(3)})
    ts = [torch.zeros(3, requires_grad=True)]
    adam = torch.optim.Adam(ts)
    ts[0].grad = torch.ones(3)
    adam.step()
    with pytest.raises(ValueError, match="expected RMSprop state"):
        translate.from_torch(adam.state_dict())
    template = torch.optim.RMSprop(ts, momentum=0.0).state_dict()
    with pytest.raises(ValueError, match="torch's RMSprop does not keep"):
        translate.to_torch(translate.RMSPropState((translate.ParamState(np.ones(3), moment=np.ones(3)),)), template)
