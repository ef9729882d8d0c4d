"""``rmsprop_ops.paddle.RMSProp(flat_state=True)`` and the ``*_flat`` ops it runs.

Flat state keeps each creation batch's accumulators in one 1-D buffer per kind. Everything here compares
against the per-parameter layout, whose parity with ``paddle.optimizer.RMSProp`` the parity suite checks
(and which runs every other pair of its cases with flat state too): same inputs must give bit-identical
parameters and state, the checkpoint must move between the layouts and Paddle's RMSProp, and bad input to
the ops or to ``set_state_dict`` must raise and leave every tensor unchanged.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import paddle_helpers as H
from rmsprop_ops._flat import flat_offsets
from rmsprop_ops.paddle import RMSProp, load_ops
from rmsprop_ops.paddle._launch import invoke as _invoke

pytestmark = pytest.mark.paddle

KINDS = ("mean_square", "momentum", "mean_grad")  # the flat buffers' order


@pytest.fixture(autouse=True)
def dynamic_mode():
    paddle.disable_static()
    load_ops()


def _model(seed=0, sizes=(6, 5, 4, 3)):
    paddle.seed(seed)
    layers = [paddle.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    return paddle.nn.Sequential(*layers)


def _batch(seed, n_in=6, n_out=3):
    rs = np.random.RandomState(seed)
    return paddle.to_tensor(rs.randn(8, n_in).astype("float32")), paddle.to_tensor(rs.randn(8, n_out).astype("float32"))


def _step(model, opt, seed, skip=()):
    x, y = _batch(seed)
    ((model(x) - y) ** 2).mean().backward()
    for p in skip:
        p.clear_gradient(False)  # no gradient this step: left out of the step, as Paddle does
    opt.step()
    opt.clear_grad()


def _values(model):
    return [p.numpy().copy() for p in model.parameters()]


def _pair(**kw):
    """Two identical models, one with per-parameter state and one with flat state."""
    m1, m2 = _model(), _model()
    for a, b in zip(m1.parameters(), m2.parameters()):
        b.set_value(a.numpy())
    o1 = RMSProp(0.02, parameters=m1.parameters(), flat_state=False, **kw)
    o2 = RMSProp(0.02, parameters=m2.parameters(), flat_state=True, **kw)
    return (m1, o1), (m2, o2)


def _assert_bitwise(m1, o1, m2, o2):
    for i, (a, b) in enumerate(zip(_values(m1), _values(m2))):
        np.testing.assert_array_equal(a, b, err_msg=f"param {i}")
    for i, (a, b) in enumerate(zip(H.accumulator_values(o1, m1.parameters()),
                                   H.accumulator_values(o2, m2.parameters()))):
        np.testing.assert_array_equal(a, b, err_msg=f"accumulator {i} ({H.ACCS[i % 3]})")


# ------------------------------------------------------------------------------------ dynamic mode
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("centered", [False, True])
def test_dynamic_flat_state_is_bitwise_the_per_parameter_update(centered, fused):
    (m1, o1), (m2, o2) = _pair(momentum=0.9, centered=centered, fused=fused, weight_decay=0.01)
    for s in range(4):
        _step(m1, o1, s)
        _step(m2, o2, s)
    _assert_bitwise(m1, o1, m2, o2)
    assert len(o2._store.chunks) == 1 and not o1._store.chunks
    # each parameter's accumulators are views of its slices of the flat buffers, under Paddle's names
    (chunk,) = o2._store.chunks
    assert sorted(o2._accumulators) == sorted(o1._accumulators) == sorted(KINDS)
    for p, off in zip(m2.parameters(), chunk.offsets):
        for kind, buf in zip(KINDS, chunk.buffers):
            view = o2._accumulators[kind][p.name]
            assert view.name == f"{p.name}_{kind}_0" and view.shape == p.shape
            assert view.data_ptr() == buf.data_ptr() + 4 * off


def test_dynamic_mode_defaults_to_flat_state_with_paddle_names():
    """The default layout in dynamic mode is flat; state_dict() lists the live per-parameter views, named
    and ordered as paddle.optimizer.RMSProp's entries, with its values."""
    m, ref_m = _model(), _model()
    opt = RMSProp(0.02, parameters=m.parameters(), momentum=0.9, centered=True)
    ref = paddle.optimizer.RMSProp(0.02, parameters=ref_m.parameters(), momentum=0.9, centered=True)
    for s in range(2):
        _step(m, opt, s)
        _step(ref_m, ref, s)
    assert len(opt._store.chunks) == 1 and len(opt._store.chunks[0].names) == len(m.parameters())
    rename = {q.name: p.name for p, q in zip(m.parameters(), ref_m.parameters())}
    theirs = {re.sub(r"^(.*)(_(?:momentum|mean_square|mean_grad)_\d+)$", lambda g: rename[g[1]] + g[2], k): v
              for k, v in ref.state_dict().items()}
    ours = opt.state_dict()
    assert list(ours) == list(theirs)
    for k, v in ours.items():
        np.testing.assert_allclose(v.numpy(), theirs[k].numpy(), rtol=1e-6, atol=1e-7, err_msg=k)
    # live tensors, as Paddle's: the next step shows in them
    before = {k: v.numpy().copy() for k, v in ours.items()}
    _step(m, opt, 2)
    assert all(not np.array_equal(v.numpy(), before[k]) for k, v in ours.items())


