"""rmsprop_ops.paddle.RMSProp beyond parity: validation, checkpoints, LR API, AMP, multi-precision."""

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import paddle_helpers as H
from rmsprop_ops.paddle import RMSProp

pytestmark = pytest.mark.paddle


@pytest.fixture(autouse=True)
def dynamic_mode():
    paddle.disable_static()


def _params():
    lin = paddle.nn.Linear(3, 2)
    return lin, lin.parameters()


@pytest.mark.parametrize("kw,match", [
    (dict(learning_rate=-0.1), "learning_rate"),
    (dict(learning_rate=None), "learning_rate"),
    (dict(rho=-0.1), "rho"),
    (dict(rho=1.5), "rho"),
    (dict(rho=None), "rho"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(epsilon=-1e-8), "epsilon"),
    (dict(epsilon=float("nan")), "epsilon"),
    (dict(momentum=-0.5), "momentum"),
    (dict(momentum=float("inf")), "momentum"),
    (dict(weight_decay=-0.01), "weight_decay"),
    (dict(weight_decay=paddle.regularizer.L2Decay(-1.0)), "weight_decay"),
    (dict(clip_weights=float("nan")), "clip_weights"),
])
def test_bad_hyper_parameters_rejected_at_construction(kw, match):
    _, params = _params()
    args = dict(learning_rate=0.01, parameters=params)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        RMSProp(**args)


def test_bad_group_hyper_parameters_rejected():
    _, params = _params()
    with pytest.raises(ValueError, match=r"parameters\[0\].*rho"):
        RMSProp(0.01, parameters=[{"params": params, "rho": 2.0}])
    with pytest.raises(ValueError, match=r"parameters\[0\].learning_rate"):
        RMSProp(0.01, parameters=[{"params": params, "learning_rate": -1.0}])


@pytest.mark.parametrize("kw,match", [(dict(centered="yes"), "centered"), (dict(fused=1), "fused"),
                                      (dict(learning_rate="0.1"), "learning_rate")])
def test_wrong_types_rejected(kw, match):
    _, params = _params()
    args = dict(learning_rate=0.01, parameters=params)
    args.update(kw)
    with pytest.raises(TypeError, match=match):
        RMSProp(**args)


def test_defaults_match_paddle_signature():
    import inspect

    ours = inspect.signature(RMSProp).parameters
    theirs = inspect.signature(paddle.optimizer.RMSProp).parameters
    for name, p in theirs.items():
        assert list(ours).index(name) == list(theirs).index(name)
        assert ours[name].default == p.default


def _train(layer, opt, batches, sched=None):
    for x, y in batches:
        loss = ((layer(paddle.to_tensor(x)) - paddle.to_tensor(y)) ** 2).mean()
        loss.backward()
        opt.step()
        opt.clear_grad()
        if sched is not None:
            sched.step()


def _model():
    layer = paddle.nn.Linear(H.IN, H.OUT)
    for p, v in zip(layer.parameters(), H.init_values([p.shape for p in layer.parameters()])):
        p.set_value(v)
    return layer


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("before_first_step", [False, True])
def test_state_dict_restores_exactly_into_a_new_optimizer(fused, before_first_step, tmp_path):
    # Through paddle.save / paddle.load files, as a user checkpoints: .pdparams and .pdopt.
    data = H.batches(12)
    a = _model()
    sched_a = paddle.optimizer.lr.StepDecay(0.02, step_size=3, gamma=0.5)
    opt_a = RMSProp(sched_a, parameters=a.parameters(), centered=True, momentum=0.9, fused=fused)
    _train(a, opt_a, data[:6], sched_a)
    paddle.save(opt_a.state_dict(), str(tmp_path / "ckpt.pdopt"))
    paddle.save(a.state_dict(), str(tmp_path / "ckpt.pdparams"))
    state = paddle.load(str(tmp_path / "ckpt.pdopt"))
    weights = {k: v.numpy() for k, v in paddle.load(str(tmp_path / "ckpt.pdparams")).items()}

    b = _model()
    b.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    sched_b = paddle.optimizer.lr.StepDecay(0.02, step_size=3, gamma=0.5)  # its epoch comes from the checkpoint
    opt_b = RMSProp(sched_b, parameters=b.parameters(), centered=True, momentum=0.9, fused=fused)
    if not before_first_step:
        _train(b, opt_b, data[:1], sched_b)  # creates accumulators under new names, then overwritten
        b.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    opt_b.set_state_dict(state)
    assert opt_b.get_lr() == opt_a.get_lr()
    _train(a, opt_a, data[6:], sched_a)
    _train(b, opt_b, data[6:], sched_b)
    for x, y in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert len(sa) == len(sb)
    for (ka, va), (kb, vb) in zip(sorted(sa.items()), sorted(sb.items())):
        if isinstance(va, paddle.Tensor):
            np.testing.assert_array_equal(va.numpy(), vb.numpy())


