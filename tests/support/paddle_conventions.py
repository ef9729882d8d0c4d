"""The same gradients through ``rmsprop_ops.paddle.RMSProp`` and the neutral ``rmsprop_ops.RMSProp``.

The neutral optimizer is checked against the real frameworks (tests/optimizer); these helpers let the
Paddle tests compare the Paddle front end with it under every convention, in dynamic mode and in static
programs (PIR, or the legacy IR when the process runs with FLAGS_enable_pir_api=0). Each step's gradient
is computed in NumPy from the current parameters (``curv * p + noise``) and fed to Paddle through the loss
``sum(p * g)``, whose gradient is exactly ``g``; both sides then see the same numbers. A run returns every
step's parameters and the final state buffers by the neutral optimizer's keys (``mean_square.<i>``,
``moment.<i>``, ``mean_grad.<i>``, ``ema.<i>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import paddle

import rmsprop_ops
from rmsprop_ops.paddle import RMSProp
from rmsprop_ops.reference import rmsprop_step

# Power-of-two sizes: a static program's loss is a mean (see static_loss).
SHAPES = [(4, 4), (8,), (2, 4)]
KINDS = {"mean_square": "mean_square", "moment": "momentum", "mean_grad": "mean_grad"}


@dataclass
class Problem:
    """Initial parameters, per-element curvatures and per-step noise of a noisy quadratic."""

    init: list
    curv: list
    noise: list
    dtype: str = "float32"

    def grads(self, params, t):
        return [(c * np.asarray(p, np.float64) + n).astype(self.dtype)
                for p, c, n in zip(params, self.curv, self.noise[t])]


def problem(seed=0, steps=8, dtype="float32", shapes=SHAPES):
    rng = np.random.default_rng(seed)
    init = [rng.uniform(-1.0, 1.0, s).astype(dtype) for s in shapes]
    curv = [rng.uniform(0.2, 2.0, s) for s in shapes]
    noise = [[rng.normal(0.0, 0.3, s) for s in shapes] for _ in range(steps)]
    return Problem(init, curv, noise, dtype)


@dataclass
class Run:
    history: list  # every step's parameters
    state: dict  # neutral keys -> array
    opt: object = None
    extra: dict = field(default_factory=dict)


def run_neutral(prob, steps, groups=None, **kw):
    """``groups``: list of (param indices, group options) for the neutral optimizer's groups."""
    ps = [p.copy() for p in prob.init]
    params = ps if groups is None else [dict(opts, params=[ps[i] for i in idx]) for idx, opts in groups]
    order = list(range(len(ps))) if groups is None else [i for idx, _ in groups for i in idx]
    opt = rmsprop_ops.RMSProp(params, **kw)
    history = []
    for t in range(steps):
        g = prob.grads(ps, t)
        opt.step([g[i] for i in order])
        history.append([p.copy() for p in ps])
    sd = opt.state_dict()
    back = {pos: i for pos, i in enumerate(order)}  # neutral position -> our index
    state = {}
    for key, value in sd.items():
        if "." in key:
            kind, pos = key.split(".")
            state[f"{kind}.{back[int(pos)]}"] = np.asarray(value)
    return Run(history, state, opt)


def run_reference(prob, steps, **kw):
    """The float64 reference (``rmsprop_ops.reference.rmsprop_step``) of the rule ``kw`` resolves to under
    ``rmsprop_ops._conventions.resolve`` (Paddle's argument names), update ``t`` (from 1) passed as the
    ``step`` bias_correction reads: optax's count. For the rule options the neutral optimizer does not
    count (it hands the core no update number)."""
    kw = dict(kw)
    r = rmsprop_ops._conventions.resolve(kw.pop("convention", "paddle"), **kw)
    momentum = r.effective_momentum(r.momentum, r.centered)
    ps = [np.asarray(p, np.float64) for p in prob.init]
    state = [dict(mean_square=np.full(p.shape, r.initial_accumulator_value), moment=np.zeros(p.shape),
                  mean_grad=np.zeros(p.shape) if r.centered else None) for p in ps]
    history = []
    for t in range(steps):
        g = prob.grads(ps, t)
        for i, (p, gi) in enumerate(zip(ps, g)):
            out = rmsprop_step(p, np.asarray(gi, np.float64), state[i]["mean_square"], lr=r.learning_rate,
                               rho=r.rho, epsilon=r.epsilon, momentum=momentum, moment=state[i]["moment"],
                               centered=r.centered, mean_grad=state[i]["mean_grad"],
                               eps_in_sqrt=r.eps_in_sqrt_for(momentum), lr_in_momentum=r.lr_in_momentum,
                               weight_decay=r.weight_decay or 0.0, weight_decay_mode=r.weight_decay_mode,
                               clip_after_weight_decay=r.clip_after_weight_decay, nesterov=r.nesterov,
                               bias_correction=r.bias_correction, maximize=r.maximize, step=t + 1)
            ps[i] = out["param"]
            state[i] = {k: out[k] for k in ("mean_square", "moment", "mean_grad")}
        history.append([p.copy() for p in ps])
    out = {f"mean_square.{i}": s["mean_square"] for i, s in enumerate(state)}
    if momentum:
        out.update({f"moment.{i}": s["moment"] for i, s in enumerate(state)})
    return Run(history, out)