def test_layout_aligns_every_slice_and_leaves_the_padding_alone():
    model = _model(sizes=(7, 5, 3))  # 35, 5, 15, 3 elements
    opt = RMSProp(0.02, parameters=model.parameters(), momentum=0.9, centered=True, flat_state=True)
    for s in range(3):
        x, y = _batch(s, 7, 3)
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        opt.clear_grad()
    (chunk,) = opt._store.chunks
    sizes = [int(np.prod(p.shape)) for p in model.parameters()]
    assert chunk.offsets == flat_offsets(sizes)[0] == [0, 48, 64, 80]
    assert chunk.names == [p.name for p in model.parameters()]
    pad = np.ones(83, bool)
    for off, n in zip(chunk.offsets, sizes):
        pad[off:off + n] = False
    for kind, buf in zip(KINDS, chunk.buffers):
        assert buf.shape == [83] and buf.dtype == paddle.float32
        assert buf.name == f"{model.parameters()[0].name}_{kind}_flat_0"
        v = buf.numpy()
        assert np.all(v[pad] == 0), kind  # never written
        assert np.all(v[~pad] != 0), kind  # every slice moved


def test_parameters_first_seen_later_get_a_chunk_of_their_own():
    (m1, o1), (m2, o2) = _pair(momentum=0.9, centered=True)
    late = [p for p in m2.parameters()][-2:]
    late1 = [p for p in m1.parameters()][-2:]
    _step(m1, o1, 0, skip=late1)
    _step(m2, o2, 0, skip=late)
    assert len(o2._store.chunks) == 1 and len(o2._store.chunks[0].names) == 4
    for s in range(1, 4):
        _step(m1, o1, s)
        _step(m2, o2, s)
    assert [len(c.names) for c in o2._store.chunks] == [4, 2]
    _assert_bitwise(m1, o1, m2, o2)


def test_parameters_without_a_gradient_take_explicit_offsets(monkeypatch):
    """A step updating a subset of a chunk passes its offsets; one covering the chunk in order passes none
    and the kernel packs them itself."""
    (m1, o1), (m2, o2) = _pair(momentum=0.5)
    seen = []
    real = _invoke

    def spy(core_op, tensors, attrs, **kw):
        seen.append(list(attrs.get("offsets", ["absent"])))
        return real(core_op, tensors, attrs, **kw)

    monkeypatch.setattr("rmsprop_ops.paddle._launch.invoke", spy)
    skip = [list(m.parameters())[1] for m in (m1, m2)]
    _step(m1, o1, 0)
    _step(m2, o2, 0)
    _step(m1, o1, 1, skip=[skip[0]])
    _step(m2, o2, 1, skip=[skip[1]])
    _assert_bitwise(m1, o1, m2, o2)
    offsets = o2._store.chunks[0].offsets
    assert seen == [["absent"], [], ["absent"], [offsets[0]] + offsets[2:]]


def test_mixed_dtypes_and_master_weights_get_one_chunk_per_state_dtype():
    paddle.seed(3)
    w64 = paddle.create_parameter([4, 3], "float64")
    w16 = paddle.create_parameter([5], "float16")
    w32 = paddle.create_parameter([2, 2], "float32")
    params = [w64, w16, w32]
    refs = [paddle.create_parameter(p.shape, p.dtype) for p in params]
    for p, r in zip(params, refs):
        r.set_value(p.numpy())
    kw = dict(momentum=0.9, centered=True, multi_precision=True)
    opt = RMSProp(0.01, parameters=params, flat_state=True, **kw)
    ref = RMSProp(0.01, parameters=refs, **kw)
    for s in range(3):
        for ps, o in ((params, opt), (refs, ref)):
            loss = sum((p.astype("float32") * float(s + 1 + i)).square().sum() for i, p in enumerate(ps))
            loss.backward()
            o.step()
            o.clear_grad()
    assert [c.buffers[0].dtype for c in opt._store.chunks] == [paddle.float64, paddle.float32]
    assert len(opt._store.chunks[1].names) == 2  # the float16 param's float32 master and the float32 param
    for a, b in zip(params, refs):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(H.accumulator_values(opt, params), H.accumulator_values(ref, refs)):
        np.testing.assert_array_equal(a, b)


