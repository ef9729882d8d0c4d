"""RMSProp(flat_state=True): one state buffer per launch; its layout, the per-parameter view of it, moving
state between the layouts and nn.RMSProp, and bad input to the state methods."""

import warnings

import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn

from ms_helpers import assert_states_close, batches, make_net, state
from rmsprop_ops.mindspore import RMSProp, flat_offsets, kernel_stats
from rmsprop_ops.mindspore import _fallback

pytestmark = pytest.mark.mindspore


class _Many(nn.Cell):
    """Parameters of awkward sizes (0-d, odd lengths) and two dtypes."""

    SHAPES = [(3, 5), (), (7,), (17,), (2, 2, 2), (1,)]

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(5)
        self.w = ParameterTuple([
            Parameter(Tensor(rng.standard_normal(s).astype(np.float64 if i == 3 else np.float32)), name=f"w{i}")
            for i, s in enumerate(self.SHAPES)])


def _grads(params, seed):
    rng = np.random.default_rng(seed)
    return tuple(Tensor(rng.standard_normal(p.shape).astype(p.asnumpy().dtype)) for p in params)


def test_flat_offsets_align_every_start():
    assert flat_offsets([15, 1, 0, 16, 3]) == ([0, 16, 32, 32, 48], 51)
    assert flat_offsets([]) == ([], 0)


def test_layout_one_buffer_per_launch_named_after_its_first_param(mode):
    net = _Many()
    params = net.trainable_params()
    opt = RMSProp(params, learning_rate=0.01, momentum=0.9, centered=True, flat_state=True)
    # float32 params share a launch (and buffers); the float64 one has its own.
    f32 = [p for p in params if p.dtype == ms.float32]
    _, total = flat_offsets(int(np.prod(p.shape)) for p in f32)
    for prefix, buffers, init in (("mean_square", opt.ms, 1.0), ("moment", opt.moment, 0.0),
                                  ("mean_grad", opt.mg, 0.0)):
        assert [b.name for b in buffers] == [f"{prefix}.flat.{f32[0].name}", f"{prefix}.flat.{params[3].name}"]
        assert [b.shape for b in buffers] == [(total,), (17,)]
        assert [b.dtype for b in buffers] == [ms.float32, ms.float64]
        assert all(np.all(b.asnumpy() == init) for b in buffers)
    per_param = opt.state_per_parameter()
    assert sorted(per_param) == sorted(f"{pre}.{p.name}" for pre in ("mean_square", "moment", "mean_grad")
                                       for p in params)
    assert all(per_param[f"mean_square.{p.name}"].shape == p.shape for p in params)


@pytest.mark.parametrize("centered", [False, True], ids=["plain", "centered"])
def test_flat_and_per_param_state_step_alike(mode, centered):
    """Bit for bit: the kernel runs the same rule on the same values, only the state's addresses differ."""
    nets = [_Many(), _Many()]
    opts = [RMSProp(n.trainable_params(), learning_rate=0.02, momentum=0.5, centered=centered,
                    weight_decay=0.01, flat_state=flat) for n, flat in zip(nets, (False, True))]
    before = kernel_stats()
    for step in range(4):
        for opt, net in zip(opts, nets):
            opt(_grads(net.trainable_params(), step))
    after = kernel_stats()
    assert after["launches"] - before["launches"] == 4 * 2 * 2  # two dtypes, two optimizers
    assert after["tensors"] - before["tensors"] == 4 * 2 * len(_Many.SHAPES)
    for a, b in zip(nets[0].trainable_params(), nets[1].trainable_params()):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy(), err_msg=a.name)
    per_param, flat = opts[0].state_per_parameter(), opts[1].state_per_parameter()
    assert sorted(per_param) == sorted(flat)
    for k in per_param:
        np.testing.assert_array_equal(flat[k], per_param[k], err_msg=k)
        assert not np.all(flat[k] == (1.0 if k.startswith("mean_square") else 0.0)), k


