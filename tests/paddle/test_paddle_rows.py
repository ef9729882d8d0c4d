"""Row-sparse updates of SelectedRows gradients in dynamic mode, against ``paddle.optimizer.RMSProp``.

A table of 300 rows, a few rows looked up per step (repeats included), some rows cold for most of the run:
without momentum the rows update (sparse_mode "auto" -> "exact") gives Paddle's parameters at every step
within 2e-6 of the table's scale, with momentum ("auto" -> "dense") Paddle's bits. Checkpoints catch the
rows up first, so they load into either optimizer and a restored run continues bit for bit.

Every batch repeats a row: Paddle 3.3.1's sparse kernel binary-searches the merged rows, which its merge
leaves unsorted when no row repeats, and then skips rows of the gradient
(:func:`test_paddles_sparse_kernel_skips_rows_of_an_unmerged_gradient`)."""

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from rmsprop_ops.paddle import RMSProp

VOCAB, DIM, STEPS = 300, 8, 80
COLD = [297, 298, 299]  # looked up at the first step and near the end only
BOUND = 2e-6


def _ids(step):
    rs = np.random.RandomState(step)
    ids = rs.randint(0, VOCAB - len(COLD), size=int(rs.randint(2, 12)))
    ids[1 : 1 + len(ids) // 3] = ids[0]  # a repeated row
    if step in (0, STEPS - 3):
        ids = np.concatenate([ids, COLD])
    return ids.astype("int64")


def _weights(step, n):
    return np.random.RandomState(1000 + step).randn(n, DIM).astype("float32")


def _table():
    return np.random.RandomState(7).uniform(-0.5, 0.5, (VOCAB, DIM)).astype("float32")


def run(opt_cls, steps=range(STEPS), emb=None, opt=None, sparse=True, **kw):
    """Params after each step; the gradient of row r is the sum of the weights of its lookups."""
    if emb is None:
        emb = paddle.nn.Embedding(VOCAB, DIM, sparse=sparse)
        emb.weight.set_value(_table())
    opt = opt or opt_cls(learning_rate=0.01, parameters=[emb.weight], **kw)
    history = []
    for step in steps:
        ids = _ids(step)
        loss = (emb(paddle.to_tensor(ids)) * paddle.to_tensor(_weights(step, len(ids)))).sum()
        loss.backward()
        assert emb.weight.grad.is_selected_rows() == emb._sparse
        opt.step()
        opt.clear_grad()
        history.append(emb.weight.numpy().copy())
    return emb, opt, history


def _accs(opt, param):
    return {k: opt._get_accumulator_master(k, param).numpy().copy() for k in ("mean_square", "momentum", "mean_grad")}


@pytest.mark.parametrize("rule", [dict(), dict(centered=True), dict(rho=0.99, epsilon=1e-8)],
                         ids=["plain", "centered", "rho0.99"])
def test_exact_mode_follows_paddle_at_every_step(rule):
    emb, opt, ours = run(RMSProp, **rule)
    ref_emb, ref_opt, ref = run(paddle.optimizer.RMSProp, **rule)
    scale = np.abs(_table()).max()
    for step, (a, b) in enumerate(zip(ours, ref)):
        err = np.abs(a - b)
        assert np.all(err <= BOUND * np.maximum(np.abs(b), scale)), f"step {step + 1}: {err.max()}"
    counters = opt._sparse.counters[emb.weight.name]
    assert counters.mode == "exact" and counters.step.numpy().tolist() == [STEPS]
    assert STEPS - counters.last_step.numpy().min() > 50  # the cold rows waited that long
    opt.catch_up()
    mine, theirs = _accs(opt, emb.weight), _accs(ref_opt, ref_emb.weight)
    for k in mine:
        np.testing.assert_allclose(mine[k], theirs[k], rtol=2e-5, atol=1e-6 * max(np.abs(theirs[k]).max(), 1e-30),
                                   err_msg=k)


@pytest.mark.parametrize("rule", [dict(momentum=0.9), dict(momentum=0.9, centered=True), dict(centered=True)],
                         ids=["momentum", "centered-momentum", "forced-dense"])
def test_dense_mode_gives_paddles_bits(rule):
    """Momentum leaves no closed form: every row takes every step, as in Paddle's sparse kernel."""
    kw = dict(rule, sparse_mode="dense") if "momentum" not in rule else rule
    emb, opt, ours = run(RMSProp, **kw)
    _, _, ref = run(paddle.optimizer.RMSProp, **rule)
    for step, (a, b) in enumerate(zip(ours, ref)):
        np.testing.assert_array_equal(a, b, err_msg=f"step {step + 1}")
    assert emb.weight.name not in opt._sparse.counters  # dense mode keeps no counters


def test_lazy_mode_lags_then_catches_up():
    emb, opt, ours = run(RMSProp, momentum=0.9, sparse_mode="lazy")
    ref_emb, _, ref = run(paddle.optimizer.RMSProp, momentum=0.9)
    assert np.abs(ours[-1] - ref[-1]).max() > 1e-4  # rows not stepped lately have not made their moves
    opt.catch_up()
    scale = np.abs(_table()).max()
    np.testing.assert_allclose(emb.weight.numpy(), ref_emb.weight.numpy(), rtol=0, atol=BOUND * scale)


@pytest.mark.parametrize("rule", [dict(), dict(centered=True), dict(momentum=0.9, sparse_mode="lazy")],
                         ids=["exact", "exact-centered", "lazy"])
def test_checkpoints_catch_up_and_a_restored_run_continues_bit_for_bit(rule):
    half = STEPS // 2
    emb, opt, _ = run(RMSProp, steps=range(half), **rule)
    state = {k: v.clone() for k, v in opt.state_dict().items()}  # catches every row up, in place
    table = emb.weight.numpy().copy()
    assert all(c.step.numpy().tolist() == [half] and np.all(c.last_step.numpy() == half)
               for c in opt._sparse.counters.values())
    _, _, continued = run(None, steps=range(half, STEPS), emb=emb, opt=opt)

    emb2 = paddle.nn.Embedding(VOCAB, DIM, sparse=True)
    emb2.weight.set_value(table)
    opt2 = RMSProp(learning_rate=0.01, parameters=[emb2.weight], **rule)
    opt2.set_state_dict({k.replace(emb.weight.name, emb2.weight.name): v for k, v in state.items()})
    _, _, restored = run(None, steps=range(half, STEPS), emb=emb2, opt=opt2)
    for step, (a, b) in enumerate(zip(restored, continued)):
        np.testing.assert_array_equal(a, b, err_msg=f"step {half + step + 1}")


def test_a_checkpoint_loads_into_paddles_rmsprop():
    """The caught-up accumulators are Paddle's state: Paddle's optimizer continues from them."""
    half = STEPS // 2
    emb, opt, _ = run(RMSProp, steps=range(half))
    state = {k: v.clone() for k, v in opt.state_dict().items()}
    assert not [k for k in state if "last_step" in k or "rows" in k]  # Paddle's keys only
    ref_emb, ref_opt, _ = run(paddle.optimizer.RMSProp, steps=range(half))
    emb3 = paddle.nn.Embedding(VOCAB, DIM, sparse=True)
    emb3.weight.set_value(emb.weight.numpy())
    theirs = paddle.optimizer.RMSProp(learning_rate=0.01, parameters=[emb3.weight])
    theirs.set_state_dict({k.replace(emb.weight.name, emb3.weight.name): v for k, v in state.items()})
    _, _, a = run(None, steps=range(half, STEPS), emb=emb3, opt=theirs)
    _, _, b = run(None, steps=range(half, STEPS), emb=ref_emb, opt=ref_opt)
    scale = np.abs(_table()).max()
    np.testing.assert_allclose(a[-1], b[-1], rtol=0, atol=BOUND * scale)


def test_an_impossible_sparse_mode_is_refused_before_anything_is_written():
    emb = paddle.nn.Embedding(VOCAB, DIM, sparse=True)
    lin = paddle.nn.Linear(DIM, 1)
    opt = RMSProp(learning_rate=0.01, parameters=[emb.weight] + lin.parameters(), momentum=0.9, sparse_mode="exact")
    before = [p.numpy().copy() for p in [emb.weight] + lin.parameters()]
    lin(emb(paddle.to_tensor(np.array([1, 2])))).sum().backward()
    with pytest.raises(ValueError, match=rf"{emb.weight.name}: sparse_mode: 'exact' cannot follow momentum=0.9"):
        opt.step()
    for p, b in zip([emb.weight] + lin.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), b)
    with pytest.raises(ValueError, match="sparse_mode: expected one of"):
        RMSProp(learning_rate=0.01, parameters=[emb.weight], sparse_mode="sparse")