def test_distributed_parameters_keep_per_parameter_state(monkeypatch):
    """Auto-parallel shards each parameter's state with the parameter's placements, so a dist parameter
    stays out of the flat buffers; the others still share them, and the step is unchanged."""
    import rmsprop_ops.paddle._state as S

    (m1, o1), (m2, o2) = _pair(momentum=0.9, centered=True)
    dist = list(m2.parameters())[2]
    monkeypatch.setattr(S, "distributed", lambda p: p is dist)
    for s in range(3):
        _step(m1, o1, s)
        _step(m2, o2, s)
    (chunk,) = o2._store.chunks
    assert dist.name not in chunk.names and len(chunk.names) == 5
    # the dist parameter's accumulators are tensors of their own, the others' views of the flat buffers
    ends = [(b.data_ptr(), b.data_ptr() + 4 * b.shape[0]) for b in chunk.buffers]
    for p in m2.parameters():
        in_chunk = [any(lo <= o2._accumulators[k][p.name].data_ptr() < hi for lo, hi in ends) for k in KINDS]
        assert in_chunk == [p is not dist] * 3, p.name
    for a, b in zip(_values(m1), _values(m2)):
        np.testing.assert_array_equal(a, b)
    rename = {p.name: q.name for p, q in zip(m1.parameters(), m2.parameters())}
    ours = {re.sub(r"^(.*)(_(?:momentum|mean_square|mean_grad)_\d+)$", lambda g: rename[g[1]] + g[2], k)
            for k in o1.state_dict()}
    assert sorted(o2.state_dict()) == sorted(ours)


def test_bfloat16_parameters_state_round_trips_through_a_checkpoint():
    paddle.seed(4)
    layer = paddle.nn.Linear(5, 3)
    layer.to(dtype="bfloat16")
    params = layer.parameters()
    opt = RMSProp(0.01, parameters=params, momentum=0.9, centered=True, flat_state=True)
    for s in range(2):
        sum((p.astype("float32") * float(s + 2)).square().sum() for p in params).backward()
        opt.step()
        opt.clear_grad()
    state = {k: v.clone() for k, v in opt.state_dict().items()}  # a checkpoint: not the live state
    assert all(v.dtype == paddle.float32 for v in state.values())  # the math type
    before = [b.astype("float32").numpy() for b in opt._store.chunks[0].buffers]
    assert all(np.any(v != 0) for v in before)
    for b in opt._store.chunks[0].buffers:
        b.set_value(paddle.zeros(b.shape, b.dtype))
    opt.set_state_dict(state)
    for b, v in zip(opt._store.chunks[0].buffers, before):
        assert b.dtype == paddle.float32
        np.testing.assert_array_equal(b.astype("float32").numpy(), v)


# -------------------------------------------------------------------------------------- checkpoints
def _trained_pair(centered=True, steps=3):
    (m1, o1), (m2, o2) = _pair(momentum=0.9, centered=centered)
    for s in range(steps):
        _step(m1, o1, s)
        _step(m2, o2, s)
    return (m1, o1), (m2, o2)