def test_a_thousand_params_take_two_state_inputs():
    ms.set_context(mode=ms.GRAPH_MODE)
    n = 1000
    ws = [Parameter(Tensor(np.full((2,), float(i), np.float32)), name=f"k{i}") for i in range(n)]
    opt = RMSProp(ws, learning_rate=0.01, flat_state=True)
    assert len(opt.ms) == len(opt.moment) == 1 and opt.ms[0].shape == (16 * (n - 1) + 2,)
    before = kernel_stats()
    opt(tuple(Tensor(np.full((2,), 0.5, np.float32)) for _ in range(n)))
    after = kernel_stats()
    assert (after["launches"] - before["launches"], after["tensors"] - before["tensors"]) == (1, n)
    step = 0.01 * 0.5 / np.sqrt(0.9 + 0.1 * 0.25 + 1e-10)
    np.testing.assert_allclose(np.stack([w.asnumpy() for w in ws]),
                               np.arange(n, dtype=np.float64)[:, None] - step + np.zeros((n, 2)), rtol=1e-6, atol=1e-6)
    # Padding between slices is never written.
    offsets, _ = flat_offsets([2] * n)
    ms_ = opt.ms[0].asnumpy()
    gaps = np.ones(ms_.size, bool)
    for o in offsets:
        gaps[o:o + 2] = False
    assert np.all(ms_[gaps] == 1.0) and np.all(ms_[~gaps] != 1.0)


def _train(opt_cls, net, **kw):
    return nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()),
                               opt_cls(net.trainable_params(), 0.01, momentum=0.9, centered=True, **kw))


def test_state_moves_from_nn_rmsprop_checkpoint_into_flat_state(tmp_path):
    ms.set_context(mode=ms.GRAPH_MODE)
    data = batches(6, seed=21)
    ref = _train(nn.RMSProp, make_net())
    for x, y in data[:3]:
        ref(x, y)
    path = str(tmp_path / "ref.ckpt")
    ms.save_checkpoint(ref, path)
    ours = _train(RMSProp, make_net(), flat_state=True)
    ckpt = ms.load_checkpoint(path)
    ms.load_param_into_net(ours, ckpt)
    loaded = ours.optimizer.load_state_per_parameter(ckpt)
    assert len(loaded) == 3 * len(ours.optimizer.parameters)
    for x, y in data[3:]:
        ref(x, y)
        ours(x, y)
    got = state(ours)
    for b in (*ours.optimizer.ms, *ours.optimizer.moment, *ours.optimizer.mg):
        del got[b.name]
    got.update({k: v.astype(np.float64) for k, v in ours.optimizer.state_per_parameter().items()})
    assert_states_close(got, state(ref), 2e-6, 1e-7)


def test_state_moves_from_flat_state_into_an_nn_rmsprop_checkpoint(tmp_path):
    ms.set_context(mode=ms.GRAPH_MODE)
    data = batches(6, seed=22)
    ours = _train(RMSProp, make_net(), flat_state=True)
    for x, y in data[:3]:
        ours(x, y)
    path = str(tmp_path / "ours.ckpt")
    opt = ours.optimizer
    kept = [p for p in ours.get_parameters() if p.name not in {b.name for b in (*opt.ms, *opt.moment, *opt.mg)}]
    # save_checkpoint takes a list of Parameters or a list of dicts, not both.
    ms.save_checkpoint([{"name": p.name, "data": p} for p in kept] +
                       [{"name": k, "data": Tensor(v)} for k, v in opt.state_per_parameter().items()], path)
    ref = _train(nn.RMSProp, make_net())
    assert ms.load_param_into_net(ref, ms.load_checkpoint(path)) == ([], [])
    before = {k: v.copy() for k, v in opt.state_per_parameter().items()}
    for x, y in data[3:]:
        ref(x, y)
        ours(x, y)
    after = opt.state_per_parameter()
    assert all(not np.array_equal(after[k], before[k]) for k in before if "mean_square" in k)
    got = state(ours)
    for b in (*opt.ms, *opt.moment, *opt.mg):
        del got[b.name]
    got.update({k: v.astype(np.float64) for k, v in after.items()})
    assert_states_close(got, state(ref), 2e-6, 1e-7)


