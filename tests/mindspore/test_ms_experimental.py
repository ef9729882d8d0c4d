"""``rmsprop_ops.mindspore.experimental.RMSprop`` against MindSpore's ``mindspore.experimental.optim.RMSprop``:
the same numbers step by step (params and every state buffer) over hyper-parameters, groups and every
``lr_scheduler`` type, in GRAPH_MODE and PYNATIVE_MODE; the same checkpoints, errors, scheduler protocol
(run: pytest -m mindspore)."""

import numpy as np
import pytest

import mindspore as ms
from mindspore import nn
from mindspore.experimental import optim
from mindspore.experimental.optim import lr_scheduler as sched

from ms_conventions import ms_params, problem
from rmsprop_ops.mindspore import kernel_stats
from rmsprop_ops.mindspore.experimental import RMSprop

pytestmark = pytest.mark.mindspore

STEPS = 6
# Two float32 implementations of torch's rule: MindSpore rounds 1 - alpha in float64 before casting
# (ours in float32) and divides lr * g by the denominator without momentum (ours multiplies lr by g / d).
# State buffers get the absolute tolerance in units of their largest element (a moment of g / d is ~10).
TOL = dict(rtol=1e-5, atol=1e-6)


def _close(mine, theirs, msg):
    np.testing.assert_allclose(mine, theirs, rtol=TOL["rtol"], atol=TOL["atol"] * max(1.0, np.abs(theirs).max()),
                               err_msg=msg)


def _groups(kind, ps):
    if kind == "flat":
        return ps
    if kind == "groups":
        return [{"params": [ps[0]], "lr": 0.05, "momentum": 0.9},
                {"params": [ps[1], ps[2]], "centered": True, "weight_decay": 0.01, "alpha": 0.9}]
    raise AssertionError(kind)


HYPER = [
    ("defaults", "flat", {}),
    ("momentum", "flat", {"momentum": 0.9}),
    ("centered-momentum", "flat", {"centered": True, "momentum": 0.5, "alpha": 0.9}),
    ("weight-decay", "flat", {"weight_decay": 0.1, "momentum": 0.9}),
    ("maximize", "flat", {"maximize": True, "weight_decay": 0.05, "momentum": 0.5}),
    ("eps-alpha", "flat", {"alpha": 0.9, "eps": 1e-3, "lr": 0.03}),
    ("groups", "groups", {"lr": 0.02}),
]


def _state(opt):
    names = ("mean_square", "moment", "mean_grad")
    return {f"{kind}.{i}": b.asnumpy() for kind in names for i, b in enumerate(getattr(opt, kind))}


def _used(opt_ref, key):
    """A buffer the rule reads: moment only with momentum, mean_grad only centered (each group's own)."""
    kind, i = key.split(".")
    group = next(g for g, s, e in _spans(opt_ref) if s <= int(i) < e)
    return kind == "mean_square" or (kind == "moment" and group["momentum"] > 0) or \
        (kind == "mean_grad" and group["centered"])


def _spans(opt):
    return [(g, opt.group_start_id[k], opt.group_start_id[k + 1]) for k, g in enumerate(opt.param_groups)]


def _run_pair(prob, kind, kw, make_scheduler=None, steps=STEPS, metric=None):
    ours_p, ref_p = ms_params(prob.params), ms_params(prob.params)
    ours, ref = RMSprop(_groups(kind, ours_p), **kw), optim.RMSprop(_groups(kind, ref_p), **kw)
    scheds = [make_scheduler(o) for o in (ours, ref)] if make_scheduler else []
    before = kernel_stats()["launches"]
    for t in range(steps):
        for opt, ps in ((ours, ours_p), (ref, ref_p)):
            order = [next(i for i, p in enumerate(ps) if p is q) for q in opt.parameters]
            grads = prob.grads([p.asnumpy() for p in ps], t)
            opt(tuple(ms.Tensor(grads[i]) for i in order))
        for s in scheds:
            s.step(metric[t]) if metric else s.step()
        for a, b in zip(ours_p, ref_p):
            np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), **TOL, err_msg=f"step {t}")
        mine, theirs = _state(ours), _state(ref)
        for key in theirs:
            if _used(ref, key):
                _close(mine[key], theirs[key], f"step {t} {key}")
            elif not key.startswith("moment"):
                np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)   # untouched zeros
    assert kernel_stats()["launches"] - before == steps * len(ours.param_groups)
    return ours, ref, ours_p, ref_p