def test_state_dict_has_paddle_rmsprop_names_and_the_slices():
    m = _model(5)
    opt = RMSProp(0.02, parameters=m.parameters(), momentum=0.9, centered=True, flat_state=True)
    ref_m = _model(5)
    ref = paddle.optimizer.RMSProp(0.02, parameters=ref_m.parameters(), momentum=0.9, centered=True)
    for s in range(2):
        _step(m, opt, s)
        _step(ref_m, ref, s)
    ours, theirs = opt.state_dict(), ref.state_dict()
    rename = {q.name: p.name for p, q in zip(m.parameters(), ref_m.parameters())}
    theirs_renamed = {re.sub(r"^(.*)_(momentum|mean_square|mean_grad)_\d+$",
                             lambda g: f"{rename[g[1]]}_{g[2]}_0", k): v for k, v in theirs.items()}
    assert sorted(ours) == sorted(theirs_renamed)
    for k, v in ours.items():
        np.testing.assert_allclose(v.numpy(), theirs_renamed[k].numpy(), rtol=1e-6, atol=1e-7, err_msg=k)
    # live views, as Paddle's entries are its accumulators: writing one writes the slice, not the padding
    for v in ours.values():
        v.set_value(np.full(v.shape, 7.0, "float32"))
    (chunk,) = opt._store.chunks
    sizes = [int(np.prod(s)) for s in chunk.shapes]
    for b in chunk.buffers:
        inside = np.zeros(b.shape[0], bool)
        for off, n in zip(chunk.offsets, sizes):
            inside[off:off + n] = True
        np.testing.assert_array_equal(b.numpy()[inside], 7.0)
        np.testing.assert_array_equal(b.numpy()[~inside], 0.0)


@pytest.mark.parametrize("direction", ["flat->per_param", "per_param->flat", "flat->flat"])
def test_checkpoint_moves_between_layouts(direction):
    (m1, o1), (m2, o2) = _trained_pair()
    src_flat = direction.startswith("flat")
    dst_flat = direction.endswith("->flat")
    src_model, src_opt = (m2, o2) if src_flat else (m1, o1)
    state = src_opt.state_dict()
    # a new model and optimizer, loaded before its first step (accumulators are created then)
    dst = _model(9)
    for p, q in zip(dst.parameters(), src_model.parameters()):
        p.set_value(q.numpy())
    dst_opt = RMSProp(0.02, parameters=dst.parameters(), momentum=0.9, centered=True, flat_state=dst_flat)
    dst_opt.set_state_dict(state)
    for s in range(3, 6):
        _step(src_model, src_opt, s)
        _step(dst, dst_opt, s)
    _assert_bitwise(src_model, src_opt, dst, dst_opt)


