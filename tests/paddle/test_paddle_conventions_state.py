"""The accumulator's start value through checkpoints, and recipes, in ``rmsprop_ops.paddle.RMSProp`` (issue #21).

A convention that starts the mean square at ones (TF1, MindSpore) must keep doing so wherever state is
created: dynamic mode (per-parameter and flat), static programs (the startup program initialises it),
parameters a checkpoint loaded before the first step does not cover, and a checkpoint written with
``paddle.static.save`` and read back with ``paddle.static.load``. ``from_recipe`` builds the recipe the
neutral optimizer builds and gives its numbers.
"""

import numpy as np
import pytest

import rmsprop_ops

import paddle_conventions as C

paddle = pytest.importorskip("paddle")
from rmsprop_ops.paddle import RMSProp, ScheduleLR  # noqa: E402

FP32 = 2e-6


@pytest.mark.parametrize("value", [1.0, 0.25])
@pytest.mark.parametrize("flat", [False, True])
def test_state_starts_at_the_initial_value_in_dynamic_mode(flat, value):
    paddle.disable_static()
    layer = paddle.nn.Linear(3, 2)
    opt = RMSProp(0.01, parameters=layer.parameters(), initial_accumulator_value=value, momentum=0.9,
                  centered=True, flat_state=flat)
    opt._create_accumulators(None, layer.parameters())
    for p in layer.parameters():
        state = C._paddle_state(opt, [p], lambda var, _: np.array(var.numpy()))
        np.testing.assert_array_equal(state["mean_square.0"], np.full(p.shape, value, np.float32))
        assert not state["moment.0"].any() and not state["mean_grad.0"].any()


@pytest.mark.parametrize("flat", [None, True])
def test_the_startup_program_initialises_the_state_at_the_initial_value(flat):
    prob = C.problem(seed=40, steps=1)
    run = C.run_static(prob, 0, convention="tf1", learning_rate=0.1, momentum=0.9, flat_state=flat)
    for i, p in enumerate(prob.init):
        np.testing.assert_array_equal(run.state[f"mean_square.{i}"], np.ones(p.shape, np.float32))
        assert not run.state[f"moment.{i}"].any()


@pytest.mark.parametrize("flat", [False, True])
def test_parameters_a_checkpoint_does_not_cover_start_at_the_initial_value(flat):
    """Loaded before the first step, a checkpoint of some parameters waits for their state; the others get
    fresh state, at the convention's start value (1 for TF1), as a fresh neutral optimizer has."""
    paddle.disable_static()
    prob = C.problem(seed=41, steps=6)
    kw = dict(convention="tf1", learning_rate=0.02, momentum=0.9, flat_state=flat)
    part = C.run_dygraph(C.Problem(prob.init[:1], prob.curv[:1], [n[:1] for n in prob.noise]), 3, **kw)
    sd = part.opt.state_dict()
    params = [paddle.create_parameter(list(p.shape), "float32", default_initializer=paddle.nn.initializer.Assign(v))
              for p, v in zip(prob.init, [part.history[-1][0]] + prob.init[1:])]
    opt = RMSProp(parameters=params, **kw)
    opt.set_state_dict({k.replace(part.extra["params"][0].name, params[0].name): v for k, v in sd.items()})
    g = prob.grads([p.numpy() for p in params], 3)
    sum((p * paddle.to_tensor(x)).sum() for p, x in zip(params, g)).backward()
    opt.step()
    # the covered parameter continues; the others take a fresh TF1 step
    ref = rmsprop_ops.RMSProp([p.copy() for p in [part.history[-1][0]] + prob.init[1:]], **{
        k: v for k, v in kw.items() if k != "flat_state"})
    ref.import_state(rmsprop_ops.translate.RMSPropState((
        rmsprop_ops.translate.ParamState(part.state["mean_square.0"], moment=part.state["moment.0"]),
        rmsprop_ops.translate.ParamState(None), rmsprop_ops.translate.ParamState(None))))
    ref.step(g)
    state = C._paddle_state(opt, params, lambda var, _: np.array(var.numpy()))
    for i in range(3):
        np.testing.assert_allclose(params[i].numpy(), ref._views[i], rtol=0, atol=FP32)
        np.testing.assert_allclose(state[f"mean_square.{i}"], ref.state_dict()[f"mean_square.{i}"], rtol=0, atol=FP32)


@pytest.mark.parametrize("flat", [None, True])
def test_static_save_and_load_continue_the_training(tmp_path, flat):
    """``paddle.static.save`` after 3 steps, ``paddle.static.load`` into a fresh scope (after its startup
    program): the next 3 steps equal 6 uninterrupted ones, bit for bit."""
    prob = C.problem(seed=42, steps=6)
    kw = dict(convention="tf1", learning_rate=0.02, momentum=0.9, flat_state=flat)
    whole = C.run_static(prob, 6, **kw)
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            params = [paddle.create_parameter(list(p.shape), "float32",
                                              default_initializer=paddle.nn.initializer.Assign(p)) for p in prob.init]
            feeds = [paddle.static.data(f"g{i}", list(p.shape), "float32") for i, p in enumerate(prob.init)]
            RMSProp(**kw).minimize(C.static_loss(params, feeds))
        names = [p.name for p in params]
        exe = paddle.static.Executor(paddle.CPUPlace())

        def train(scope, steps):
            for t in steps:
                cur = [np.array(scope.var(n).get_tensor()) for n in names]
                exe.run(main, feed=C.static_feed(prob.grads(cur, t)))

        first, second = paddle.static.Scope(), paddle.static.Scope()
        with paddle.static.scope_guard(first):
            exe.run(startup)
            train(first, range(3))
            paddle.static.save(main, str(tmp_path / "ckpt"))
        with paddle.static.scope_guard(second):
            exe.run(startup)
            paddle.static.load(main, str(tmp_path / "ckpt"), exe)
            train(second, range(3, 6))
            got = [np.array(second.var(n).get_tensor()) for n in names]
    finally:
        paddle.disable_static()
    for g, w in zip(got, whole.history[-1]):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("flat", [False, True])