@pytest.mark.parametrize("name,kind,kw", HYPER, ids=[h[0] for h in HYPER])
def test_hyper_parameters_and_groups_match_mindspore(mode, name, kind, kw):
    _run_pair(problem(41, STEPS), kind, kw)


SCHEDULERS = [
    ("StepLR", lambda o: sched.StepLR(o, step_size=2, gamma=0.5)),
    ("MultiStepLR", lambda o: sched.MultiStepLR(o, milestones=[1, 3], gamma=0.3)),
    ("ExponentialLR", lambda o: sched.ExponentialLR(o, gamma=0.8)),
    ("LinearLR", lambda o: sched.LinearLR(o, start_factor=0.2, total_iters=4)),
    ("ConstantLR", lambda o: sched.ConstantLR(o, factor=0.5, total_iters=2)),
    ("PolynomialLR", lambda o: sched.PolynomialLR(o, total_iters=5, power=2.0)),
    ("MultiplicativeLR", lambda o: sched.MultiplicativeLR(o, lr_lambda=lambda epoch: 0.9)),
    ("LambdaLR", lambda o: sched.LambdaLR(o, lr_lambda=lambda epoch: 1.0 / (1 + epoch))),
    ("CosineAnnealingLR", lambda o: sched.CosineAnnealingLR(o, T_max=4, eta_min=0.001)),
    ("CosineAnnealingWarmRestarts", lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2)),
    ("CyclicLR", lambda o: sched.CyclicLR(o, base_lr=0.005, max_lr=0.05, step_size_up=2)),
    ("SequentialLR", lambda o: sched.SequentialLR(o, [sched.ConstantLR(o, factor=0.1, total_iters=2),
                                                      sched.ExponentialLR(o, gamma=0.9)], milestones=[2])),
]


@pytest.mark.parametrize("kind", ["flat", "groups"])
@pytest.mark.parametrize("name,make", SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
def test_every_scheduler_drives_the_same_numbers(mode, name, make, kind):
    # lr outside the momentum buffer: every step's rate shows in the parameters
    ours, ref, _, _ = _run_pair(problem(42, STEPS), kind, {"lr": 0.02, "momentum": 0.9}, make)
    np.testing.assert_allclose([float(x.asnumpy()) for x in ours.lrs], [float(x.asnumpy()) for x in ref.lrs])


def test_reduce_lr_on_plateau(mode):
    metric = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9]
    ours, _, _, _ = _run_pair(problem(43, STEPS), "flat", {"lr": 0.02, "momentum": 0.9},
                              lambda o: sched.ReduceLROnPlateau(o, factor=0.5, patience=1), metric=metric)
    assert float(ours.lrs[0].asnumpy()) < 0.02


def test_a_group_lr_set_as_a_number_and_changed_hyper_parameters(mode):
    """torch-style edits of param_groups between steps: 'lr' as a plain float, and (PyNative) momentum."""
    prob = problem(44, 4)
    ours_p, ref_p = ms_params(prob.params), ms_params(prob.params)
    ours, ref = RMSprop(ours_p, lr=0.02), optim.RMSprop(ref_p, lr=0.02)
    for t in range(4):
        if t == 2:
            for opt in (ours, ref):
                opt.param_groups[0]["lr"] = 0.005
                if mode == "pynative":
                    opt.param_groups[0]["momentum"] = 0.9
        for opt, ps in ((ours, ours_p), (ref, ref_p)):
            opt(tuple(ms.Tensor(g) for g in prob.grads([p.asnumpy() for p in ps], t)))
        for a, b in zip(ours_p, ref_p):
            np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), **TOL, err_msg=f"step {t}")


