"""Checkpoint translation for ``rmsprop_ops.mindspore.RMSProp`` through ``rmsprop_ops.translate``, against
torch ``RMSprop``, timm ``RMSpropTF`` and Keras 3 ``RMSprop`` (run: pytest -m mindspore).

torch and Keras cannot share MindSpore's process, so their checkpoints and trajectories were recorded by
``tests/data/record_ms_translation.py`` (torch 2.13.0, Keras 3.15.1 on its torch backend, timm's
``rmsprop_tf.py``) into ``tests/data/ms_translation_refs.npz``. Into MindSpore: load the framework's state
after K steps, continue M steps, compare every step's weights with the framework's. Out of MindSpore: run
the same K steps here, export, compare with the framework's own state. Refusals write nothing.
"""

import json
import pathlib

import numpy as np
import pytest

import mindspore as ms

from ms_conventions import ms_params
from rmsprop_ops import translate
from rmsprop_ops.mindspore import RMSProp

pytestmark = pytest.mark.mindspore

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "ms_translation_refs.npz"
TOL = dict(rtol=1e-5, atol=1e-6)   # as tests/optimizer/test_optimizer_translate.py: two implementations


class Case:
    """One recorded case of the npz."""

    def __init__(self, data, name):
        self.name = name
        self.meta = json.loads(str(data[f"{name}/meta"]))
        self.K, self.M = self.meta["K"], self.meta["M"]
        n = len(self.meta["shapes"])
        get = lambda kind: [data[f"{name}/{kind}/{i}"] for i in range(n)]  # noqa: E731
        self.params0, self.params_k, self.curv = get("params0"), get("params_k"), get("curv")
        self.noise = [[data[f"{name}/noise/{t}/{i}"] for i in range(n)] for t in range(self.K + self.M)]
        self.trajectory = [[data[f"{name}/trajectory/{t}/{i}"] for i in range(n)] for t in range(self.M)]
        self.averages_end = get("averages_end") if f"{name}/averages_end/0" in data else None
        if self.meta["source"] == "keras":
            count = sum(1 for k in data.files if k.startswith(f"{name}/variables/"))
            self.variables = [data[f"{name}/variables/{i}"] for i in range(count)]
        else:
            self.state_dict = {"state": {}, "param_groups": self.meta["param_groups"]}
            for key in data.files:
                if key.startswith(f"{name}/state/"):
                    pid, field = key.split("/")[2:]
                    self.state_dict["state"].setdefault(int(pid), {})[field] = data[key]

    @property
    def source(self):
        return self.meta["source"]

    def grads(self, ws, t):
        return [(c * w + n).astype(np.float32) for w, c, n in zip(ws, self.curv, self.noise[t])]

    def state(self) -> translate.RMSPropState:
        if self.source == "torch":
            return translate.from_torch(self.state_dict)
        if self.source == "timm":
            return translate.from_timm(self.state_dict)
        return translate.from_keras(self.variables, self.meta["config"])

    def ms_kwargs(self) -> dict:
        """The same rule in the MindSpore front end: torch's and Keras' conventions with their own
        names; timm's RMSpropTF is MindSpore's own rule (TF1: mean square from ones, eps inside, lr inside)."""
        kw = dict(self.meta["kwargs"])
        if self.source == "torch":
            return {"convention": "torch", **kw}
        if self.source == "keras":
            return {"convention": "keras", **kw}
        return {"learning_rate": kw.pop("lr"), "decay": kw.pop("alpha"), "epsilon": kw.pop("eps"), **kw}


@pytest.fixture(scope="module")
def data():
    return np.load(DATA)


def _cases(data_file=DATA):
    with np.load(data_file) as d:
        return sorted({k.split("/")[0] for k in d.files if k.endswith("/meta")})


def _step(opt, ps, case, t):
    opt(tuple(ms.Tensor(g) for g in case.grads([p.asnumpy() for p in ps], t)))


@pytest.mark.parametrize("name", _cases())
def test_a_framework_checkpoint_continues_like_the_framework(mode, data, name):
    case = Case(data, name)
    ps = ms_params(case.params_k)
    opt = RMSProp(ps, **case.ms_kwargs())
    opt.import_state(case.state())
    assert int(opt.global_step.asnumpy().reshape(())) == case.K
    for t in range(case.M):
        _step(opt, ps, case, case.K + t)
        for p, want in zip(ps, case.trajectory[t]):
            np.testing.assert_allclose(p.asnumpy(), want, **TOL, err_msg=f"{name} step {case.K + t}")
    if case.averages_end is not None:
        for a, want in zip(opt.ema, case.averages_end):
            np.testing.assert_allclose(a.asnumpy(), want, **TOL)