def test_dynamic_state_dict_round_trip_keeps_tf1_state(flat):
    prob = C.problem(seed=43, steps=6)
    kw = dict(convention="tf1", learning_rate=0.02, momentum=0.9, centered=True, flat_state=flat)
    whole = C.run_dygraph(prob, 6, **kw)
    first = C.run_dygraph(prob, 3, **kw)
    params = [paddle.create_parameter(list(p.shape), "float32", default_initializer=paddle.nn.initializer.Assign(
        p.numpy())) for p in first.extra["params"]]
    opt = RMSProp(parameters=params, **dict(kw, flat_state=not flat))  # and across layouts
    sd = first.opt.state_dict()
    opt.set_state_dict({k.replace(o.name, n.name): v for o, n in zip(first.extra["params"], params)
                        for k, v in sd.items() if k.startswith(o.name + "_")})
    for t in range(3, 6):
        g = prob.grads([p.numpy() for p in params], t)
        sum((p * paddle.to_tensor(x)).sum() for p, x in zip(params, g)).backward()
        opt.step()
        opt.clear_grad()
    for p, w in zip(params, whole.history[-1]):
        np.testing.assert_array_equal(p.numpy(), w)


# ------------------------------------------------------------------------------------------- recipes
def _recipe_run(name, steps, spe, **overrides):
    """The recipe through the Paddle front end (dynamic mode, its scheduler stepped every step) and
    through the neutral optimizer's from_recipe, on two weight matrices and a bias."""
    paddle.disable_static()
    prob = C.problem(seed=44, steps=steps, shapes=[(4, 3), (3,), (3, 2)])
    params = [paddle.create_parameter(list(p.shape), "float32", default_initializer=paddle.nn.initializer.Assign(p))
              for p in prob.init]
    opt = RMSProp.from_recipe(params, name, steps_per_epoch=spe, **overrides)
    ref_ps = [p.copy() for p in prob.init]
    ref = rmsprop_ops.RMSProp.from_recipe(ref_ps, name, steps_per_epoch=spe, **overrides)
    for t in range(steps):
        g = prob.grads([p.numpy() for p in params], t)
        sum((p * paddle.to_tensor(x)).sum() for p, x in zip(params, g)).backward()
        opt.step()
        opt.clear_grad()
        opt.lr_scheduler.step()
        ref.step(prob.grads(ref_ps, t))
    return opt, params, ref, ref_ps


@pytest.mark.parametrize("name", sorted(rmsprop_ops.recipes.RECIPES))
def test_from_recipe_gives_the_neutral_optimizers_numbers(name):
    overrides = {"loss_scale_factor": None} if "loss_scale_factor" in rmsprop_ops.recipes.RECIPES[name].extra else {}
    opt, params, ref, ref_ps = _recipe_run(name, 12, 2, **overrides)
    assert isinstance(opt.lr_scheduler, ScheduleLR)
    assert opt.get_lr() == pytest.approx(ref.learning_rates()[0], rel=1e-12)
    for p, r in zip(params, ref_ps):
        np.testing.assert_allclose(p.numpy(), r, rtol=0, atol=FP32)
    r = rmsprop_ops.recipes.RECIPES[name]
    assert opt.rule.convention == r.convention and opt.use_ema == (r.ema is not None)
    if r.ema is not None:
        assert (opt.ema_momentum, opt.ema_schedule) == (r.ema.decay, r.ema.schedule)
        with opt.swap_ema_weights(), ref.swap_ema_weights():
            for p, q in zip(params, ref_ps):
                np.testing.assert_allclose(p.numpy(), q, rtol=0, atol=FP32)
    if r.no_decay_1d:  # the bias in a group without weight decay
        groups = opt._param_groups
        assert [len(g["params"]) for g in groups] == [2, 1] and groups[1]["weight_decay"] == 0.0


def test_recipe_overrides_win_and_options_paddle_lacks_are_refused_by_name():
    paddle.disable_static()
    layer = paddle.nn.Linear(3, 2)
    opt = RMSProp.from_recipe(layer.parameters(), "efficientnet_tf", steps_per_epoch=10, epsilon=1e-2, decay=0.8,
                              use_ema=False)
    assert (opt.rule.epsilon, opt.rule.rho, opt.use_ema) == (1e-2, 0.8, False)
    with pytest.raises(ValueError, match="loss_scale_factor: the 'mnasnet_100_mindcv' recipe sets loss_scale_factor.*"
                                         "GradScaler"):
        RMSProp.from_recipe(layer.parameters(), "mnasnet_100_mindcv", steps_per_epoch=10)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        RMSProp.from_recipe(layer.parameters(), "efficientnet_tf")
    with pytest.raises(ValueError, match="recipe: expected one of"):
        RMSProp.from_recipe(layer.parameters(), "resnet", steps_per_epoch=10)