def test_every_state_layout_takes_the_rows_update():
    """With flat state each parameter's accumulators are views of its slices, which the rows update
    writes like tensors of their own: the same bits in every layout."""
    last = []
    for flat in (None, True, False):
        emb, opt, ours = run(RMSProp, steps=range(20), flat_state=flat)
        assert opt._sparse.counters[emb.weight.name], flat
        opt.catch_up()
        last.append((ours[-1], _accs(opt, emb.weight)))
    for weights, accs in last[1:]:
        np.testing.assert_array_equal(weights, last[0][0])
        for k, v in accs.items():
            np.testing.assert_array_equal(v, last[0][1][k], err_msg=k)


def test_weight_decay_and_clip_weights_fall_back_to_every_row():
    for kw in (dict(weight_decay=0.01), dict(clip_weights=0.4)):
        emb, opt, ours = run(RMSProp, steps=range(10), **kw)
        assert not opt._sparse.counters, kw
    _, _, ref = run(paddle.optimizer.RMSProp, steps=range(10), weight_decay=0.01)
    _, _, ours = run(RMSProp, steps=range(10), weight_decay=0.01)
    np.testing.assert_allclose(ours[-1], ref[-1], rtol=1e-6, atol=1e-6)


def test_a_skipped_step_leaves_rows_and_counters():
    """GradScaler's found-inf flag reaches the rows update: nothing moves, the step counter included.
    GradScaler is disabled on CPU, so its protocol is driven directly (as in test_paddle_optimizer.py): the
    flag tensor goes into the optimizer's 'found_inf' auxiliary variable before step()."""
    emb, opt, _ = run(RMSProp, steps=range(3))
    c = opt._sparse.counters[emb.weight.name]
    before = emb.weight.numpy().copy(), c.last_step.numpy().copy(), c.step.numpy().copy(), _accs(opt, emb.weight)
    for flag in (True, False):
        emb(paddle.to_tensor(np.array([1, 2, 2, 3]))).sum().backward()
        opt._set_auxiliary_var("found_inf", paddle.to_tensor(flag))
        opt.step()
        opt.clear_grad()
        if flag:
            np.testing.assert_array_equal(emb.weight.numpy(), before[0])
            np.testing.assert_array_equal(c.last_step.numpy(), before[1])
            np.testing.assert_array_equal(c.step.numpy(), before[2])
            for k, v in _accs(opt, emb.weight).items():
                np.testing.assert_array_equal(v, before[3][k], err_msg=k)
    assert c.step.numpy().tolist() == [before[2][0] + 1]  # the step that was not skipped
    assert c.last_step.numpy()[[1, 2, 3]].tolist() == [before[2][0] + 1] * 3


def test_paddles_sparse_kernel_skips_rows_of_an_unmerged_gradient():
    """Four distinct rows, none repeated: Paddle's sparse RMSProp moves one of them (its merge keeps the
    lookup order, its kernel binary-searches it); Paddle's dense RMSProp and ours move all four alike."""
    ids = np.array([206, 189, 118, 73], np.int64)

    def moved(opt_cls, sparse):
        emb = paddle.nn.Embedding(VOCAB, 2, sparse=sparse)
        emb.weight.set_value(np.zeros((VOCAB, 2), np.float32))
        opt = opt_cls(learning_rate=0.01, parameters=[emb.weight])
        emb(paddle.to_tensor(ids)).sum().backward()
        opt.step()
        return emb.weight.numpy()

    ours, dense = moved(RMSProp, True), moved(paddle.optimizer.RMSProp, False)
    np.testing.assert_allclose(ours, dense, rtol=1e-6)  # Paddle's dense kernel rounds a few ulps apart
    assert sorted(np.nonzero(dense[:, 0])[0].tolist()) == sorted(ids.tolist())
    theirs = moved(paddle.optimizer.RMSProp, True)
    assert not np.array_equal(theirs, dense)  # Paddle 3.3.1; update docs/sparse.md when this changes
