"""Checkpoints between ``rmsprop_ops.paddle.RMSProp`` and torch ``RMSprop``, timm ``RMSpropTF``, Keras 3 (issue #21).

torch, timm and Keras do not install beside Paddle, so their side was recorded in the core environment by
``tests/data/record_framework_states.py`` (into ``tests/data/framework_states.npz``): each framework's own
state after 6 steps, and its next 6 steps. Both directions are checked against that record:

* framework -> Paddle: the recorded state, loaded through ``rmsprop_ops.translate`` and ``import_state``,
  continues exactly like the framework did (every step's weights, float32 tolerance);
* Paddle -> framework: the Paddle optimizer trained through the same first 6 steps exports, through
  ``export_state`` and ``rmsprop_ops.translate``, the framework's own recorded state (so the framework,
  loading it, continues as recorded).

torch's ``nn.Linear`` keeps its weight as ``[out, in]``, Paddle's as ``[in, out]``: the first parameter
is stored transposed here, as a model converted from torch would hold it, and moved with ``transpose=[0]``.
What cannot map exactly is refused by name, with nothing written.
"""

import json
import pathlib

import numpy as np
import pytest

from rmsprop_ops import translate

import paddle_conventions as C

paddle = pytest.importorskip("paddle")
from rmsprop_ops.paddle import RMSProp  # noqa: E402

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "framework_states.npz"
TOL = dict(rtol=1e-5, atol=1e-6)  # float32 against the real framework, as the neutral optimizer's tests
CONVENTION = {"torch": "torch", "timm": "tf1", "keras": "keras"}


@pytest.fixture(scope="module")
def data():
    with np.load(DATA) as f:
        return {k: f[k] for k in f.files}


def _cases():
    with np.load(DATA) as f:
        return json.loads(str(f["cases"]))


CASES = _cases()


def _flip(framework, arrays):
    """The first parameter as Paddle holds it (transposed from torch's layout; Keras' Dense is Paddle's)."""
    return [a.T.copy() if i == 0 and framework != "keras" else a for i, a in enumerate(arrays)]


def _problem(data, framework):
    n = 3
    steps = int(data["steps"])
    init = _flip(framework, [data[f"init/{i}"] for i in range(n)])
    curv = _flip(framework, [data[f"curv/{i}"] for i in range(n)])
    noise = [_flip(framework, [data[f"noise/{i}"][t] for i in range(n)]) for t in range(2 * steps)]
    return C.Problem(init, curv, noise), steps


def _recorded(data, name, framework):
    steps = int(data["steps"])
    mid = _flip(framework, [data[f"{name}/mid/{i}"] for i in range(3)])
    traj = [_flip(framework, [data[f"{name}/traj/{i}"][t] for i in range(3)]) for t in range(steps)]
    return mid, traj


def _state_dict(data, name, where=""):
    """The recorded torch / timm state_dict after the first half (``where="end/"``: after the second)."""
    groups = json.loads(str(data[f"{name}/{where}groups"]))
    state = {}
    prefix = f"{name}/{where}state/"
    for key in data:
        if key.startswith(prefix):
            pid, field = key[len(prefix):].split("/")
            state.setdefault(int(pid), {})[field] = data[key]
    return {"state": state, "param_groups": groups}


def _keras_state(data, name, where=""):
    config = json.loads(str(data[f"{name}/{where}config"]))
    n = sum(1 for k in data if k.startswith(f"{name}/{where}variables/"))
    return [data[f"{name}/{where}variables/{i}"] for i in range(n)], config


def _params(values):
    paddle.disable_static()
    return [paddle.create_parameter(list(v.shape), "float32", default_initializer=paddle.nn.initializer.Assign(v))
            for v in values]


def _train(opt, params, prob, steps):
    out = []
    for t in steps:
        g = prob.grads([p.numpy() for p in params], t)
        sum((p * paddle.to_tensor(x)).sum() for p, x in zip(params, g)).backward()
        opt.step()
        opt.clear_grad()
        out.append([p.numpy().copy() for p in params])
    return out