def test_state_dict_interoperates_with_paddle_rmsprop():
    data = H.batches(8)
    a, b = _model(), _model()
    ref = paddle.optimizer.RMSProp(0.02, parameters=a.parameters(), momentum=0.5)
    _train(a, ref, data[:4])
    ours = RMSProp(0.02, parameters=b.parameters(), momentum=0.5)
    b.set_state_dict(a.state_dict())
    ours.set_state_dict(ref.state_dict())
    _train(a, ref, data[4:])
    _train(b, ours, data[4:])
    for x, y in zip(a.parameters(), b.parameters()):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-6, atol=1e-6)


def test_set_lr_get_lr_and_scheduler():
    layer = _model()
    opt = RMSProp(0.1, parameters=layer.parameters())
    assert opt.get_lr() == pytest.approx(0.1)
    opt.set_lr(0.05)
    assert opt.get_lr() == pytest.approx(0.05)
    sched = paddle.optimizer.lr.ExponentialDecay(0.2, gamma=0.5)
    opt.set_lr_scheduler(sched)
    sched.step()
    assert opt.get_lr() == pytest.approx(0.1)
    ref_layer = _model()
    ref = paddle.optimizer.RMSProp(0.1, parameters=ref_layer.parameters())
    ref.set_lr_scheduler(paddle.optimizer.lr.ExponentialDecay(0.2, gamma=0.5))
    ref._learning_rate.step()
    data = H.batches(3)
    _train(layer, opt, data)
    _train(ref_layer, ref, data)
    for x, y in zip(layer.parameters(), ref_layer.parameters()):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-6, atol=1e-6)


def test_minimize_in_dynamic_mode():
    layer, ref_layer = _model(), _model()
    opt = RMSProp(0.02, parameters=layer.parameters())
    ref = paddle.optimizer.RMSProp(0.02, parameters=ref_layer.parameters())
    for x, y in H.batches(5):
        for lyr, o in ((layer, opt), (ref_layer, ref)):
            loss = ((lyr(paddle.to_tensor(x)) - paddle.to_tensor(y)) ** 2).mean()
            loss.backward()
            o.minimize(loss)
            o.clear_grad()
    for x, y in zip(layer.parameters(), ref_layer.parameters()):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-6, atol=1e-6)


def _count_op_calls(monkeypatch):
    from rmsprop_ops.paddle import load_ops

    raw, calls = load_ops().raw, {}
    for name in [n for n in dir(load_ops().raw) if n.startswith("rmsprop_ops_")]:
        def counted(*args, _f=getattr(raw, name), _n=name):
            calls[_n] = calls.get(_n, 0) + 1
            return _f(*args)
        monkeypatch.setattr(raw, name, counted)
    return calls


