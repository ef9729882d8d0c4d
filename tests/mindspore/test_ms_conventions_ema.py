"""Moving averages of the weights in ``rmsprop_ops.mindspore.RMSProp`` (use_ema): the schedules and the
overwrite frequency against the neutral optimizer, a compiled training cell against a NumPy replay of the
averages, swapping for evaluation (and a step refused while swapped, directly and inside a compiled cell),
finalize_variable_values, checkpoints (run: pytest -m mindspore)."""

import numpy as np
import pytest

import mindspore as ms
from mindspore import nn

from ms_conventions import TOL, compare_states, ms_params, neutral, problem, run_ms, run_neutral
from ms_helpers import batches, make_net
from rmsprop_ops.mindspore import RMSProp, kernel_stats

pytestmark = pytest.mark.mindspore

STEPS = 7
EMA = {"keras": {"ema_schedule": "keras"}, "tf1": {"ema_schedule": "tf1"}, "constant": {"ema_schedule": "constant"},
       "overwrite": {"ema_schedule": "keras", "ema_overwrite_frequency": 3}}


def _averages(opt):
    return [a.asnumpy().copy() for a in opt.ema]


def _everything(opt, params):
    """Every Parameter a step could change: params, state, averages, the swap flag, the step counter."""
    out = {p.name: p.asnumpy().copy() for p in params}
    out.update({p.name: p.asnumpy().copy() for p in opt.get_parameters()})
    return out


@pytest.mark.parametrize("flat", [False, True], ids=["per-param", "flat"])
@pytest.mark.parametrize("ema", EMA)
def test_averages_match_the_neutral_optimizer(mode, ema, flat):
    prob = problem(11, STEPS)
    kw = {"convention": "keras", "learning_rate": 0.01, "momentum": 0.9, "use_ema": True, "ema_momentum": 0.8,
          **EMA[ema]}
    ps = ms_params(prob.params)
    opt = RMSProp(ps, flat_state=flat, **kw)
    ref, arrays = neutral(prob, **kw)
    got = run_ms(opt, ps, prob, STEPS)
    run_neutral(ref, arrays, prob, STEPS)
    sd = ref.state_dict()
    for i, (g, w, a) in enumerate(zip(got, arrays, _averages(opt))):
        np.testing.assert_allclose(g, w, **TOL[np.float32])
        np.testing.assert_allclose(a, sd[f"ema.{i}"], **TOL[np.float32])
        assert np.abs(a - g).max() > 1e-4 or ema == "overwrite"
    compare_states(opt, ref, TOL[np.float32], ema)


def test_a_compiled_training_cell_updates_the_averages(mode):
    """TrainOneStepCell (gradients from MindSpore): the averages follow the tf1 recurrence over the
    parameters the cell produced, replayed in NumPy from float64 decays rounded once."""
    net = make_net()
    opt = RMSProp(net.trainable_params(), learning_rate=0.01, momentum=0.9, use_ema=True, ema_momentum=0.9,
                  ema_schedule="tf1")
    train = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), opt)
    avg = [p.asnumpy().copy() for p in opt.parameters]
    before = kernel_stats()["launches"]
    for n, (x, y) in enumerate(batches(5), start=1):
        train(x, y)
        d = min(0.9, (1.0 + n) / (10.0 + n))
        for a, p in zip(avg, opt.parameters):
            a -= np.float32(1.0 - d) * (a - p.asnumpy())
        for a, ours in zip(avg, _averages(opt)):
            np.testing.assert_allclose(ours, a, rtol=1e-6, atol=1e-7)
    assert kernel_stats()["launches"] - before == 5


def test_swap_exchanges_bit_for_bit_and_back(mode):
    prob = problem(12, 4)
    ps = ms_params(prob.params)
    opt = RMSProp(ps, learning_rate=0.05, use_ema=True, ema_momentum=0.5)
    run_ms(opt, ps, prob, 4)
    weights, averages = [p.asnumpy().copy() for p in ps], _averages(opt)
    assert max(np.abs(w - a).max() for w, a in zip(weights, averages)) > 1e-4
    with opt.swap_ema_weights() as same:
        assert same is opt and bool(opt.ema_swapped.asnumpy())
        for p, a in zip(ps, averages):
            np.testing.assert_array_equal(p.asnumpy(), a)
        for e, w in zip(opt.ema, weights):
            np.testing.assert_array_equal(e.asnumpy(), w)
        with pytest.raises(RuntimeError, match="already swapped"):
            with opt.swap_ema_weights():
                pass
    for p, w in zip(ps, weights):
        np.testing.assert_array_equal(p.asnumpy(), w)
    assert not bool(opt.ema_swapped.asnumpy())
    # swapped back on an exception too
    with pytest.raises(KeyError):
        with opt.swap_ema_weights():
            raise KeyError("evaluation failed")
    for p, w in zip(ps, weights):
        np.testing.assert_array_equal(p.asnumpy(), w)