def _paddle_kw(framework, kw, lr_inside):
    kw = dict(kw, convention=CONVENTION[framework])
    if lr_inside is not None:
        kw["lr_in_momentum"] = lr_inside
    return kw


def _transpose(framework):
    return [0] if framework != "keras" else []


def _read(framework, data, name):
    if framework == "keras":
        return translate.from_keras(*_keras_state(data, name))
    return (translate.from_torch if framework == "torch" else translate.from_timm)(_state_dict(data, name))


PLACEMENTS = [(name, lr) for name, (fw, _) in CASES.items() for lr in ([None, True] if fw == "torch" else [None])]


@pytest.mark.parametrize("name,lr_inside", PLACEMENTS, ids=[f"{n}-{'lr_inside' if lr else 'own_rule'}"
                                                             for n, lr in PLACEMENTS])
def test_a_framework_state_continues_in_paddle_like_the_framework(data, name, lr_inside):
    framework, kw = CASES[name]
    prob, steps = _problem(data, framework)
    mid, traj = _recorded(data, name, framework)
    params = _params(mid)
    opt = RMSProp(parameters=params, **_paddle_kw(framework, kw, lr_inside))
    opt.import_state(_read(framework, data, name), transpose=_transpose(framework))
    assert opt.iterations == steps
    ours = _train(opt, params, prob, range(steps, 2 * steps))
    for got, want in zip(ours, traj):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, **TOL)
    # and the state it holds then is the framework's own at the end (averages included)
    _compare_state(framework, data, name, opt.export_state(transpose=_transpose(framework)), "end/")


def _compare_state(framework, data, name, state, where=""):
    """``state`` written in the framework's form equals the framework's recorded state. A buffer's float32
    rounding is relative to the terms it sums (a momentum buffer holding lr-free g / d reaches ~10 and
    cancels), so each array's absolute tolerance scales with its magnitude."""
    def close(got, want):
        want = np.asarray(want, np.float64)
        np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=TOL["rtol"],
                                   atol=TOL["atol"] * max(1.0, float(np.max(np.abs(want)))))

    if framework == "keras":
        recorded, config = _keras_state(data, name, where)
        values = translate.to_keras(state, config)
        assert len(values) == len(recorded)
        for v, r in zip(values, recorded):
            close(v, r)
        return
    recorded = _state_dict(data, name, where)
    write = translate.to_torch if framework == "torch" else translate.to_timm
    sd = write(state, {"state": {}, "param_groups": recorded["param_groups"]})
    assert sorted(sd["state"]) == sorted(recorded["state"])
    for pid, entry in recorded["state"].items():
        assert sorted(sd["state"][pid]) == sorted(entry)
        for key, value in entry.items():
            close(sd["state"][pid][key], value)


@pytest.mark.parametrize("name,lr_inside", PLACEMENTS, ids=[f"{n}-{'lr_inside' if lr else 'own_rule'}"
                                                             for n, lr in PLACEMENTS])
def test_paddle_exports_the_frameworks_own_state(data, name, lr_inside):
    framework, kw = CASES[name]
    prob, steps = _problem(data, framework)
    mid, _ = _recorded(data, name, framework)
    params = _params(prob.init)
    opt = RMSProp(parameters=params, **_paddle_kw(framework, kw, lr_inside))
    _train(opt, params, prob, range(steps))
    for p, w in zip(params, mid):
        np.testing.assert_allclose(p.numpy(), w, **TOL)
    state = opt.export_state(transpose=_transpose(framework))
    assert state.iterations == steps
    _compare_state(framework, data, name, state)


def _trained(**kw):
    params = _params([np.ones((3, 2), np.float32), np.full(2, 2.0, np.float32)])
    opt = RMSProp(parameters=params, **(kw if "lr" in kw else dict(kw, learning_rate=kw.get("learning_rate", 0.01))))
    for _ in range(3):
        (params[0] * 0.5 + params[1].sum() * 0.0).sum().backward()
        (params[1] * -1.0).sum().backward()
        opt.step()
        opt.clear_grad()
    return opt