@pytest.mark.parametrize("flat", [None, False])
@pytest.mark.parametrize("fused", [False, True])
def test_dygraph_steps_one_call_per_group_whatever_fused_says(fused, flat, monkeypatch):
    """One call per step; flat state by default in dynamic mode."""
    layer = _model()
    opt = RMSProp(0.02, parameters=layer.parameters(), fused=fused, momentum=0.5, flat_state=flat)
    calls = _count_op_calls(monkeypatch)
    for x, y in H.batches(3):
        ((layer(paddle.to_tensor(x)) - paddle.to_tensor(y)) ** 2).mean().backward()
        opt.step()
        opt.clear_grad()
    assert calls == {f"rmsprop_ops_rmsprop_multi{'' if flat is False else '_flat'}_dygraph": 3}


def test_updates_run_when_finish_update_is_replaced_on_the_instance():
    """Paddle's auto-parallel fully_shard replaces optimizer._finish_update on the instance without
    calling it; the fused rows, which it would have run, still run (and exactly once)."""
    import types

    layer, ref_layer = _model(), _model()
    opt = RMSProp(0.02, parameters=layer.parameters(), momentum=0.5)
    opt._finish_update = types.MethodType(lambda self, block, parameters_and_grads: None, opt)
    ref = RMSProp(0.02, parameters=ref_layer.parameters(), momentum=0.5)
    for x, y in H.batches(3):
        for lyr, o in ((layer, opt), (ref_layer, ref)):
            ((lyr(paddle.to_tensor(x)) - paddle.to_tensor(y)) ** 2).mean().backward()
            o.step()
            o.clear_grad()
    for a, b in zip(layer.parameters(), ref_layer.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(layer.weight.numpy(), _model().weight.numpy())


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("fused", [False, True])
def test_dygraph_tensor_learning_rate_attr_gets_its_own_call_like_paddle(fused, centered, flat, monkeypatch):
    """A parameter whose ParamAttr learning rate is a Tensor (Paddle then uses that Tensor as the
    parameter's learning rate) cannot join the fused call's float scales: it gets its own op, whose
    learning rate Paddle computes as for paddle.optimizer.RMSProp; the other parameter stays fused."""
    layer, ref_layer = _model(), _model()
    for lyr in (layer, ref_layer):
        lyr.weight.optimize_attr["learning_rate"] = paddle.to_tensor(0.005)
    kw = dict(momentum=0.5, centered=centered)
    opt = RMSProp(0.02, parameters=layer.parameters(), fused=fused, flat_state=flat, **kw)
    ref = paddle.optimizer.RMSProp(0.02, parameters=ref_layer.parameters(), **kw)
    calls = _count_op_calls(monkeypatch)
    for x, y in H.batches(3):
        for lyr, o in ((layer, opt), (ref_layer, ref)):
            ((lyr(paddle.to_tensor(x)) - paddle.to_tensor(y)) ** 2).mean().backward()
            o.step()
            o.clear_grad()
    kind = "_centered" if centered else ""
    if flat:  # flat state has the multi-tensor op only: the weight's own call is a list of one
        assert calls == {f"rmsprop_ops_rmsprop{kind}_multi_flat_dygraph": 6}
    else:
        assert calls == {f"rmsprop_ops_rmsprop{kind}_dygraph": 3, f"rmsprop_ops_rmsprop{kind}_multi_dygraph": 3}
    for a, b in zip(layer.parameters(), ref_layer.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    for a, b in zip(H.accumulators(opt, layer.parameters()), H.accumulators(ref, ref_layer.parameters())):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("fused", [False, True])
def test_dygraph_step_declares_only_the_params_in_place(fused, centered):
    """In dygraph the optimizer calls the ops' twins that declare only the parameters in place (Paddle's
    eager runner costs ~2.5 us per in-place output): each step bumps every parameter's inplace version and
    no accumulator's, and the accumulators still move (their values are checked against Paddle's RMSProp
    by the parity tests)."""
    layer = _model()
    opt = RMSProp(0.02, parameters=layer.parameters(), fused=fused, momentum=0.5, centered=centered)
    steps = 0
    for x, y in H.batches(3):
        ((layer(paddle.to_tensor(x)) - paddle.to_tensor(y)) ** 2).mean().backward()
        if steps == 0:
            opt.step()  # creates the accumulators
            versions = [p.inplace_version for p in layer.parameters()]
            accs = H.accumulators(opt, layer.parameters())
            acc_versions = [a.inplace_version for a in accs]
            acc_values = [a.numpy().copy() for a in accs]
        else:
            opt.step()
        opt.clear_grad()
        steps += 1
    assert [p.inplace_version for p in layer.parameters()] == [v + steps - 1 for v in versions]
    assert [a.inplace_version for a in accs] == acc_versions
    moved = [not np.array_equal(a.numpy(), v) for a, v in zip(accs, acc_values)]
    # mean_grad stays put unless centered
    assert moved == [True, True, centered] * len(layer.parameters())


@pytest.mark.parametrize("fused", [False, True])
def test_found_inf_skips_the_step_inside_the_op(fused):
    """GradScaler's protocol (it is disabled on CPU, so drive it directly): the scaler sets the optimizer's
    'found_inf' auxiliary variable to its flag tensor, calls step(), and reads the variable back."""
    layer, ref_layer = _model(), _model()
    opt = RMSProp(0.02, parameters=layer.parameters(), momentum=0.9, fused=fused)
    ref = paddle.optimizer.RMSProp(0.02, parameters=ref_layer.parameters(), momentum=0.9)
    x, y = H.batches(1)[0]
    for lyr, o in ((layer, opt), (ref_layer, ref)):
        ((lyr(paddle.to_tensor(x)) - paddle.to_tensor(y)) ** 2).mean().backward()
        o._set_auxiliary_var("found_inf", paddle.to_tensor(False))
        o.step()
        o.clear_grad()
    for p, q in zip(layer.parameters(), ref_layer.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6, atol=1e-6)
    before = [p.numpy().copy() for p in layer.parameters()]
    accs = [a.numpy().copy() for a in H.accumulators(opt, layer.parameters())]
    (layer(paddle.to_tensor(x)) * float("inf")).mean().backward()  # an overflowed step
    flag = paddle.to_tensor(True)
    opt._set_auxiliary_var("found_inf", flag)
    opt.step()
    opt.clear_grad()
    assert opt._get_auxiliary_var("found_inf") is flag  # handed back to the scaler unchanged
    for p, b in zip(layer.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), b)
    for a, b in zip(H.accumulators(opt, layer.parameters()), accs):
        np.testing.assert_array_equal(a.numpy(), b)


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_multi_precision_keeps_float32_masters(fused, dtype):
    layer = _model()
    ref_w = [p.numpy().astype("float64") for p in layer.parameters()]
    layer.to(dtype=dtype)
    opt = RMSProp(0.02, parameters=layer.parameters(), multi_precision=True, fused=fused, momentum=0.5)
    data = H.batches(5)
    w, b = layer.parameters()
    for x, y in data:
        # Paddle's CPU matmul has no float16/bfloat16 kernel: compute in float32 from the low-precision params.
        out = paddle.to_tensor(x) @ w.astype("float32") + b.astype("float32")
        loss = ((out - paddle.to_tensor(y)) ** 2).mean()
        loss.backward()
        opt.step()
        opt.clear_grad()
    masters = opt._master_weights
    assert len(masters) == 2
    for p in layer.parameters():
        m = masters[p.name]
        assert m.dtype == paddle.float32
        # the low-precision param is the rounded master
        np.testing.assert_array_equal(p.numpy().astype("float32") if dtype == "float16" else
                                      p.astype("float32").numpy(), m.astype(p.dtype).astype("float32").numpy())
        assert H.accumulators(opt, [m])[0].dtype == paddle.float32
    assert any(not np.allclose(m.numpy(), w) for m, w in zip(masters.values(), ref_w))


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_parameters_without_masters_keep_float32_state(dtype, flat):
    """Without multi_precision a 16-bit parameter is updated in place from float32 math and float32 state
    (the core's math type; Paddle's own RMSProp has no CPU kernel for them). The first step equals the
    multi_precision step bit for bit: the master starts as the parameter's value, and both round the
    float32 result once."""
    layers = [_model(), _model()]
    for lyr in layers:
        lyr.to(dtype=dtype)
    layers[1].set_state_dict(layers[0].state_dict())
    opts = [RMSProp(0.02, parameters=lyr.parameters(), momentum=0.5, centered=True, flat_state=flat,
                    multi_precision=mp) for lyr, mp in zip(layers, (False, True))]
    for step, (x, y) in enumerate(H.batches(4)):
        for lyr, opt in zip(layers, opts):
            w, b = lyr.parameters()
            out = paddle.to_tensor(x) @ w.astype("float32") + b.astype("float32")
            ((out - paddle.to_tensor(y)) ** 2).mean().backward()
            opt.step()
            opt.clear_grad()
        if step == 0:
            for p, q in zip(*(lyr.parameters() for lyr in layers)):
                np.testing.assert_array_equal(p.astype("float32").numpy(), q.astype("float32").numpy())
            for a, b in zip(*(H.accumulator_values(o, lyr.parameters()) for o, lyr in zip(opts, layers))):
                np.testing.assert_array_equal(a, b)
    assert all(a.dtype == paddle.float32 for a in H.accumulators(opts[0], layers[0].parameters()))
    # later steps differ only by the rounding the master weight avoids
    tol = 1e-2 if dtype == "bfloat16" else 2e-3
    for p, q in zip(*(lyr.parameters() for lyr in layers)):
        np.testing.assert_allclose(p.astype("float32").numpy(), q.astype("float32").numpy(), rtol=tol, atol=tol)


def test_other_regularizers_still_apply():
    class Half(paddle.regularizer.WeightDecayRegularizer):
        def __call__(self, param, grad, block):
            return param * 0.5

    layer, ref_layer = _model(), _model()
    opt = RMSProp(0.02, parameters=layer.parameters(), weight_decay=Half())
    ref = paddle.optimizer.RMSProp(0.02, parameters=ref_layer.parameters(), weight_decay=Half())
    data = H.batches(3)
    _train(layer, opt, data)
    _train(ref_layer, ref, data)
    for x, y in zip(layer.parameters(), ref_layer.parameters()):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-6, atol=1e-6)