@pytest.mark.parametrize("name", _cases())
def test_our_checkpoint_is_the_frameworks(mode, data, name):
    """K steps here, exported to the framework's format, equal the framework's own state after K steps."""
    case = Case(data, name)
    ps = ms_params(case.params0)
    opt = RMSProp(ps, **case.ms_kwargs())
    for t in range(case.K):
        _step(opt, ps, case, t)
    state = opt.export_state()
    if case.source == "keras":
        values = translate.to_keras(state, case.meta["config"])
        assert len(values) == len(case.variables)
        for mine, theirs in zip(values, case.variables):
            np.testing.assert_allclose(np.asarray(mine, np.float64), np.asarray(theirs, np.float64), **TOL)
        return
    to = translate.to_torch if case.source == "torch" else translate.to_timm
    sd = to(state, {"state": {}, "param_groups": case.meta["param_groups"]})
    assert sorted(sd["state"]) == sorted(case.state_dict["state"])
    for pid, theirs in case.state_dict["state"].items():
        assert sorted(sd["state"][pid]) == sorted(theirs), pid
        for key, value in theirs.items():
            np.testing.assert_allclose(np.asarray(sd["state"][pid][key], np.float64), np.asarray(value, np.float64),
                                       **TOL, err_msg=f"{name} {pid} {key}")


def test_a_torch_buffer_moves_inside_the_learning_rate(mode, data):
    """torch's lr-free momentum buffer into MindSpore's placement (lr inside the buffer: scaled by the
    next step's rate) continues exactly like torch under a constant rate."""
    case = Case(data, "torch_momentum")
    ps = ms_params(case.params_k)
    opt = RMSProp(ps, **case.ms_kwargs(), lr_in_momentum=True)
    opt.import_state(case.state())
    buf = case.state_dict["state"][0]["momentum_buffer"]
    np.testing.assert_allclose(opt.state_per_parameter()["moment.w0"], buf * np.float32(0.01), rtol=1e-7)
    for t in range(case.M):
        _step(opt, ps, case, case.K + t)
    for p, want in zip(ps, case.trajectory[-1]):
        np.testing.assert_allclose(p.asnumpy(), want, **TOL)


def _everything(opt, params):
    out = {p.name: p.asnumpy().copy() for p in params}
    out.update({p.name: p.asnumpy().copy() for p in opt.get_parameters()})
    return out


REFUSALS = [
    ("centered-state-into-plain", "torch_centered_momentum_wd", {"centered": False}, ValueError, "mean gradient"),
    ("no-buffer-into-momentum", "torch_plain", {"momentum": 0.9}, ValueError, "momentum buffer"),
    ("buffer-into-no-momentum", "torch_momentum", {"momentum": 0.0}, ValueError, "momentum buffer"),
    ("average-into-no-ema", "keras_ema_decoupled", {"use_ema": False}, ValueError, "moving average"),
    ("no-average-into-ema", "torch_momentum", {"use_ema": True}, ValueError, "moving average"),
]


@pytest.mark.parametrize("case_id,name,change,exc,match", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_what_cannot_map_is_refused_and_nothing_written(data, case_id, name, change, exc, match):
    case = Case(data, name)
    ps = ms_params(case.params_k)
    opt = RMSProp(ps, **{**case.ms_kwargs(), **change})
    _step(opt, ps, case, 0)   # state that a partial write would change
    held = _everything(opt, ps)
    with pytest.raises(exc, match=match):
        opt.import_state(case.state())
    for key, value in _everything(opt, ps).items():
        np.testing.assert_array_equal(value, held[key], err_msg=key)


def test_bad_arguments_are_named(data):
    case = Case(data, "torch_momentum")
    ps = ms_params(case.params_k)
    opt = RMSProp(ps, **case.ms_kwargs(), lr_in_momentum=True)
    with pytest.raises(TypeError, match="state: expected a rmsprop_ops.translate.RMSPropState"):
        opt.import_state(case.state_dict)
    with pytest.raises(ValueError, match="state: expected 2 params"):
        opt.import_state(translate.RMSPropState(params=case.state().params[:1], iterations=1))
    with pytest.raises(ValueError, match="learning_rate"):
        opt.import_state(case.state(), learning_rate=[0.01])   # one rate for two params
    with opt_swapped(case) as (other, _):
        with pytest.raises(RuntimeError, match="swapped"):
            other.import_state(other.export_state())


class opt_swapped:  # noqa: N801 - a context manager read as a phrase
    """An EMA optimizer inside its swap block."""

    def __init__(self, case):
        self.ps = ms_params(case.params_k)
        self.opt = RMSProp(self.ps, learning_rate=0.01, use_ema=True)
        self.cm = self.opt.swap_ema_weights()

    def __enter__(self):
        self.cm.__enter__()
        return self.opt, self.ps

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc)


def test_a_buffer_is_scaled_by_the_next_steps_scheduled_rate(mode, data):
    """Under a LearningRateSchedule the momentum buffer moves into the lr-inside placement by the rate of
    the next step: the schedule's value at the imported step count."""
    from mindspore import nn

    case = Case(data, "torch_momentum")
    sched = nn.ExponentialDecayLR(0.02, 0.5, 2)
    ps = ms_params(case.params_k)
    opt = RMSProp(ps, learning_rate=sched, convention="torch", momentum=0.9, lr_in_momentum=True)
    opt.import_state(case.state())
    rate = float(nn.ExponentialDecayLR(0.02, 0.5, 2)(ms.Tensor(case.K, ms.int32)).asnumpy())
    buf = case.state_dict["state"][1]["momentum_buffer"]
    np.testing.assert_allclose(opt.state_per_parameter()["moment.w1"], buf * np.float32(rate), rtol=1e-6)
    assert opt.export_state().params[1].learning_rate == pytest.approx(rate)
