"""Shared set-ups for the Paddle tests: tiny, well-conditioned models run with our RMSProp and Paddle's."""

from __future__ import annotations

import numpy as np
import paddle

ACCS = ("momentum", "mean_square", "mean_grad")
IN, HID, OUT, BATCH = 6, 4, 3, 8


def batches(steps, dtype="float32", seed=0):
    rs = np.random.RandomState(seed)
    return [(rs.randn(BATCH, IN).astype(dtype), rs.randn(BATCH, OUT).astype(dtype)) for _ in range(steps)]


def init_values(shapes, dtype="float32"):
    return [np.random.RandomState(100 + i).uniform(-0.5, 0.5, s).astype(dtype) for i, s in enumerate(shapes)]


def make_weight_decay(kind):
    """(optimizer weight_decay, ParamAttr regularizer, or ParamAttr keywords, for the first layer's weight)."""
    L1, L2 = paddle.regularizer.L1Decay, paddle.regularizer.L2Decay
    return {
        None: (None, None),
        "float": (0.02, None),
        "l1": (L1(0.02), None),
        "l2": (L2(0.02), None),
        "paramattr": (L2(0.02), L1(0.05)),  # the ParamAttr regularizer wins for that weight
        # Same decay kind with another coefficient and a learning-rate multiplier on that weight: one fused
        # op then carries per-parameter lists (dyadic values, exact in float32).
        "paramattr_l2_lr": (L2(2.0**-6), dict(regularizer=L2(2.0**-4), learning_rate=0.5)),
        # Coefficients exact in float32: the op's attributes are float32 (like Paddle's rmsprop op) while
        # Paddle's decay scale op keeps float64, so only these compare exactly in float64.
        "l2_dyadic": (L2(2.0**-6), None),
        "l1_dyadic": (L1(2.0**-6), None),
        # A learning-rate scale float32 cannot hold: a float64 parameter with it must not be fused (the
        # fused op's lr_mults are float32), or it drifts from Paddle by ~1e-9.
        "paramattr_lr_tenth": (L2(2.0**-6), dict(learning_rate=0.1)),
    }[kind]


def make_clip(kind):
    return {
        None: None,
        "value": paddle.nn.ClipGradByValue(0.2),
        "norm": paddle.nn.ClipGradByNorm(0.1),
        "global_norm": paddle.nn.ClipGradByGlobalNorm(0.1),
    }[kind]


def make_lr(kind):
    if kind == "scheduler":
        return paddle.optimizer.lr.StepDecay(0.02, step_size=5, gamma=0.5)
    return 0.02


def build_layers(reg_attr):
    attr = reg_attr if isinstance(reg_attr, dict) else dict(regularizer=reg_attr)
    l1 = paddle.nn.Linear(IN, HID, weight_attr=paddle.ParamAttr(**attr) if reg_attr else None)
    l2 = paddle.nn.Linear(HID, OUT)
    return l1, l2


def loss_of(l1, l2, x, y):
    return ((l2(l1(x)) - y) ** 2).mean()


def accumulators(opt, params):
    """Each parameter's accumulator variables in ACCS order (with flat_state: the buffers holding them)."""
    return [v for v, _, _ in accumulator_specs(opt, params)]


def accumulator_values(opt, params):
    """Each parameter's accumulators in ACCS order, as NumPy arrays of the parameter's shape (dynamic mode)."""
    return [read_accumulator(v.numpy(), off, shape) for v, off, shape in accumulator_specs(opt, params)]


def accumulator_specs(opt, params):
    """(variable, offset, shape) of each parameter's accumulators in ACCS order: offset is None for
    per-parameter state, else where the parameter's slice of a flat_state buffer starts."""
    out = []
    for p in params:
        target = getattr(opt, "_master_weights", {}).get(p.name, p)  # a master weight holds the state
        for acc in ACCS:
            per_param = opt._accumulators.get(acc, {})
            if target.name in per_param:  # per-parameter state, or (dynamic mode) a view of a flat buffer
                out.append((per_param[target.name], None, None))
            else:  # a static program's flat buffer
                chunk, offset = opt._store.flat_place(target.name)
                kinds = ("mean_square", "momentum", "mean_grad")  # the flat buffers' order
                out.append((chunk.buffers[kinds.index(acc)], offset, tuple(target.shape)))
    return out


def read_accumulator(array, offset, shape):
    """One parameter's accumulator from its variable's value (a flat buffer's slice, shaped)."""
    array = np.asarray(array)
    if offset is None:
        return array.copy()
    return array[offset:offset + int(np.prod(shape))].reshape(shape).copy()