REFUSALS = [
    ("buffer the target does not keep", dict(momentum=0.9), dict(),
     "momentum buffer that this optimizer does not keep"),
    ("buffer the target needs", dict(), dict(momentum=0.9), "keeps a momentum buffer .*that the state does not have"),
    ("mean gradient the target needs", dict(), dict(centered=True), "keeps a mean gradient"),
    ("averages the target does not keep", dict(use_ema=True), dict(), "moving average that this optimizer does not"),
    ("averages the target needs", dict(), dict(use_ema=True), "keeps a moving average .*that the state does not have"),
    ("a transposed layout", dict(), dict(transpose=True), r"has shape \[2, 3\], expected \[3, 2\] \(transposed"),
    ("lr-inside buffer out at a zero rate", dict(momentum=0.9), dict(momentum=0.9, convention="torch", lr=0.0),
     "cannot be divided by a learning rate of 0.0"),
]


@pytest.mark.parametrize("name,src,dst,match", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_what_cannot_map_is_refused_untouched(name, src, dst, match):
    state = _trained(**src).export_state()
    dst = dict(dst)
    if dst.pop("transpose", False):
        state = translate.RMSPropState(tuple(
            translate.ParamState(mean_square=p.mean_square.T.copy()) if p.mean_square.ndim == 2 else p
            for p in state.params), state.iterations)
    target = _trained(**dst)
    before = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v).copy() for k, v in target.state_dict().items()}
    with pytest.raises(ValueError, match=match):
        target.import_state(state)
    for k, v in target.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v.numpy() if hasattr(v, "numpy") else v), before[k])


def test_other_refusals():
    opt = _trained()
    with pytest.raises(ValueError, match="expected 2 params"):
        opt.import_state(translate.RMSPropState((translate.ParamState(np.ones((3, 2))),)))
    with pytest.raises(TypeError, match="RMSPropState"):
        opt.import_state({"mean_square.0": np.ones(3)})
    with pytest.raises(ValueError, match="transpose: expected positions of parameters in 0..1"):
        opt.export_state(transpose=[2])
    keras_like = translate.RMSPropState(tuple(
        translate.ParamState(np.ones(s), accumulator=np.full(s, 0.5)) for s in ((3, 2), (2,))), 3)
    with pytest.raises(ValueError, match="gradient accumulator in the middle of an accumulation"):
        opt.import_state(keras_like)


def test_a_state_without_a_parameter_starts_it_fresh_at_the_conventions_start_value():
    opt = _trained(convention="tf1", momentum=0.9)
    state = opt.export_state()
    fresh = translate.RMSPropState((state.params[0], translate.ParamState(None)), state.iterations)
    target = _trained(convention="tf1", momentum=0.9)
    target.import_state(fresh)
    p1 = target._parameter_list[1]
    acc = target._accumulators
    ms = acc[target._acc_name("mean_square")][p1.name].numpy()
    np.testing.assert_array_equal(ms, np.ones(2, np.float32))
    assert not acc[target._acc_name("momentum")][p1.name].numpy().any()


@pytest.mark.parametrize("flat", [False, True])
def test_a_state_imported_before_the_first_step_exports_as_it_came(flat):
    """Loaded before the first step, the state waits for the accumulators (set_state_dict's pending
    values); export_state reads it there, and the first step continues from it."""
    src = _trained(convention="tf1", momentum=0.9, centered=True, use_ema=True, flat_state=flat)
    state = src.export_state()
    params = _params([p.numpy() for p in src._parameter_list])
    opt = RMSProp(parameters=params, convention="tf1", learning_rate=0.01, momentum=0.9, centered=True,
                  use_ema=True, flat_state=flat)
    opt.import_state(state)
    back = opt.export_state()
    assert back.iterations == state.iterations == 3
    for a, b in zip(back.params, state.params):
        for field in ("mean_square", "moment", "mean_grad", "average"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    for o, ps in ((src, src._parameter_list), (opt, params)):
        (ps[0] * 0.5).sum().backward()
        (ps[1] * -1.0).sum().backward()
        o.step()
    for p, q in zip(params, src._parameter_list):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
