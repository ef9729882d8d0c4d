"""``set_state_dict`` pairs saved state with parameters by name and structure, and checks it whole.

A resumed run must continue exactly like the uninterrupted one, whichever parameter got its state first
(a frozen backbone), in a model rebuilt in the same process (new unique-name counters) or loaded under
the saved names; a checkpoint that does not fit (a transposed accumulator, a value float32 cannot hold,
a master weight for a parameter that has none, state no parameter matches) raises before anything is
written, the scheduler and master weights included.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from rmsprop_ops.paddle import RMSProp

pytestmark = pytest.mark.paddle


@pytest.fixture(autouse=True)
def dynamic_mode():
    paddle.disable_static()


class Net(paddle.nn.Layer):
    def __init__(self, widths):
        super().__init__()
        a, b, c = widths
        self.backbone = paddle.nn.Linear(a, b)
        self.head = paddle.nn.Linear(b, c)

    def forward(self, x):
        return self.head(paddle.tanh(self.backbone(x)))


def _net(widths, seed=0):
    paddle.seed(seed)
    return Net(widths)


def _batch(s, width):
    rs = np.random.RandomState(100 + s)
    return paddle.to_tensor(rs.randn(8, width).astype("float32")), paddle.to_tensor(rs.randn(8, 4).astype("float32"))


def _step(net, opt, s, widths):
    x, y = _batch(s, widths[0])
    ((net(x) - y) ** 2).mean().backward()
    opt.step()
    opt.clear_grad()


def _opt(net, flat, **kw):
    return RMSProp(0.01, parameters=net.parameters(), momentum=0.9, centered=True, flat_state=flat, **kw)


def _frozen_then_trained(widths, flat, steps=4):
    """Two steps with the backbone frozen (the head's state is created first), then two with all of it."""
    net = _net(widths)
    opt = _opt(net, flat)
    for p in net.backbone.parameters():
        p.stop_gradient = True
    for s in range(2):
        _step(net, opt, s, widths)
    for p in net.backbone.parameters():
        p.stop_gradient = False
    for s in range(2, steps):
        _step(net, opt, s, widths)
    return net, opt


def _copy(state):
    out = {}
    for k, v in state.items():
        if isinstance(v, paddle.Tensor):
            out[k] = v.clone()
        elif isinstance(v, dict):
            out[k] = {kk: vv.clone() if isinstance(vv, paddle.Tensor) else vv for kk, vv in v.items()}
        else:
            out[k] = v
    return out


def _values(net):
    return [p.numpy().copy() for p in net.parameters()]


def _resume_and_compare(net, opt, weights, state, again, resumed, widths, steps=range(4, 8)):
    """Load the checkpoint into (again, resumed), train both runs on, and compare them bit for bit."""
    again.set_state_dict(weights)
    resumed.set_state_dict(state)
    for s in steps:
        _step(net, opt, s, widths)
        _step(again, resumed, s, widths)
    for a, b in zip(_values(net), _values(again)):
        np.testing.assert_array_equal(a, b)


# Widths (in, hidden, out=4): (4, 4, 4) gives backbone and head weights of one shape, where pairing by
# creation order swapped their state silently; (6, 5, 4) gives shapes where it refused a valid checkpoint.
@pytest.mark.parametrize("widths", [(4, 4, 4), (6, 5, 4)], ids=["same-shapes", "other-shapes"])
@pytest.mark.parametrize("dst_flat", [False, True])
@pytest.mark.parametrize("src_flat", [False, True])
@pytest.mark.parametrize("loaded", ["before-first-step", "after-a-step"])
def test_resumed_run_equals_the_uninterrupted_one_after_a_frozen_backbone(widths, src_flat, dst_flat, loaded):
    net, opt = _frozen_then_trained(widths, src_flat)
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    state = _copy(opt.state_dict())
    # the head's state was created first: a positional pairing would give it to the backbone
    assert next(iter(state)).startswith(net.head.weight.name)

    rebuilt = _net(widths, seed=7)
    assert {p.name for p in rebuilt.parameters()}.isdisjoint(p.name for p in net.parameters())
    resumed = _opt(rebuilt, dst_flat)
    if loaded == "after-a-step":
        _step(rebuilt, resumed, 99, widths)  # state exists (created in parameter order), then overwritten
    _resume_and_compare(net, opt, weights, state, rebuilt, resumed, widths)


def test_state_loads_by_exact_name_into_a_model_with_the_saved_names():
    """Paddle's rule: a model built the same way (here under the same unique_name scope, as a new process
    builds it) has the saved names; state goes to the parameter of the same name."""
    widths = (4, 4, 4)
    with paddle.utils.unique_name.guard():
        net, opt = _frozen_then_trained(widths, True)
    weights, state = {k: v.clone() for k, v in net.state_dict().items()}, _copy(opt.state_dict())
    with paddle.utils.unique_name.guard():
        again = _net(widths, seed=3)
    assert [p.name for p in again.parameters()] == [p.name for p in net.parameters()]
    _resume_and_compare(net, opt, weights, state, again, _opt(again, False), widths, range(4, 6))


def test_counters_moved_by_a_layer_built_first_are_followed_not_taken_literally():
    """A new process that builds one more Linear (of other shapes) before the model: every saved name is
    shifted by one, and the saved names exist among ours, for other layers (Paddle's pairing by name
    refuses the shapes). Pairing follows the shift that fits every shape."""
    widths = (4, 4, 4)
    with paddle.utils.unique_name.guard():
        net, opt = _frozen_then_trained(widths, False)
    weights, state = {k: v.clone() for k, v in net.state_dict().items()}, _copy(opt.state_dict())
    with paddle.utils.unique_name.guard():
        extra = paddle.nn.Linear(3, 2)
        again = _net(widths, seed=3)
    assert again.backbone.weight.name == net.head.weight.name  # names in common, for other layers
    assert extra.weight.name == net.backbone.weight.name
    resumed = RMSProp(0.01, parameters=again.parameters() + extra.parameters(), momentum=0.9, centered=True)
    _resume_and_compare(net, opt, weights, state, again, resumed, widths, range(4, 6))


def _trained(widths=(6, 5, 4), flat=True, **kw):
    net = _net(widths)
    opt = _opt(net, flat, **kw)
    for s in range(2):
        _step(net, opt, s, widths)
    return net, opt


def _snapshot(net, opt):
    tensors = list(net.parameters()) + [v for per in opt._accumulators.values() for v in per.values()]
    tensors += list(opt._master_weights.values())
    return [(t, t.numpy().tobytes()) for t in tensors]


def _assert_unchanged(snap):
    for t, before in snap:
        assert t.numpy().tobytes() == before, t.name


def _first_key(state, param, kind="mean_square"):
    return next(k for k in state if k.startswith(param.name + "_") and re.search(rf"_{kind}_\d+$", k))


BAD = [
    # a transposed accumulator has the element count but not the shape (Paddle refuses it too)
    ("transposed", lambda net, st: st.__setitem__(_first_key(st, net.backbone.weight),
                                                   st[_first_key(st, net.backbone.weight)].T.clone()),
     ValueError, r"'mean_square' accumulator for parameter '[^']+'( \(saved for '[^']+'\))?: expected shape \[6, 5\] \(30 elements\), got \[5, 6\]"),
    ("overflow-numpy", lambda net, st: st.__setitem__(_first_key(st, net.head.bias),
                                                       np.full([4], 1e300)),
     ValueError, r"expected values that float32 can hold, got 1e\+300 \(it would become inf\)"),
    ("overflow-tensor", lambda net, st: st.__setitem__(_first_key(st, net.head.bias, "momentum"),
                                                        paddle.full([4], -1e300, "float64")),
     ValueError, r"'momentum' accumulator .*expected values that float32 can hold, got -1e\+300"),
    ("unknown-param", lambda net, st: st.__setitem__("someone_else.w_0_mean_square_0", paddle.zeros([3])),
     ValueError, r"state for parameters \['someone_else.w_0'\], which match none of this optimizer's parameters"),
    ("unexpected-entry", lambda net, st: st.__setitem__("beta1_pow_acc", paddle.zeros([1])),
     ValueError, r"unexpected entry 'beta1_pow_acc'"),
    ("master-for-float32", lambda net, st: st.__setitem__("master_weights", {net.head.bias.name: paddle.zeros([4])}),
     ValueError, r"master weight of '[^']+'( \(saved for '[^']+'\))?: expected none \(master weights are for float16/bfloat16 parameters "
                 r"with multi_precision=True; this one is float32"),
    ("master-unknown", lambda net, st: st.__setitem__("master_weights", {"nobody.w_0": paddle.zeros([4])}),
     ValueError, r"state for parameters \['nobody.w_0'\], which match none"),
    ("master-not-a-dict", lambda net, st: st.__setitem__("master_weights", [paddle.zeros([4])]),
     TypeError, r"master_weights: expected a dict of parameter name -> tensor, got list"),
]


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_a_bad_checkpoint_raises_and_writes_nothing(case, flat):
    _, corrupt, exc, pattern = case
    sched = paddle.optimizer.lr.StepDecay(0.01, step_size=1, gamma=0.5)
    net = _net((6, 5, 4))
    opt = RMSProp(sched, parameters=net.parameters(), momentum=0.9, centered=True, flat_state=flat)
    for s in range(2):
        _step(net, opt, s, (6, 5, 4))
    state = _copy(opt.state_dict())
    for _ in range(3):
        sched.step()
    state["LR_Scheduler"] = dict(state["LR_Scheduler"], last_epoch=0)
    corrupt(net, state)
    snap, epoch = _snapshot(net, opt), sched.last_epoch
    with pytest.raises(exc, match=pattern):
        opt.set_state_dict(state)
    _assert_unchanged(snap)
    assert sched.last_epoch == epoch
    _step(net, opt, 5, (6, 5, 4))  # the optimizer still works on its own state


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_a_bad_checkpoint_before_the_first_step_keeps_nothing(case):
    _, corrupt, exc, pattern = case
    src_net, src = _trained()
    state = _copy(src.state_dict())
    corrupt(src_net, state)
    net = _net((6, 5, 4), seed=5)
    net.set_state_dict(src_net.state_dict())
    opt = _opt(net, True)
    with pytest.raises(exc, match=pattern):
        opt.set_state_dict(state)
    assert not opt._pending.values and not opt._master_weights
    # a normal first step: the state starts from zeros, like a fresh optimizer's
    fresh_net = _net((6, 5, 4), seed=5)
    fresh_net.set_state_dict(src_net.state_dict())
    fresh = _opt(fresh_net, True)
    _step(net, opt, 7, (6, 5, 4))
    _step(fresh_net, fresh, 7, (6, 5, 4))
    for a, b in zip(_values(net), _values(fresh_net)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("flat", [False, True])
def test_master_weights_are_checked_like_the_accumulators(flat):
    paddle.seed(2)
    net = Net((3, 2, 4))
    net.to(dtype="float16")
    opt = RMSProp(0.1, parameters=net.parameters(), multi_precision=True, momentum=0.5, flat_state=flat)
    loss = sum((p.astype("float32") * 0.5).square().sum() for p in net.parameters())
    loss.backward()
    opt.step()
    opt.clear_grad()
    state = _copy(opt.state_dict())
    w = net.backbone.weight.name
    for bad, pattern in [
        (paddle.zeros([2, 3]), rf"master weight of '{re.escape(w)}': expected shape \[3, 2\] \(6 elements\), got \[2, 3\]"),
        (np.full([3, 2], 3e38 * 10.0), r"expected values that float32 can hold"),
        (paddle.zeros([3, 2], "int32"), r"master weight of .*expected a floating-point tensor, got paddle.int32"),
    ]:
        broken = dict(state, master_weights=dict(state["master_weights"], **{w: bad}))
        snap = _snapshot(net, opt)
        with pytest.raises((ValueError, TypeError), match=pattern):
            opt.set_state_dict(broken)
        _assert_unchanged(snap)
    # into an optimizer without multi_precision: refused, named
    plain = RMSProp(0.1, parameters=net.parameters(), momentum=0.5, flat_state=flat)
    with pytest.raises(ValueError, match=r"with multi_precision=False\)"):
        plain.set_state_dict(state)


def test_too_little_saved_state_to_tell_the_structure_is_refused_not_guessed():
    """A checkpoint holding only the head's state (the backbone never trained), loaded into a rebuilt
    model whose two layers have the head's shapes: either layer could be the saved one."""
    widths = (4, 4, 4)
    net = _net(widths)
    opt = _opt(net, True)
    for p in net.backbone.parameters():
        p.stop_gradient = True
    _step(net, opt, 0, widths)
    state = _copy(opt.state_dict())
    rebuilt = _net(widths, seed=1)
    resumed = _opt(rebuilt, True)
    with pytest.raises(ValueError, match=r"matches this optimizer's 'linear_<n>' parameters in 2 ways"):
        resumed.set_state_dict(state)
    # with the backbone frozen in the rebuilt model too, only the head is this optimizer's to match
    for p in rebuilt.backbone.parameters():
        p.stop_gradient = True
    resumed = RMSProp(0.01, parameters=rebuilt.head.parameters(), momentum=0.9, centered=True)
    resumed.set_state_dict(state)


class StaticRun(NamedTuple):
    main: object
    opt: object
    scope: object


_EXE = None


def _static_run(cls, **kw):
    """A PIR program training a Linear with ``cls``, its startup run in a scope of its own. Built under a
    fresh unique_name scope, so the variables of a program built with either optimizer have the same
    names."""
    global _EXE
    paddle.enable_static()
    with paddle.utils.unique_name.guard():
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", [8, 6], "float32")
            y = paddle.static.data("y", [8, 3], "float32")
            loss = ((paddle.nn.Linear(6, 3)(x) - y) ** 2).mean()
            opt = cls(0.02, momentum=0.9, centered=True, **kw)
            opt.minimize(loss)
    _EXE = _EXE or paddle.static.Executor(paddle.CPUPlace())
    run = StaticRun(main, opt, paddle.static.Scope())
    with paddle.static.scope_guard(run.scope):
        _EXE.run(startup)
    return run


def _train_static(run, steps):
    for s in steps:
        rs = np.random.RandomState(50 + s)
        feed = {"x": rs.randn(8, 6).astype("float32"), "y": rs.randn(8, 3).astype("float32")}
        with paddle.static.scope_guard(run.scope):
            _EXE.run(run.main, feed=feed)


def _variables(run):
    """The program's parameters and optimizer variables (what paddle.static.save writes), by name."""
    from paddle.static.pir_io import get_pir_parameters

    params, opts = get_pir_parameters(run.main)
    return {v.name: np.array(run.scope.var(v.name).get_tensor()).copy() for v in params + opts}


@pytest.mark.parametrize("direction", ["paddle->ours", "ours->paddle"])
def test_static_checkpoints_move_between_paddle_rmsprop_and_ours(direction, tmp_path):
    """paddle.static.save / load: the default layout's program holds Paddle's accumulator variables, so a
    checkpoint of either optimizer's program loads into the other's and training continues alike."""
    classes = (paddle.optimizer.RMSProp, RMSProp) if direction == "paddle->ours" else (RMSProp, paddle.optimizer.RMSProp)
    try:
        src, dst = (_static_run(cls) for cls in classes)
        assert sorted(_variables(src)) == sorted(_variables(dst))
        _train_static(src, range(3))
        with paddle.static.scope_guard(src.scope):
            paddle.static.save(src.main, str(tmp_path / "ckpt"))
        with paddle.static.scope_guard(dst.scope):
            paddle.static.load(dst.main, str(tmp_path / "ckpt"))
        assert all(np.array_equal(v, _variables(src)[k]) for k, v in _variables(dst).items())
        _train_static(src, range(3, 6))
        _train_static(dst, range(3, 6))
        theirs = _variables(dst)
        for k, v in _variables(src).items():
            np.testing.assert_allclose(theirs[k], v, rtol=1e-6, atol=1e-6, err_msg=k)
    finally:
        paddle.disable_static()


def test_a_flat_static_program_exports_and_imports_paddle_rmsprop_state(tmp_path):
    """flat_state=True: the program's variables are flat buffers; state_per_parameter gives what a program
    built with paddle.optimizer.RMSProp holds, and load_state_per_parameter takes that program's checkpoint
    (paddle.static.load_program_state), after which training continues as it does."""
    try:
        ref, flat = _static_run(paddle.optimizer.RMSProp), _static_run(RMSProp, flat_state=True)
        _train_static(ref, range(3))
        with paddle.static.scope_guard(ref.scope):
            paddle.static.save(ref.main, str(tmp_path / "ref"))
        saved = paddle.static.load_program_state(str(tmp_path / "ref"))
        with paddle.static.scope_guard(flat.scope):
            paddle.static.set_program_state(flat.main, {k: v for k, v in saved.items() if k in _variables(flat)})
            loaded = flat.opt.load_state_per_parameter(saved)
            exported = flat.opt.state_per_parameter()
        assert loaded == sorted(exported) and len(loaded) == 6  # weight and bias, three kinds each
        for k, v in exported.items():
            np.testing.assert_array_equal(v, saved[k], err_msg=k)
        _train_static(ref, range(3, 6))
        _train_static(flat, range(3, 6))
        ours = _variables(flat)
        with paddle.static.scope_guard(flat.scope):
            ours.update(flat.opt.state_per_parameter())
        for k, v in _variables(ref).items():
            np.testing.assert_allclose(ours[k], v, rtol=1e-6, atol=1e-6, err_msg=k)
    finally:
        paddle.disable_static()


@pytest.mark.parametrize("bad", ["missing", "transposed", "overflow"])
def test_a_bad_per_parameter_state_writes_nothing_into_the_flat_buffers(bad):
    try:
        run = _static_run(RMSProp, flat_state=True)
        _train_static(run, range(1))
        with paddle.static.scope_guard(run.scope):
            state = run.opt.state_per_parameter()
        weight = next(k for k in state if "w_0_mean_square" in k)
        if bad == "missing":
            del state[weight]
            pattern = r"'mean_square' accumulator for parameter '[^']+': missing"
        elif bad == "transposed":
            state[weight] = state[weight].T.copy()
            pattern = r"expected shape \[6, 3\] \(18 elements\), got \[3, 6\]"
        else:
            state[weight] = np.full(state[weight].shape, 1e300)
            pattern = r"expected values that float32 can hold, got 1e\+300"
        before = _variables(run)
        with paddle.static.scope_guard(run.scope), pytest.raises(ValueError, match=pattern):
            run.opt.load_state_per_parameter(state)
        for name, value in _variables(run).items():
            np.testing.assert_array_equal(value, before[name], err_msg=name)
    finally:
        paddle.disable_static()