def run_dynamic(opt_cls, *, steps=20, dtype="float32", wd=None, clip=None, lr="float", groups=False,
                centered=False, momentum=0.0, **opt_kw):
    """Train the two-layer linear model; returns per-step params and the final accumulators (numpy)."""
    paddle.disable_static()
    paddle.set_default_dtype(dtype)
    try:
        weight_decay, reg_attr = make_weight_decay(wd)
        l1, l2 = build_layers(reg_attr)
        params = l1.parameters() + l2.parameters()
        for p, v in zip(params, init_values([p.shape for p in params], dtype)):
            p.set_value(v)
        sched = make_lr(lr)
        if groups:
            parameters = [
                {"params": l1.parameters(), "learning_rate": 0.5, "rho": 0.8, "epsilon": 1e-5,
                 "momentum": 0.3, "weight_decay": paddle.regularizer.L2Decay(0.03) if wd else None},
                {"params": l2.parameters()},
            ]
        else:
            parameters = params
        opt = opt_cls(learning_rate=sched, parameters=parameters, weight_decay=weight_decay,
                      grad_clip=make_clip(clip), centered=centered, momentum=momentum, **opt_kw)
        history = []
        for x, y in batches(steps, dtype):
            loss = loss_of(l1, l2, paddle.to_tensor(x), paddle.to_tensor(y))
            loss.backward()
            opt.step()
            opt.clear_grad()
            if isinstance(sched, paddle.optimizer.lr.LRScheduler):
                sched.step()
            history.append([p.numpy().copy() for p in params])
        return history, accumulator_values(opt, params), opt
    finally:
        paddle.set_default_dtype("float32")


def run_static(make_opt, *, steps=20, wd=None, lr="float", centered=False, momentum=0.0, clip=None,
               manual_value_clip=None, no_grad=False):
    """Same model as a static program (PIR, or the legacy IR under FLAGS_enable_pir_api=0). make_opt(learning_rate, weight_decay, grad_clip) builds the
    optimizer. manual_value_clip clips the gradients with paddle.clip ops (a reference for ClipGradByValue
    that Paddle's own static path lacks). Returns (per-step params, accumulators, op names, opt, names)."""
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            weight_decay, reg_attr = make_weight_decay(wd)
            x = paddle.static.data("x", [BATCH, IN], "float32")
            y = paddle.static.data("y", [BATCH, OUT], "float32")
            l1, l2 = build_layers(reg_attr)
            params = l1.parameters() + l2.parameters()
            loss = loss_of(l1, l2, x, y)
            sched = make_lr(lr)
            opt = make_opt(learning_rate=sched, weight_decay=weight_decay, grad_clip=make_clip(clip),
                           centered=centered, momentum=momentum)
            no_grad_set = {params[0]} if no_grad else None
            if manual_value_clip is None:
                opt.minimize(loss, no_grad_set=no_grad_set)
            else:
                pg = opt.backward(loss, no_grad_set=no_grad_set)
                opt.apply_gradients([(p, paddle.clip(g, -manual_value_clip, manual_value_clip)) for p, g in pg])
        names = [p.name for p in params]
        acc_specs = [(a.name, off, shape) for a, off, shape in
                     accumulator_specs(opt, [p for p in params if not (no_grad and p is params[0])])]
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        history = []
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            for n, v in zip(names, init_values([p.shape for p in params])):
                scope.var(n).get_tensor().set(v, paddle.CPUPlace())
            for bx, by in batches(steps):
                exe.run(main, feed={"x": bx, "y": by}, fetch_list=[loss])
                if isinstance(sched, paddle.optimizer.lr.LRScheduler):
                    sched.step()
                history.append([np.array(scope.var(n).get_tensor()).copy() for n in names])
            accs = [read_accumulator(scope.var(n).get_tensor(), off, shape) for n, off, shape in acc_specs]
        return history, accs, op_names(main), opt, main
    finally:
        paddle.disable_static()


def op_names(program):
    """The names of a program's ops: PIR's (``custom_op.rmsprop_ops_rmsprop_``) or, in the legacy IR
    (FLAGS_enable_pir_api=0), the op types (``rmsprop_ops_rmsprop``)."""
    return [op.name() if callable(getattr(op, "name", None)) else op.type for op in program.global_block().ops]


def max_err(a, b):
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in zip(a, b))