def test_static_save_load_accumulators(tmp_path):
    """paddle.static.save / load round-trips our accumulators: a reloaded run continues identically."""
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", [H.BATCH, H.IN], "float32")
            y = paddle.static.data("y", [H.BATCH, H.OUT], "float32")
            lin = paddle.nn.Linear(H.IN, H.OUT)
            loss = ((lin(x) - y) ** 2).mean()
            opt = RMSProp(0.02, momentum=0.9, centered=True, fused=True)
            opt.minimize(loss)
        exe = paddle.static.Executor(paddle.CPUPlace())
        data = H.batches(6)
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            for bx, by in data[:3]:
                exe.run(main, feed={"x": bx, "y": by})
            paddle.static.save(main, str(tmp_path / "ckpt"))
            for bx, by in data[3:]:
                exe.run(main, feed={"x": bx, "y": by})
            want = {v.name: np.array(scope.var(v.name).get_tensor()).copy()
                    for v in H.accumulators(opt, lin.parameters())}
            want.update({p.name: np.array(scope.var(p.name).get_tensor()).copy() for p in lin.parameters()})
        scope2 = paddle.static.Scope()
        with paddle.static.scope_guard(scope2):
            exe.run(startup)
            paddle.static.load(main, str(tmp_path / "ckpt"))
            for bx, by in data[3:]:
                exe.run(main, feed={"x": bx, "y": by})
            for name, value in want.items():
                np.testing.assert_array_equal(np.array(scope2.var(name).get_tensor()), value, err_msg=name)
    finally:
        paddle.disable_static()