def test_inside_a_jitted_train_step(mode):
    """The usual loop: value_and_grad over optimizer.parameters, the optimizer called in a @jit function."""
    results = []
    for cls in (RMSprop, optim.RMSprop):
        ms.set_seed(3)
        net = nn.Dense(4, 2)
        opt = cls(net.trainable_params(), lr=0.01, momentum=0.9, weight_decay=0.01)

        def forward(x, y):
            return ((net(x) - y) ** 2).mean()

        grad_fn = ms.value_and_grad(forward, None, opt.parameters)

        @ms.jit
        def step(x, y):
            loss, grads = grad_fn(x, y)
            opt(grads)
            return loss

        rng = np.random.default_rng(5)
        for _ in range(5):
            step(ms.Tensor(rng.standard_normal((8, 4)).astype(np.float32)),
                 ms.Tensor(rng.standard_normal((8, 2)).astype(np.float32)))
        results.append([p.asnumpy() for p in net.trainable_params()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **TOL)


def test_checkpoints_are_interchangeable(mode, tmp_path):
    """Same Parameter names; a checkpoint of either optimizer resumes in the other."""
    prob = problem(45, 6)
    kw = {"lr": 0.02, "momentum": 0.9, "centered": True}
    ours_p, ref_p = ms_params(prob.params), ms_params(prob.params)
    ours, ref = RMSprop(ours_p, **kw), optim.RMSprop(ref_p, **kw)
    assert [p.name for p in ours.get_parameters()] == [p.name for p in ref.get_parameters()]
    for t in range(3):
        for opt, ps in ((ours, ours_p), (ref, ref_p)):
            opt(tuple(ms.Tensor(g) for g in prob.grads([p.asnumpy() for p in ps], t)))
    for src, dst_cls, name in ((ours, optim.RMSprop, "ours"), (ref, RMSprop, "theirs")):
        path = str(tmp_path / f"{name}.ckpt")
        ms.save_checkpoint(src, path)
        fresh_p = ms_params([p.asnumpy() for p in src.parameters])
        fresh = dst_cls(fresh_p, **kw)
        assert not ms.load_param_into_net(fresh, ms.load_checkpoint(path))[0]
        for t in range(3, 6):
            fresh(tuple(ms.Tensor(g) for g in prob.grads([p.asnumpy() for p in fresh_p], t)))
            src(tuple(ms.Tensor(g) for g in prob.grads([p.asnumpy() for p in src.parameters], t)))
        for a, b in zip(fresh_p, src.parameters):
            np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), **TOL)


ERRORS = [   # MindSpore's own checks: the same exception and message
    ({"lr": 0.0}, ValueError), ({"lr": -1.0}, ValueError), ({"alpha": -0.1}, ValueError),
    ({"eps": 0.0}, ValueError), ({"momentum": -0.5}, ValueError), ({"weight_decay": -1e-4}, ValueError),
]


@pytest.mark.parametrize("kw,exc", ERRORS, ids=[str(e[0]) for e in ERRORS])
def test_mindspores_errors_are_kept(kw, exc):
    with pytest.raises(exc) as theirs:
        optim.RMSprop(ms_params(problem(46, 1).params), **kw)
    with pytest.raises(exc) as ours:
        RMSprop(ms_params(problem(46, 1).params), **kw)
    assert str(ours.value) == str(theirs.value)


OUR_ERRORS = [   # accepted by MindSpore's class, refused here
    ({"alpha": 1.5}, ValueError, "For RMSprop, the alpha is out of range"),
    ({"alpha": float("nan")}, ValueError, "For RMSprop, the alpha is out of range"),
    ({"eps": float("inf")}, ValueError, "For RMSprop, the eps is out of range"),
    ({"momentum": True}, TypeError, "For RMSprop, the momentum must be a float, but got bool"),
    ({"centered": 1}, TypeError, "For RMSprop, the centered must be a bool, but got int"),
    ({"maximize": "no"}, TypeError, "For RMSprop, the maximize must be a bool, but got str"),
]


@pytest.mark.parametrize("kw,exc,match", OUR_ERRORS, ids=[str(e[0]) for e in OUR_ERRORS])
def test_values_mindspore_accepts_blindly_are_named(kw, exc, match):
    with pytest.raises(exc, match=match):
        RMSprop(ms_params(problem(47, 1).params), **kw)


def test_it_is_mindspores_optimizer_for_the_schedulers():
    opt = RMSprop(ms_params(problem(48, 1).params))
    assert isinstance(opt, optim.Optimizer) and isinstance(opt, optim.RMSprop)
    s = sched.StepLR(opt, step_size=1, gamma=0.5)
    s.step()
    assert float(s.get_last_lr()[0].asnumpy()) == pytest.approx(0.005)


def test_a_group_added_later_is_stepped(mode):
    prob = problem(49, 3)
    ps = ms_params(prob.params)
    opt = RMSprop(ps[:2], lr=0.01)
    opt.add_param_group({"params": [ps[2]], "momentum": 0.9})
    assert [p.name for p in opt.moment] == ["moment.w0", "moment.w1", "moment.w2"]
    before = ps[2].asnumpy().copy()
    opt(tuple(ms.Tensor(g) for g in prob.grads([p.asnumpy() for p in ps], 0)))
    assert np.abs(ps[2].asnumpy() - before).max() > 1e-3


def test_docstring_example_runs():
    import doctest

    from rmsprop_ops.mindspore import experimental

    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        result = doctest.testmod(experimental)
        assert result.attempted > 0 and result.failed == 0
    finally:
        ms.set_context(mode=ms.GRAPH_MODE)
