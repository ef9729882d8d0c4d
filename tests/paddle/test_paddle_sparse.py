"""Sparse (SelectedRows) gradients, from ``Embedding(sparse=True)``: parity with paddle.optimizer.RMSProp.

Paddle's sparse kernel sums duplicate rows and reads absent rows as a zero gradient, so every row's state
decays and every row moves by its moment; ours densifies the gradient and runs the dense op. The batches
below repeat ids within a batch, leave some rows untouched for a few steps (they keep moving by their
decaying moment) and never touch the last rows at all.
"""

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import paddle_helpers as H
from rmsprop_ops.paddle import RMSProp

pytestmark = pytest.mark.paddle

STEPS = 12
VOCAB, DIM, BATCH, SEQ = 16, 4, 3, 5
UNTOUCHED = range(12, VOCAB)  # never in a batch
FP32 = dict(rtol=1e-6, atol=1e-6)
RULES = {"plain": dict(), "momentum": dict(momentum=0.9), "centered": dict(centered=True, momentum=0.9),
         "centered-nomomentum": dict(centered=True)}


def _ids(step):
    rs = np.random.RandomState(step)
    ids = rs.randint(0, 6 if step % 3 else 12, size=(BATCH, SEQ)).astype("int64")  # rows 6..11 now and then
    ids[0, :3] = ids[1, 0]  # the same id several times in one batch
    return ids


def _targets(step):
    return np.random.RandomState(1000 + step).randn(BATCH, 1).astype("float32")


def _init():
    rs = np.random.RandomState(7)
    return [rs.uniform(-0.5, 0.5, s).astype("float32") for s in ((VOCAB, DIM), (DIM, 1), (1,))]


def _layers(sparse=True):
    emb = paddle.nn.Embedding(VOCAB, DIM, sparse=sparse)
    lin = paddle.nn.Linear(DIM, 1)
    params = [emb.weight, lin.weight, lin.bias]
    return emb, lin, params


def _loss(emb, lin, ids, y):
    return ((lin(emb(ids).sum(axis=1)) - y) ** 2).mean()


def _clip(kind):
    if kind == "asymmetric_value":
        return paddle.nn.ClipGradByValue(max=0.1, min=-0.3)
    return H.make_clip(kind)


def run_dynamic(opt_cls, wd=None, clip=None, sparse=True, groups=False, scaler=False, **kw):
    paddle.disable_static()
    emb, lin, params = _layers(sparse)
    for p, v in zip(params, _init()):
        p.set_value(v)
    parameters = params
    if groups:
        parameters = [{"params": [emb.weight], "learning_rate": 0.5, "rho": 0.8, "momentum": 0.3,
                       "weight_decay": paddle.regularizer.L2Decay(0.03)},
                      {"params": params[1:]}]
    opt = opt_cls(learning_rate=0.01, parameters=parameters, weight_decay=wd, grad_clip=_clip(clip), **kw)
    history = []
    amp = paddle.amp.GradScaler(init_loss_scaling=1024.0) if scaler else None
    for step in range(STEPS):
        loss = _loss(emb, lin, paddle.to_tensor(_ids(step)), paddle.to_tensor(_targets(step)))
        (amp.scale(loss) if scaler else loss).backward()
        assert emb.weight.grad.is_selected_rows() == sparse
        if scaler:
            amp.step(opt)
            amp.update()
        else:
            opt.step()
        opt.clear_grad()
        history.append([p.numpy().copy() for p in params])
    if isinstance(opt, RMSProp):
        opt.catch_up()  # rows skipped by the row-sparse update take their pending decay (docs/sparse.md)
    return history, [a.numpy().copy() for a in H.accumulators(opt, params)]


def run_static(make_opt):
    """The same model as a PIR static program. Paddle's PIR backward gives Embedding(sparse=True) the dense
    pd_op.embedding_grad, so both optimizers see a dense gradient here."""
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            ids = paddle.static.data("ids", [BATCH, SEQ], "int64")
            y = paddle.static.data("y", [BATCH, 1], "float32")
            emb, lin, params = _layers()
            loss = _loss(emb, lin, ids, y)
            opt = make_opt()
            opt.minimize(loss)
        names = [p.name for p in params]
        acc_names = [a.name for a in H.accumulators(opt, params)]
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        history = []
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            for n, v in zip(names, _init()):
                scope.var(n).get_tensor().set(v, paddle.CPUPlace())
            for step in range(STEPS):
                exe.run(main, feed={"ids": _ids(step), "y": _targets(step)}, fetch_list=[loss])
                history.append([np.array(scope.var(n).get_tensor()).copy() for n in names])
            accs = [np.array(scope.var(n).get_tensor()).copy() for n in acc_names]
        return history, accs, [op.name() for op in main.global_block().ops]
    finally:
        paddle.disable_static()


def _assert_same(ours, theirs):
    (h, a), (h_ref, a_ref) = ours, theirs
    assert len(h) == len(h_ref) == STEPS
    for step, (x, y) in enumerate(zip(h, h_ref)):
        for i, (u, v) in enumerate(zip(x, y)):
            np.testing.assert_allclose(u, v, err_msg=f"param {i} after step {step + 1}", **FP32)
    assert len(a) == len(a_ref) == 9
    for i, (u, v) in enumerate(zip(a, a_ref)):
        np.testing.assert_allclose(u, v, err_msg=f"accumulator {i} ({H.ACCS[i % 3]})", **FP32)