@pytest.mark.parametrize("fused", [False, True])
def test_static_found_inf_skips_the_step(fused):
    """paddle.static.amp's decorator hands its found-inf value to the optimizer as the 'found_inf'
    auxiliary variable before apply_gradients; the op skips the whole update when it is true."""
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", [H.BATCH, H.IN], "float32")
            y = paddle.static.data("y", [H.BATCH, H.OUT], "float32")
            found_inf = paddle.static.data("found_inf", [], "bool")
            lin = paddle.nn.Linear(H.IN, H.OUT)
            loss = ((lin(x) - y) ** 2).mean()
            opt = RMSProp(0.02, momentum=0.9, fused=fused)
            params_grads = opt.backward(loss)
            opt._set_auxiliary_var("found_inf", found_inf)
            opt.apply_gradients(params_grads)
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        names = [p.name for p in lin.parameters()] + [a.name for a in H.accumulators(opt, lin.parameters())]
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            read = lambda: [np.array(scope.var(n).get_tensor()).copy() for n in names]
            (bx, by), = H.batches(1)
            before = read()
            exe.run(main, feed={"x": bx, "y": by, "found_inf": np.array(True)})
            for a, b in zip(read(), before):
                np.testing.assert_array_equal(a, b)
            exe.run(main, feed={"x": bx, "y": by, "found_inf": np.array(False)})
            assert all(not np.array_equal(a, b) for a, b in zip(read()[:2], before[:2]))
    finally:
        paddle.disable_static()


