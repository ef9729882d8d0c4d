"""mindspore.nn.RMSProp's contract: errors, state layout, training wrappers, checkpoints."""

import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, Tensor, nn
from mindspore.train import Model

from ms_helpers import assert_states_close, batches, make_net, max_abs_diff, state
from rmsprop_ops.mindspore import RMSProp, kernel_stats

pytestmark = pytest.mark.mindspore


def _params():
    return make_net().trainable_params()


BAD_ARGS = [
    ("learning_rate", object(), TypeError),
    ("learning_rate", -0.1, ValueError),
    ("learning_rate", Tensor(np.ones((2, 2), np.float32)), ValueError),
    ("decay", 1, TypeError),
    ("decay", -0.1, ValueError),
    ("momentum", 1, TypeError),
    ("momentum", -0.5, ValueError),
    ("epsilon", 1, TypeError),
    ("epsilon", 0.0, ValueError),
    ("epsilon", -1e-8, ValueError),
    ("loss_scale", "2", TypeError),
    ("loss_scale", 0.0, ValueError),
    ("weight_decay", "0.1", TypeError),
    ("weight_decay", -0.1, ValueError),
    ("use_locking", 1, TypeError),
    ("centered", "yes", TypeError),
]


@pytest.mark.parametrize("name, value, exc", BAD_ARGS, ids=[f"{n}={v!r}"[:40] for n, v, _ in BAD_ARGS])
def test_documented_errors_raised_like_mindspore(name, value, exc):
    with pytest.raises(exc) as ref:
        nn.RMSProp(_params(), **{name: value})
    with pytest.raises(exc) as ours:
        RMSProp(_params(), **{name: value})
    assert str(ours.value) == str(ref.value)


def test_params_errors_like_mindspore():
    net = make_net()
    for bad, exc in (([1.0, 2.0], TypeError), ([], ValueError), (None, ValueError),
                     ([{"params": net.trainable_params(), "bogus": 1}], KeyError)):
        with pytest.raises(exc) as ref:
            nn.RMSProp(bad)
        with pytest.raises(exc) as ours:
            RMSProp(bad)
        assert str(ours.value) == str(ref.value)


def test_decay_above_one_is_rejected_by_the_core_range():
    # MindSpore accepts any decay >= 0; a decay > 1 makes the mean square diverge, the core refuses it.
    with pytest.raises(ValueError, match="decay"):
        RMSProp(_params(), decay=1.5)


def test_state_names_dtypes_and_initial_values_match_mindspore():
    for centered in (False, True):
        ref = nn.RMSProp(_params(), centered=centered)
        ours = RMSProp(_params(), centered=centered)
        ref_state = {p.name: p.asnumpy() for p in ref.get_parameters()}
        our_state = {p.name: p.asnumpy() for p in ours.get_parameters()}
        assert sorted(our_state) == sorted(ref_state)
        for k, v in ref_state.items():
            assert our_state[k].dtype == v.dtype, k
            np.testing.assert_array_equal(our_state[k], v, err_msg=k)
        assert all((v == 1).all() for k, v in our_state.items() if k.startswith("mean_square."))


def test_defaults_match_mindspore():
    import inspect

    ref = inspect.signature(nn.RMSProp.__init__).parameters
    ours = inspect.signature(RMSProp.__init__).parameters
    assert [(p.name, p.default) for p in ours.values()] == [(p.name, p.default) for p in ref.values()]