class _Step(nn.Cell):
    """A compiled step that calls the optimizer inside its graph (never through RMSProp.__call__ in
    GRAPH_MODE)."""

    def __init__(self, opt):
        super().__init__()
        self.opt = opt

    def construct(self, *grads):
        return self.opt(grads)


def test_a_step_inside_the_swap_is_refused_and_changes_nothing(mode):
    prob = problem(13, 3)
    ps = ms_params(prob.params)
    opt = RMSProp(ps, learning_rate=0.05, momentum=0.9, use_ema=True, ema_momentum=0.5)
    run_ms(opt, ps, prob, 3)
    step = _Step(opt)
    grads = [ms.Tensor(np.ones(p.shape, np.float32)) for p in ps]
    launches = kernel_stats()["launches"]
    with opt.swap_ema_weights():
        held = _everything(opt, ps)
        with pytest.raises(RuntimeError, match="swapped"):
            opt(tuple(grads))
        # a compiled cell stops at the assertion on the swap flag (PyNative runs the cell's Python, which
        # calls the optimizer directly)
        with pytest.raises(RuntimeError):
            step(*grads)
            ps[0].asnumpy()  # PyNative reports a failed launch when its result is read
        after = _everything(opt, ps)
        for name, value in held.items():
            np.testing.assert_array_equal(after[name], value, err_msg=name)
    assert kernel_stats()["launches"] == launches
    # After the swap the optimizer trains again (MindSpore runs no compiled cell again after one of its
    # steps failed: a new cell, or a direct call).
    opt(tuple(grads))
    _Step(opt)(*grads)
    assert int(opt.global_step.asnumpy().reshape(())) == 5


def test_finalize_variable_values_copies_the_averages(mode):
    prob = problem(14, 3)
    ps = ms_params(prob.params)
    opt = RMSProp(ps, learning_rate=0.05, use_ema=True, ema_momentum=0.5)
    run_ms(opt, ps, prob, 3)
    averages = _averages(opt)
    opt.finalize_variable_values()
    for p, a in zip(ps, averages):
        np.testing.assert_array_equal(p.asnumpy(), a)
    plain = RMSProp(ms_params(prob.params), learning_rate=0.05)
    plain.finalize_variable_values()   # a no-op without use_ema
    with pytest.raises(ValueError, match="use_ema=True"):
        with plain.swap_ema_weights():
            pass


def test_checkpoint_resumes_the_averages_exactly(mode, tmp_path):
    prob = problem(15, 6)
    kw = {"convention": "tf1", "learning_rate": 0.02, "momentum": 0.9, "use_ema": True, "ema_momentum": 0.99,
          "ema_schedule": "tf1"}
    ps = ms_params(prob.params)
    whole = RMSProp(ps, **kw)
    run_ms(whole, ps, prob, 6)

    first = ms_params(prob.params)
    opt = RMSProp(first, **kw)
    run_ms(opt, first, _tail(prob, 0), 3)
    path = str(tmp_path / "opt.ckpt")
    ms.save_checkpoint(opt, path)
    second = ms_params([p.asnumpy() for p in first])
    resumed = RMSProp(second, **kw)
    ms.load_param_into_net(resumed, ms.load_checkpoint(path))
    run_ms(resumed, second, _tail(prob, 3), 3)
    for a, b in zip(ps, second):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    for a, b in zip(whole.ema, resumed.ema):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())


def _tail(prob, start):
    from ms_conventions import Problem

    return Problem(prob.params, prob.curv, prob.noise[start:])


@pytest.mark.parametrize("kw,exc,match", [
    ({"use_ema": "yes"}, TypeError, "use_ema: expected a bool"),
    ({"use_ema": True, "ema_momentum": 1.5}, ValueError, "ema_momentum: expected a float in"),
    ({"use_ema": True, "ema_schedule": "tf2"}, ValueError, "ema_schedule: expected one of"),
    ({"use_ema": True, "ema_overwrite_frequency": 0}, ValueError, "ema_overwrite_frequency: expected an int >= 1"),
    ({"use_ema": True, "ema_overwrite_frequency": 2.5}, TypeError, "ema_overwrite_frequency: expected an int"),
])
def test_bad_ema_arguments_are_named(kw, exc, match):
    with pytest.raises(exc, match=match):
        RMSProp(ms_params(problem(16, 1).params), **kw)