@pytest.mark.parametrize("fused", [False, True])
def test_static_multi_precision(fused):
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            x = paddle.static.data("x", [H.BATCH, H.IN], "float32")
            w = paddle.create_parameter([H.IN, H.OUT], "float16")
            loss = (x @ w.astype("float32")).pow(2).mean()  # no float16 matmul on CPU
            opt = RMSProp(0.02, momentum=0.5, multi_precision=True, fused=fused)
            opt.minimize(loss)
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            w0 = np.array(scope.var(w.name).get_tensor()).copy()
            for bx, _ in H.batches(3):
                exe.run(main, feed={"x": bx})
            master = np.array(scope.var(opt._master_weights[w.name].name).get_tensor())
            param = np.array(scope.var(w.name).get_tensor())
        assert master.dtype == np.float32 and param.dtype == np.float16
        np.testing.assert_array_equal(master.astype(np.float16), param)
        assert not np.array_equal(param, w0)
    finally:
        paddle.disable_static()


@pytest.mark.parametrize("groups", [False, True])
def test_state_dict_with_master_weights_and_groups_into_a_new_optimizer(groups):
    def build():
        layer = _model()
        layer.to(dtype="float16")
        params = layer.parameters()
        if groups:
            params = [{"params": [params[0]], "learning_rate": 0.5}, {"params": [params[1]]}]
        return layer, RMSProp(0.02, parameters=params, multi_precision=True, momentum=0.5, fused=True)

    def train(layer, opt, data):
        w, b = layer.parameters()
        for x, y in data:
            out = paddle.to_tensor(x) @ w.astype("float32") + b.astype("float32")
            ((out - paddle.to_tensor(y)) ** 2).mean().backward()
            opt.step()
            opt.clear_grad()

    data = H.batches(8)
    a, opt_a = build()
    train(a, opt_a, data[:4])
    state = {k: (v.clone() if isinstance(v, paddle.Tensor) else v) for k, v in opt_a.state_dict().items()}
    state["master_weights"] = {k: v.clone() for k, v in state["master_weights"].items()}
    weights = {k: v.clone() for k, v in a.state_dict().items()}
    b, opt_b = build()
    b.set_state_dict(weights)
    opt_b.set_state_dict(state)
    train(a, opt_a, data[4:])
    train(b, opt_b, data[4:])
    for x, y in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    for x, y in zip(opt_a._master_weights.values(), opt_b._master_weights.values()):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