def test_checkpoint_moves_to_and_from_paddle_rmsprop():
    (_, _), (m, opt) = _trained_pair()
    ref_m = _model(11)
    for p, q in zip(ref_m.parameters(), m.parameters()):
        p.set_value(q.numpy())
    ref = paddle.optimizer.RMSProp(0.02, parameters=ref_m.parameters(), momentum=0.9, centered=True)
    # Paddle matches entries by its own variable names: give it ours under the new parameters' names.
    rename = {p.name: q.name for p, q in zip(m.parameters(), ref_m.parameters())}
    state = {re.sub(r"^(.*)(_(?:momentum|mean_square|mean_grad)_0)$", lambda g: rename[g[1]] + g[2], k): v
             for k, v in opt.state_dict().items()}
    _step(ref_m, ref, 99)  # Paddle's set_state_dict fills accumulators that already exist
    for p, q in zip(ref_m.parameters(), m.parameters()):
        p.set_value(q.numpy())
    ref.set_state_dict(state)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k].numpy(), err_msg=k)
    # and back: Paddle's checkpoint into a flat optimizer that has already stepped
    for s in range(3, 5):
        _step(ref_m, ref, s)
    opt.set_state_dict(ref.state_dict())
    for p, q in zip(m.parameters(), ref_m.parameters()):
        p.set_value(q.numpy())
    for s in range(5, 7):
        _step(ref_m, ref, s)
        _step(m, opt, s)
    for a, b in zip(_values(m), _values(ref_m)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bad", ["wrong_shape", "missing", "unexpected"])
def test_bad_checkpoint_raises_and_changes_nothing(bad):
    (_, _), (m, opt) = _trained_pair()
    state = opt.state_dict()
    keys = sorted(state)
    if bad == "wrong_shape":
        state[keys[-1]] = paddle.zeros([7])
        exc, pattern = ValueError, r"expected shape \[.*\] \(\d+ elements\), got \[7\]"
    elif bad == "missing":
        del state[keys[-1]]
        exc, pattern = ValueError, r"no '\w+' accumulator for parameter"
    else:
        state["something_else"] = paddle.zeros([1])
        exc, pattern = ValueError, r"unexpected entry 'something_else'"
    before = [b.numpy().copy() for c in opt._store.chunks for b in c.buffers]
    with pytest.raises(exc, match=pattern):
        opt.set_state_dict(state)
    after = [b.numpy() for c in opt._store.chunks for b in c.buffers]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    # and a later step still runs on the old state
    _step(m, opt, 10)


def _mixed_params(seed):
    paddle.seed(seed)
    return [paddle.create_parameter([4], "float32"), paddle.create_parameter([4], "float64"),
            paddle.create_parameter([4], "float32")]


def _mixed_step(params, opt, s):
    sum((p.astype("float32") * float(s + 1 + i)).square().sum() for i, p in enumerate(params)).backward()
    opt.step()
    opt.clear_grad()


@pytest.mark.parametrize("src_flat,dst_flat", [(True, True), (True, False), (False, True)])
def test_checkpoint_into_a_rebuilt_model_follows_the_renamed_parameters(src_flat, dst_flat):
    """A model rebuilt in the same process has new parameter names (each create_parameter counter moved
    on by three); each saved entry goes to the parameter at the same place under the new counters, across
    layouts and whatever the dtype each flat buffer holds (float32, float64, float32 here)."""
    src = _mixed_params(1)
    src_opt = RMSProp(0.01, parameters=src, momentum=0.9, centered=True, flat_state=src_flat)
    for s in range(3):
        _mixed_step(src, src_opt, s)
    dst = _mixed_params(2)
    for p, q in zip(dst, src):
        p.set_value(q.numpy())
    dst_opt = RMSProp(0.01, parameters=dst, momentum=0.9, centered=True, flat_state=dst_flat)
    dst_opt.set_state_dict(src_opt.state_dict())
    for s in range(3, 5):
        _mixed_step(src, src_opt, s)
        _mixed_step(dst, dst_opt, s)
    for p, q in zip(dst, src):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_checkpoint_values_are_cast_to_the_state_dtype():
    """Paddle's RMSProp keeps a 16-bit parameter's state in its dtype (on a GPU); ours keeps float32. A
    bfloat16 tensor's numpy() is its raw bits, so the cast goes through Paddle, in both layouts."""
    for flat in (False, True):
        m = _model(6, sizes=(3, 2))
        opt = RMSProp(0.02, parameters=m.parameters(), momentum=0.9, centered=True, flat_state=flat)
        m(paddle.ones([2, 3])).sum().backward()
        opt.step()
        opt.clear_grad()
        state = {k: paddle.full(v.shape, 0.5, "bfloat16" if i % 2 else "float16")
                 for i, (k, v) in enumerate(opt.state_dict().items())}
        opt.set_state_dict(state)
        for v in H.accumulator_values(opt, m.parameters()):
            np.testing.assert_array_equal(v, np.full(v.shape, 0.5, "float32"))


@pytest.mark.parametrize("flat", [False, True])
def test_a_refused_checkpoint_leaves_the_scheduler_and_masters_alone(flat):
    layer = paddle.nn.Linear(3, 2)
    layer.to(dtype="float16")
    sched = paddle.optimizer.lr.StepDecay(0.1, step_size=1, gamma=0.5)
    opt = RMSProp(sched, parameters=layer.parameters(), momentum=0.9, multi_precision=True, flat_state=flat)
    for _ in range(3):
        (layer.weight.astype("float32").square().sum() + layer.bias.astype("float32").sum()).backward()
        opt.step()
        opt.clear_grad()
        sched.step()
    state = opt.state_dict()
    del state[sorted(k for k in state if k.endswith("_momentum_0"))[0]]
    state["LR_Scheduler"] = dict(state["LR_Scheduler"], last_epoch=0, last_lr=0.1)
    state["master_weights"] = {k: paddle.zeros_like(v) for k, v in state["master_weights"].items()}
    masters = [m.numpy().copy() for m in opt._master_weights.values()]
    accs = H.accumulator_values(opt, layer.parameters())
    epoch, lr = sched.last_epoch, sched.last_lr
    with pytest.raises(ValueError, match=r"no '\w+' accumulator for parameter"):
        opt.set_state_dict(state)
    assert (sched.last_epoch, sched.last_lr) == (epoch, lr)
    for m, v in zip(opt._master_weights.values(), masters):
        np.testing.assert_array_equal(m.numpy(), v)
    for a, b in zip(H.accumulator_values(opt, layer.parameters()), accs):
        np.testing.assert_array_equal(a, b)


def test_a_mixed_layout_checkpoint_is_checked_whole_before_writing(monkeypatch):
    """A dist parameter keeps per-parameter state next to the flat buffers: a missing entry for it is
    found before the flat buffers are written."""
    import rmsprop_ops.paddle._state as S

    m = _model(7)
    dist = list(m.parameters())[1]
    monkeypatch.setattr(S, "distributed", lambda p: p is dist)
    opt = RMSProp(0.02, parameters=m.parameters(), momentum=0.9, centered=True, flat_state=True)
    for s in range(2):
        _step(m, opt, s)
    state = {k: paddle.zeros_like(v) for k, v in opt.state_dict().items()}
    del state[next(k for k in state if k.startswith(dist.name) and k.endswith("_momentum_0"))]
    before = H.accumulator_values(opt, m.parameters())
    with pytest.raises(ValueError, match=rf"no 'momentum' accumulator for parameter '{re.escape(dist.name)}'"):
        opt.set_state_dict(state)
    for a, b in zip(H.accumulator_values(opt, m.parameters()), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("bad", ["size", "dtype"])
def test_a_checkpoint_loaded_before_the_first_step_is_checked_at_once(flat, bad):
    m = _model(8)
    opt = RMSProp(0.02, parameters=m.parameters(), momentum=0.9, flat_state=flat)
    src = RMSProp(0.02, parameters=m.parameters(), momentum=0.9)
    _step(m, src, 0)
    state = src.state_dict()
    key = sorted(state)[0]
    if bad == "size":
        state[key] = paddle.zeros([7])
        exc, pattern = ValueError, r"expected shape \[\d+(, \d+)?\] \(\d+ elements\), got \[7\]"
    else:
        state[key] = paddle.zeros(state[key].shape, "int32")
        exc, pattern = TypeError, r"expected a floating-point tensor, got paddle.int32"
    with pytest.raises(exc, match=pattern):
        opt.set_state_dict(state)
    _step(m, opt, 1)  # nothing was kept from the refused checkpoint: a normal first step


@pytest.mark.parametrize("flat", [False, True])
def test_a_master_weight_of_the_wrong_size_is_refused_before_the_first_step(flat):
    layer = paddle.nn.Linear(3, 2)
    layer.to(dtype="float16")
    src = RMSProp(0.1, parameters=layer.parameters(), multi_precision=True, flat_state=flat)
    (layer.weight.astype("float32").square().sum() + layer.bias.astype("float32").sum()).backward()
    src.step()
    src.clear_grad()
    state = src.state_dict()
    weight = layer.weight.name
    state["master_weights"] = dict(state["master_weights"], **{weight: paddle.zeros([5], "float32")})
    fresh = RMSProp(0.1, parameters=layer.parameters(), multi_precision=True, flat_state=flat)
    with pytest.raises(ValueError, match=rf"master weight of '{re.escape(weight)}': expected shape \[3, 2\]"):
        fresh.set_state_dict(state)
    assert fresh._master_weights == {}


def test_flat_state_must_be_a_bool():
    with pytest.raises(TypeError, match=r"flat_state: expected a bool, got int"):
        RMSProp(0.1, parameters=_model().parameters(), flat_state=1)


# ------------------------------------------------------------------------------------ static programs
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("centered", [False, True])
def test_static_program_flat_state_is_bitwise_the_per_parameter_update(centered, fused):
    kw = dict(steps=5, wd="paramattr", lr="scheduler", centered=centered, momentum=0.9, clip="global_norm")
    h1, a1, ops1, _, _ = H.run_static(lambda **k: RMSProp(**k, fused=fused), **kw)
    h2, a2, ops2, opt, main = H.run_static(lambda **k: RMSProp(**k, fused=fused, flat_state=True), **kw)
    for step, (x, y) in enumerate(zip(h1, h2)):
        for i, (a, b) in enumerate(zip(x, y)):
            np.testing.assert_array_equal(a, b, err_msg=f"param {i} after step {step + 1}")
    for i, (a, b) in enumerate(zip(a1, a2)):
        np.testing.assert_array_equal(a, b, err_msg=f"accumulator {i}")
    # the program's persistable optimizer state: three flat buffers, no per-parameter accumulators
    names = {v.name for v in main.list_vars() if v.persistable}
    flat = sorted(n for n in names if "_flat_" in n)
    assert sorted(re.search(r"_(mean_square|momentum|mean_grad)_flat_\d+$", n)[1] for n in flat) == sorted(KINDS)
    assert not [n for n in names if re.search(r"_(momentum|mean_square|mean_grad)_\d+$", n)]


def test_static_no_grad_set_leaves_the_frozen_weight_out_of_the_chunk():
    h, _, _, opt, _ = H.run_static(lambda **k: RMSProp(**k, fused=True, flat_state=True), steps=3, no_grad=True)
    init = H.init_values([x.shape for x in h[0]])
    np.testing.assert_array_equal(h[-1][0], init[0])  # frozen weight untouched
    assert not np.array_equal(h[-1][1], init[1])
    (chunk,) = opt._store.chunks
    assert len(chunk.names) == 3  # no state for the frozen weight


# ------------------------------------------------------------------------------------------ raw ops
SHAPES = [(3,), (2, 2), (5,)]


def _rand(shape, seed, positive=False):
    rs = np.random.RandomState(seed)
    return (rs.rand(*shape) + 0.1 if positive else rs.randn(*shape)).astype("float32")


def _flat_base(centered, offsets=(0, 16, 32), size=37):
    """The multi op's arguments as per-tensor lists, and the same state packed at ``offsets``."""
    t = {"Param": [_rand(s, 10 + i) for i, s in enumerate(SHAPES)],
         "Grad": [_rand(s, 20 + i) for i, s in enumerate(SHAPES)],
         "MeanSquare": [_rand(s, 30 + i, True) for i, s in enumerate(SHAPES)],
         "Moment": [_rand(s, 40 + i) for i, s in enumerate(SHAPES)]}
    if centered:
        t["MeanGrad"] = [_rand(s, 50 + i) * 0.1 for i, s in enumerate(SHAPES)]
    flat = {}
    for kind in ("MeanSquare", "Moment", "MeanGrad"):
        if kind in t:
            buf = np.full(size, -9.0, "float32")  # the padding's value must survive
            for off, v in zip(offsets, t[kind]):
                buf[off:off + v.size] = v.reshape(-1)
            flat[kind] = buf
    a = dict(learning_rate=0.1, rho=0.9, epsilon=1e-6, momentum=0.5, lr_mults=[1.0, 0.5, 2.0],
             weight_decays=[0.0, 0.01, 0.1])
    return t, flat, a


def _tensors(d):
    return {k: [paddle.to_tensor(x) for x in v] if isinstance(v, list) else paddle.to_tensor(v)
            for k, v in d.items()}


@pytest.mark.parametrize("dygraph", [False, True])
@pytest.mark.parametrize("given", [False, True])
@pytest.mark.parametrize("centered", [False, True])
def test_flat_op_is_bitwise_the_multi_op(centered, given, dygraph):
    offsets = (0, 16, 32) if not given else (40, 3, 20)
    t, flat, a = _flat_base(centered, offsets, size=48)
    op = "rmsprop_centered_multi" if centered else "rmsprop_multi"
    ref = _tensors(t)
    _invoke(op, ref, a)
    ours = _tensors({"Param": t["Param"], "Grad": t["Grad"], **flat})
    # the dygraph twin is unchecked (the optimizer's own call), the other goes through the checks
    _invoke(op, ours, dict(a, offsets=list(offsets) if given else []), checked=not dygraph, dygraph=dygraph,
            flat=True)
    for p, q in zip(ours["Param"], ref["Param"]):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    for kind in flat:
        buf = ours[kind].numpy()
        pad = np.ones(buf.size, bool)
        for off, q in zip(offsets, ref[kind]):
            np.testing.assert_array_equal(buf[off:off + q.size].reshape(q.shape), q.numpy(), err_msg=kind)
            pad[off:off + q.size] = False
        assert np.all(buf[pad] == -9.0), kind


def _change(**kw):
    def change(t, flat, a):
        for k, v in kw.items():
            if k in a or k == "offsets":
                a[k] = v
            else:
                flat[k] = v(flat[k]) if callable(v) else v
    return change


FLAT_CASES = [
    ("offsets_too_few", _change(offsets=[0, 16]), ValueError,
     r"offsets: expected 3 values \(one per Param\) or \[\], got 2"),
    ("offset_negative", _change(offsets=[0, -1, 32]), ValueError,
     r"offsets\[1\]: expected an int in \[0, 2\*\*63\), got -1"),
    ("offset_past_end", _change(offsets=[0, 16, 33]), ValueError,
     r"offsets\[2\]: expected an integer in \[0, 32\] so that Param\[2\]'s 5 elements fit in MeanSquare "
     r"\(37 elements\), got 33"),
    ("offset_huge", _change(offsets=[0, 16, 2**63 - 2]), ValueError, r"offsets\[2\]: expected an integer in \[0, 32\]"),
    ("offset_float", _change(offsets=[0, 16.0, 32]), TypeError, r"offsets\[1\]: expected an int, got float"),
    ("offset_bool", _change(offsets=[0, True, 32]), TypeError, r"offsets\[1\]: expected an int, got bool"),
    ("offsets_not_list", _change(offsets=5), TypeError, r"offsets: expected a list of ints"),
    ("overlapping_slices", _change(offsets=[0, 2, 32]), ValueError, r"memory overlaps"),
    ("buffer_2d", _change(MeanSquare=lambda b: b.reshape(1, -1)), ValueError,
     r"MeanSquare: expected a 1-D flat buffer, got 2 dims"),
    ("buffer_too_small", _change(Moment=lambda b: b[:3]), ValueError,
     r"Moment: expected a flat buffer of at least 4 elements for Param\[1\], got 3"),
    ("buffer_too_small_for_its_offsets", _change(Moment=lambda b: b[:30]), ValueError,
     r"offsets\[2\]: expected an integer in \[0, 25\] so that Param\[2\]'s 5 elements fit in Moment "
     r"\(30 elements\), got 32"),
    ("buffer_empty", _change(Moment=lambda b: b[:0]), ValueError,
     r"Moment: expected a flat buffer of at least 5 elements, got 0"),
    ("buffer_float64", _change(MeanSquare=lambda b: b.astype("float64")), TypeError, r"mean_squares?\[0\].*float64"),
    ("buffer_is_a_list", None, TypeError, r"MeanSquare: expected a paddle.Tensor, got list"),
]


@pytest.mark.parametrize("case", FLAT_CASES, ids=[c[0] for c in FLAT_CASES])
@pytest.mark.parametrize("centered", [False, True])
def test_flat_op_bad_input_raises_and_changes_nothing(case, centered):
    _, change, exc, pattern = case
    t, flat, a = _flat_base(centered)
    a["offsets"] = [0, 16, 32]
    if change is not None:
        change(t, flat, a)
    tensors = _tensors({"Param": t["Param"], "Grad": t["Grad"], **flat})
    if change is None:
        tensors["MeanSquare"] = [tensors["MeanSquare"]]
    snap = [(x, x.numpy().tobytes()) for v in tensors.values() for x in (v if isinstance(v, list) else [v])]
    with pytest.raises(exc, match=pattern):
        _invoke("rmsprop_centered_multi" if centered else "rmsprop_multi", tensors, a, flat=True)
    for i, (x, before) in enumerate(snap):
        assert x.numpy().tobytes() == before, f"tensor #{i} was modified"


# The unchecked functions (``load_ops().raw``, what the optimizer calls) reach the kernel with whatever
# they are given: its own checks must hold there too, for values Python would have refused first.
RAW_CASES = [
    ("offset_negative", _change(offsets=[0, -1, 32]), r"offsets\[1\]: expected an integer in \[0, 33\]"),
    ("offset_past_end", _change(offsets=[0, 16, 33]), r"offsets\[2\]: expected an integer in \[0, 32\]"),
    ("offset_max_int64", _change(offsets=[0, 16, 2**63 - 1]), r"offsets\[2\]: expected an integer in \[0, 32\]"),
    ("offset_min_int64", _change(offsets=[-(2**63), 16, 32]), r"offsets\[0\]: expected an integer in \[0, 34\]"),
    ("offsets_too_many", _change(offsets=[0, 16, 32, 48]),
     r"offsets: expected 3 values \(one per Param\) or none, got 4"),
    ("overlapping_slices", _change(offsets=[0, 2, 32]), r"memory overlaps"),
    ("buffer_2d", _change(MeanSquare=lambda b: b.reshape(1, -1)),
     r"MeanSquare: expected a 1-D flat buffer, got 2 dims"),
    ("buffer_too_small", _change(Moment=lambda b: b[:3]),
     r"Moment: expected a flat buffer of at least 4 elements for Param\[1\], got 3"),
]


@pytest.mark.parametrize("dygraph", [False, True])
@pytest.mark.parametrize("case", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_raw_flat_op_bad_input_is_refused_by_the_kernel(case, dygraph):
    _, change, pattern = case
    t, flat, a = _flat_base(centered=True)
    a["offsets"] = [0, 16, 32]
    change(t, flat, a)
    tensors = _tensors({"Param": t["Param"], "Grad": t["Grad"], **flat})
    snap = [(x, x.numpy().tobytes()) for v in tensors.values() for x in (v if isinstance(v, list) else [v])]
    with pytest.raises(ValueError, match=pattern):
        _invoke("rmsprop_centered_multi", tensors, a, checked=False, dygraph=dygraph, flat=True)
    for i, (x, before) in enumerate(snap):
        assert x.numpy().tobytes() == before, f"tensor #{i} was modified"