def _paddle_state(opt, params, read):
    """The Paddle optimizer's buffers by neutral keys; ``read(var)`` gives a variable's NumPy value."""
    state = {}
    for i, p in enumerate(params):
        target = opt._master_weights.get(p.name, p)
        for key, kind in KINDS.items():
            var = opt._accumulators.get(opt._acc_name(kind), {}).get(target.name)
            if var is not None:
                state[f"{key}.{i}"] = read(var, target)
            else:
                chunk, offset = opt._store.flat_place(target.name)
                flat = read(chunk.buffers[("mean_square", "momentum", "mean_grad").index(kind)], None)
                n = int(np.prod(target.shape))
                state[f"{key}.{i}"] = flat[offset:offset + n].reshape(target.shape)
        avg = opt._accumulators.get(opt._acc_name("ema"), {}).get(p.name)
        if avg is not None:
            state[f"ema.{i}"] = read(avg, p)
    return state


def run_dygraph(prob, steps, groups=None, sched=None, **kw):
    """``groups``: list of (param indices, Paddle group options). ``sched``: an LRScheduler passed as the
    learning rate and stepped after every step."""
    paddle.disable_static()
    params = [paddle.create_parameter(list(p.shape), prob.dtype, default_initializer=paddle.nn.initializer.Assign(p))
              for p in prob.init]
    parameters = params if groups is None else [dict(opts, params=[params[i] for i in idx]) for idx, opts in groups]
    if sched is not None:
        kw["learning_rate"] = sched
    opt = RMSProp(parameters=parameters, **kw)
    history = []
    for t in range(steps):
        g = prob.grads([p.numpy() for p in params], t)
        loss = sum((p * paddle.to_tensor(gi)).sum() for p, gi in zip(params, g))
        loss.backward()
        opt.step()
        opt.clear_grad()
        if sched is not None:
            sched.step()
        history.append([p.numpy().copy() for p in params])
    state = _paddle_state(opt, params, lambda var, _: np.array(var.numpy()))
    return Run(history, state, opt, {"params": params})


def static_loss(params, feeds):
    """A static program's loss whose gradient for parameter ``i`` is exactly what :func:`static_feed` was
    given for it: ``mean(p * g_i)`` fed ``g_i = n * grad`` (n the element count, a power of two, so both
    scalings are exact). The legacy IR's ``paddle.sum`` / ``Tensor.sum`` / ``paddle.dot`` fail in Paddle
    3.3 (they reach the PIR-only functions); its mean works."""
    for p in params:
        n = int(np.prod(p.shape))
        assert n & (n - 1) == 0, f"static_loss needs power-of-two sizes, got shape {list(p.shape)}"
    return sum(paddle.mean(p * g) for p, g in zip(params, feeds))


def static_feed(grads):
    return {f"g{i}": (g * np.asarray(g.size, g.dtype)).astype(g.dtype) for i, g in enumerate(grads)}


def run_static(prob, steps, sched=None, groups=None, **kw):
    """The same problem as a static program (PIR, or the legacy IR under FLAGS_enable_pir_api=0).
    ``groups``: as for :func:`run_dygraph` (a static program honours a group's learning-rate scale and
    weight decay only, as Paddle's optimizers do)."""
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            params = [paddle.create_parameter(list(p.shape), prob.dtype,
                                              default_initializer=paddle.nn.initializer.Assign(p))
                      for p in prob.init]
            feeds = [paddle.static.data(f"g{i}", list(p.shape), prob.dtype) for i, p in enumerate(prob.init)]
            loss = static_loss(params, feeds)
            if sched is not None:
                kw["learning_rate"] = sched
            if groups is not None:
                kw["parameters"] = [dict(opts, params=[params[i] for i in idx]) for idx, opts in groups]
            opt = RMSProp(**kw)
            # with groups, name the parameters: Paddle's static backward cannot read the group dicts
            opt.minimize(loss, parameters=None if groups is None else params)
        names = [p.name for p in params]
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        history = []
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            for t in range(steps):
                current = [np.array(scope.var(n).get_tensor()) for n in names]
                exe.run(main, feed=static_feed(prob.grads(current, t)))
                if sched is not None:
                    sched.step()
                history.append([np.array(scope.var(n).get_tensor()).copy() for n in names])
            state = _paddle_state(opt, params, lambda var, _: np.array(scope.var(var.name).get_tensor()).copy())
        ops = [op.name() if callable(getattr(op, "name", None)) else op.type for op in main.global_block().ops]
        return Run(history, state, opt, {"ops": ops, "scope": scope, "names": names, "main": main})
    finally:
        paddle.disable_static()


def compare(ours: Run, ref: Run, atol):
    """The largest difference of every step's parameters and of every state buffer the neutral optimizer
    keeps; asserts the Paddle run has each of those buffers and that the parameters moved."""
    assert set(ref.state) <= set(ours.state), (sorted(ref.state), sorted(ours.state))
    worst = 0.0
    for a, b in zip(ours.history, ref.history):
        for x, y in zip(a, b):
            worst = max(worst, float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))))
    for key, value in ref.state.items():
        diff = np.abs(np.asarray(ours.state[key], np.float64) - np.asarray(value, np.float64))
        worst = max(worst, float(np.max(diff)) if diff.size else 0.0)
    moved = max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
                for x, y in zip(ref.history[-1], ref.history[0]))
    assert moved > 1e-4, "the parameters barely moved: the comparison would prove little"
    assert worst <= atol, f"max difference {worst:.3g} > {atol:.3g}"
    return worst