def test_batches_repeat_ids_and_leave_rows_untouched():
    """The set-up the parity tests rely on."""
    seen = np.unique(np.concatenate([_ids(s).ravel() for s in range(STEPS)]))
    assert not set(UNTOUCHED) & set(seen)
    assert all(len(np.unique(_ids(s))) < _ids(s).size for s in range(STEPS))
    assert any(not set(range(6, 12)) & set(_ids(s).ravel()) for s in range(1, STEPS))


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("rule", RULES)
def test_dynamic_sparse_parity(rule, fused):
    ref = run_dynamic(paddle.optimizer.RMSProp, **RULES[rule])
    ours = run_dynamic(RMSProp, fused=fused, **RULES[rule])
    _assert_same(ours, ref)
    h, accs = ours
    w0, w = _init()[0], h[-1][0]
    assert np.all(w[list(UNTOUCHED)] == w0[list(UNTOUCHED)])  # zero gradient and zero moment throughout
    ms = accs[1]
    assert np.all(ms[:12] > 0) and np.all(ms[list(UNTOUCHED)] == 0)
    if RULES[rule].get("momentum"):
        # Rows missing from the last batches still move, by their decaying moment (Paddle's sparse rule).
        last = _ids(STEPS - 1).ravel()
        idle = [r for r in range(6, 12) if r not in last]
        assert idle and np.all(h[-1][0][idle] != h[-2][0][idle])


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("wd,clip", [("l2", None), ("l1", None), ("float", None), (None, "norm"),
                                     (None, "global_norm"), ("float", "global_norm")])
def test_dynamic_sparse_parity_with_decay_and_clip(wd, clip, fused):
    """Paddle clips and regularizes the sparse gradient itself (its clip ops merge rows first; add_n with
    the decay term makes it dense); ours gets the same gradient."""
    kw = dict(wd=H.make_weight_decay(wd)[0], clip=clip, momentum=0.9, centered=True)
    ref = run_dynamic(paddle.optimizer.RMSProp, **kw)
    ours = run_dynamic(RMSProp, fused=fused, **kw)
    _assert_same(ours, ref)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("clip", ["value", "asymmetric_value"])
def test_dynamic_sparse_value_clip_matches_the_dense_gradient(clip, fused):
    """Paddle's ClipGradByValue fails on a dygraph SelectedRows gradient (paddle.clip reads a bad shape and
    raises, with a message that varies from run to run, so it is not run here), so the reference is Paddle's
    RMSProp on Embedding(sparse=False): Paddle's sparse clip kernel merges the rows before clipping, which
    is clipping the dense gradient."""
    kw = dict(clip=clip, momentum=0.9, centered=True, wd=0.02)
    ref = run_dynamic(paddle.optimizer.RMSProp, sparse=False, **kw)
    ours = run_dynamic(RMSProp, fused=fused, **kw)
    _assert_same(ours, ref)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("clip", [None, "global_norm"])
def test_dynamic_sparse_parity_with_parameter_groups(clip, fused):
    kw = dict(groups=True, clip=clip, centered=True, momentum=0.9)
    _assert_same(run_dynamic(RMSProp, fused=fused, **kw), run_dynamic(paddle.optimizer.RMSProp, **kw))


@pytest.mark.parametrize("fused", [False, True])
def test_dynamic_sparse_parity_under_grad_scaler(fused):
    """GradScaler unscales the SelectedRows gradient before the step; ours then densifies it."""
    kw = dict(scaler=True, centered=True, momentum=0.9)
    _assert_same(run_dynamic(RMSProp, fused=fused, **kw), run_dynamic(paddle.optimizer.RMSProp, **kw))


def test_dynamic_sparse_gradient_is_left_as_it_was():
    """The dense copy is the optimizer's own: the parameter's SelectedRows gradient is not replaced."""
    emb, lin, params = _layers()
    opt = RMSProp(0.01, parameters=params, fused=True)
    _loss(emb, lin, paddle.to_tensor(_ids(0)), paddle.to_tensor(_targets(0))).backward()
    rows, values = list(emb.weight.grad.rows()), emb.weight.grad._get_tensor_from_selected_rows().numpy().copy()
    opt.step()
    g = emb.weight.grad
    assert g.is_selected_rows() and list(g.rows()) == rows
    np.testing.assert_array_equal(g._get_tensor_from_selected_rows().numpy(), values)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("rule", ["plain", "centered"])
def test_static_sparse_embedding_parity(rule, fused):
    h_ref, a_ref, _ = run_static(lambda: paddle.optimizer.RMSProp(0.01, **RULES[rule]))
    h, a, ops = run_static(lambda: RMSProp(0.01, fused=fused, **RULES[rule]))
    _assert_same((h, a), (h_ref, a_ref))
    assert "pd_op.embedding_grad" in ops and not [o for o in ops if o == "pd_op.rmsprop_"]