class _Overflowing(nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.net = net
        self.loss = nn.MSELoss()

    def construct(self, x, y):
        return self.loss(self.net(x), y)


class _CpuLossScaleCell(nn.TrainOneStepWithLossScaleCell):
    """MindSpore 2.10 detects overflow with Ascend/GPU-only status ops (NPUGetFloatStatusV2, FloatStatus:
    no CPU kernels); check the gradients with isfinite instead, everything else unchanged."""

    def get_overflow_status(self, status, compute_output):
        finite = Tensor(True)
        for grad in compute_output:
            finite = ms.ops.logical_and(finite, ms.ops.isfinite(grad).all())
        return ms.ops.logical_not(finite)


def test_loss_scale_cell_skips_overflowed_steps(mode):
    cells = []
    for cls in (nn.RMSProp, RMSProp):
        net = make_net()
        opt = cls(net.trainable_params(), learning_rate=0.01, momentum=0.9)
        manager = nn.DynamicLossScaleUpdateCell(loss_scale_value=2.0 ** 10, scale_factor=2, scale_window=3)
        cells.append(_CpuLossScaleCell(_Overflowing(net), opt, scale_sense=manager))
    data = batches(6, seed=5)
    inf_x = Tensor(np.full((8, 16, 2, 2), np.inf, np.float32))
    data[2] = (inf_x, data[2][1])
    before = kernel_stats()["launches"]
    for i, (x, y) in enumerate(data):
        snap = state(cells[1])
        outs = [c(x, y) for c in cells]
        assert bool(outs[0][1].asnumpy()) == bool(outs[1][1].asnumpy()) == (i == 2)
        if i == 2:  # overflow: the optimizer must not have run, params and state unchanged
            after = state(cells[1])
            for k in snap:
                if k not in ("scale_sense", "current_iterator_step", "last_overflow_iterator_step"):
                    np.testing.assert_array_equal(after[k], snap[k], err_msg=k)
        assert_states_close(state(cells[1]), state(cells[0]), 2e-6, 1e-7)
    assert kernel_stats()["launches"] - before == 5


def test_model_train_with_schedule_matches_mindspore():
    import mindspore.dataset as ds

    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 16, 2, 2)).astype(np.float32)
    y = rng.standard_normal((40, 3)).astype(np.float32)
    results = []
    for cls in (nn.RMSProp, RMSProp):
        net = make_net()
        lr = nn.PolynomialDecayLR(0.02, 0.001, 8, 1.0)
        opt = cls(net.trainable_params(), learning_rate=lr, momentum=0.5, weight_decay=0.01)
        model = Model(net, loss_fn=nn.MSELoss(), optimizer=opt)
        data = ds.NumpySlicesDataset({"x": x, "y": y}, shuffle=False).batch(8)
        model.train(2, data, dataset_sink_mode=False)
        results.append({p.name: p.asnumpy().astype(np.float64) for p in opt.get_parameters()}
                       | {p.name: p.asnumpy().astype(np.float64) for p in net.get_parameters()})
    assert int(results[1]["global_step"][0]) == 10
    assert_states_close(results[1], results[0], 2e-6, 1e-7)


def _train(steps, data, ckpt_in=None, ckpt_out=None):
    net = make_net()
    lr = nn.ExponentialDecayLR(0.02, 0.7, 2)
    opt = RMSProp(net.trainable_params(), learning_rate=lr, momentum=0.9, centered=True, weight_decay=0.01)
    train = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), opt)
    if ckpt_in is not None:
        ms.load_param_into_net(train, ms.load_checkpoint(ckpt_in))
    for x, y in data[:steps]:
        train(x, y)
    if ckpt_out is not None:
        ms.save_checkpoint(train, ckpt_out)
    return state(train)


def test_checkpoint_continues_training_exactly(mode, tmp_path):
    data = batches(10, seed=11)
    straight = _train(10, data)
    path = str(tmp_path / "half.ckpt")
    _train(4, data, ckpt_out=path)
    resumed = _train(6, data[4:], ckpt_in=path)
    assert int(resumed["global_step"][0]) == 10
    assert max_abs_diff(resumed, straight) == 0.0


def test_checkpoint_is_interchangeable_with_mindspore(tmp_path):
    ms.set_context(mode=ms.GRAPH_MODE)
    data = batches(6, seed=13)
    net = make_net()
    ref = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), nn.RMSProp(net.trainable_params(), 0.01, momentum=0.9))
    for x, y in data[:3]:
        ref(x, y)
    path = str(tmp_path / "ref.ckpt")
    ms.save_checkpoint(ref, path)
    net2 = make_net()
    ours = nn.TrainOneStepCell(nn.WithLossCell(net2, nn.MSELoss()), RMSProp(net2.trainable_params(), 0.01, momentum=0.9))
    assert not ms.load_param_into_net(ours, ms.load_checkpoint(path))[0]
    for x, y in data[3:]:
        ref(x, y)
        ours(x, y)
    assert_states_close(state(ours), state(ref), 2e-6, 1e-7)