@pytest.mark.parametrize("flat", [False, True], ids=["per-param-state", "flat-state"])
def test_load_state_per_parameter_partial_and_round_trip(flat):
    ms.set_context(mode=ms.GRAPH_MODE)
    net = _Many()
    opt = RMSProp(net.trainable_params(), learning_rate=0.01, momentum=0.9, flat_state=flat)
    opt(_grads(net.trainable_params(), 0))
    saved = opt.state_per_parameter()
    name = f"moment.{net.trainable_params()[2].name}"
    new = np.arange(7, dtype=np.float64)  # a float64 array into float32 state: cast
    assert opt.load_state_per_parameter({name: new}, strict=False) == [name]
    now = opt.state_per_parameter()
    np.testing.assert_array_equal(now[name], new.astype(np.float32))
    assert all(np.array_equal(now[k], saved[k]) for k in saved if k != name)
    assert sorted(opt.load_state_per_parameter({**saved, "unrelated.w": np.zeros(3)})) == sorted(saved)
    assert all(np.array_equal(opt.state_per_parameter()[k], saved[k]) for k in saved)


def _bad_cases(names, shapes):
    first = names[0]
    full = {k: np.zeros(s, np.float32) for k, s in zip(names, shapes)}
    return [
        ("not-a-mapping", [1, 2], {}, TypeError, "argument 'state' must be a mapping"),
        ("strict-not-bool", full, {"strict": 1}, TypeError, "argument 'strict' must be a bool, but got int"),
        ("missing", {k: v for k, v in full.items() if k != first}, {}, ValueError, f"'state' lacks {first}"),
        ("wrong-shape", {**full, first: np.zeros(4, np.float32)}, {}, ValueError,
         f"state['{first}'] must have the shape of parameter"),
        ("a-list", {**full, first: [0.0] * 15}, {}, TypeError, f"state['{first}'] must be a Tensor or a NumPy array"),
        ("int-values", {**full, first: np.zeros(shapes[0], np.int32)}, {}, TypeError,
         f"state['{first}'] must hold floating-point values"),
    ]


@pytest.mark.parametrize("flat", [False, True], ids=["per-param-state", "flat-state"])
@pytest.mark.parametrize("which", ["not-a-mapping", "strict-not-bool", "missing", "wrong-shape", "a-list",
                                   "int-values"])
def test_load_state_per_parameter_bad_input_changes_nothing(flat, which):
    net = _Many()
    opt = RMSProp(net.trainable_params(), learning_rate=0.01, momentum=0.9, flat_state=flat)
    opt(_grads(net.trainable_params(), 0))
    saved = opt.state_per_parameter()
    # The bad entry is the last one the load reaches (it goes buffer kind by kind, param by param, the
    # order state_per_parameter lists them), so that a load writing as it goes would be caught.
    names = list(saved)[::-1]
    case = {c[0]: c for c in _bad_cases(names, [saved[k].shape for k in names])}[which]
    _, value, kwargs, exc, match = case
    with pytest.raises(exc, match=match.replace("[", r"\[").replace("(", r"\(")):
        opt.load_state_per_parameter(value, **kwargs)
    after = opt.state_per_parameter()
    assert all(np.array_equal(after[k], saved[k]) for k in saved)


def test_flat_state_must_be_a_bool():
    net = _Many()
    with pytest.raises(TypeError, match="flat_state"):
        RMSProp(net.trainable_params(), flat_state=1)


def test_fallback_keeps_per_parameter_state_and_says_so(monkeypatch):
    monkeypatch.setenv("RMSPROP_OPS_MS_FALLBACK", "1")
    monkeypatch.setattr(_fallback, "_fallback_warned", True)
    net = _Many()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        opt = RMSProp(net.trainable_params(), learning_rate=0.01, flat_state=True)
    assert any("flat_state=True needs the rmsprop_ops kernel" in str(w.message) for w in caught)
    assert not opt.flat_state and len(opt.ms) == len(_Many.SHAPES)
    assert sorted(opt.state_per_parameter()) == sorted(p.name for p in (*opt.ms, *opt.moment))
