"""``rmsprop_ops.mindspore.RMSProp.from_recipe`` and rmsprop_ops schedules in the compiled step, against
the neutral optimizer's ``from_recipe`` and the schedules' own values (run: pytest -m mindspore)."""

import numpy as np
import pytest

import mindspore as ms

import rmsprop_ops
from ms_conventions import TOL, compare_states, ms_params, problem, run_ms, run_neutral
from rmsprop_ops import recipes, schedules
from rmsprop_ops.mindspore import RMSProp
from rmsprop_ops.mindspore._schedules import ScheduleLR

pytestmark = pytest.mark.mindspore

STEPS = 24
SPE = 2   # steps per epoch: warmups of 3-5 epochs and decays every 2.4-3 epochs all happen within STEPS
SHAPES = [(4, 3), (3,), (2, 2), (5,)]   # 1-D params between others: recipes exempting them get groups


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_every_recipe_matches_the_neutral_optimizer(mode, name):
    prob = problem(21, STEPS, shapes=SHAPES)
    ps = ms_params(prob.params)
    opt = RMSProp.from_recipe(ps, name, steps_per_epoch=SPE, batch_size=64)
    arrays = [p.copy() for p in prob.params]
    ref = rmsprop_ops.RMSProp.from_recipe(arrays, name, steps_per_epoch=SPE, batch_size=64)
    r = recipes.RECIPES[name]
    assert opt._rule.convention == r.convention and opt.use_ema == (r.ema is not None)
    assert opt.is_group == r.no_decay_1d
    got = run_ms(opt, ps, prob, STEPS, scale=opt.loss_scale)
    run_neutral(ref, arrays, prob, STEPS, scale=ref.loss_scale_factor or 1.0)
    for g, w, p0 in zip(got, arrays, prob.params):
        assert np.abs(g - p0).max() > 1e-4
        np.testing.assert_allclose(g, w, **TOL[np.float32])
    compare_states(opt, ref, TOL[np.float32], name)
    if opt.use_ema:
        sd = ref.state_dict()
        for i, a in enumerate(opt.ema):
            np.testing.assert_allclose(a.asnumpy(), sd[f"ema.{i}"], **TOL[np.float32])


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_recipe_rates_are_the_schedules_rounded_once(name):
    """The rate of every step, computed in the graph, is the neutral schedule's float64 value in float32."""
    sched = recipes.RECIPES[name].learning_rate(steps_per_epoch=7, batch_size=512)
    cell = ScheduleLR(sched)
    steps = list(range(0, 40)) + [100, 999, 5000]
    got = [float(cell(ms.Tensor(s, ms.int32)).asnumpy()) for s in steps]
    want = [float(np.float32(sched(s))) for s in steps]
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=0)


SCHEDULES = [
    ("constant", schedules.Constant(0.3)),
    ("piecewise", schedules.PiecewiseConstant([3, 7], [0.1, 0.05, 0.01])),
    ("exponential", schedules.ExponentialDecay(0.1, 2.4, 0.9)),
    ("exponential-staircase", schedules.ExponentialDecay(0.1, 2.4, 0.9, staircase=True)),
    ("step", schedules.StepDecay(0.2, 3, 0.5)),
    ("cosine", schedules.CosineDecay(0.1, 10, alpha=0.05)),
    ("warmup-shift", schedules.LinearWarmup(schedules.CosineDecay(0.1, 10), 4, start=0.01)),
    ("warmup-under", schedules.LinearWarmup(schedules.ExponentialDecay(0.1, 3, 0.5), 4, shift=False)),
    ("warmup-of-a-number", schedules.LinearWarmup(0.05, 3)),
]


@pytest.mark.parametrize("name,sched", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_each_schedule_kind_in_the_graph(name, sched):
    cell = ScheduleLR(sched)
    steps = list(range(15)) + [50]
    got = [float(cell(ms.Tensor(s, ms.int32)).asnumpy()) for s in steps]
    np.testing.assert_allclose(got, [float(np.float32(sched(s))) for s in steps], rtol=2e-7, atol=0)


def test_overrides_win_over_the_recipe():
    ps = ms_params(problem(22, 1, shapes=SHAPES).params)
    opt = RMSProp.from_recipe(ps, "efficientnet_tf", steps_per_epoch=10, momentum=0.5, epsilon=1e-4,
                              use_ema=False, learning_rate=0.02)
    assert (opt._rule.momentum, opt._rule.epsilon, opt.use_ema) == (0.5, 1e-4, False)
    assert float(opt.learning_rate.asnumpy()) == pytest.approx(0.02)
    # the convention's own names, and another convention for the same numbers
    ps = ms_params(problem(22, 1, shapes=SHAPES).params)
    opt = RMSProp.from_recipe(ps, "efficientnet_b0_timm", steps_per_epoch=10, convention="torch", alpha=0.95, eps=1e-6)
    assert (opt._rule.convention, opt._rule.rho, opt._rule.epsilon, opt._rule.momentum) == ("torch", 0.95, 1e-6, 0.9)


def test_recipe_and_schedule_errors_are_named():
    ps = ms_params(problem(23, 1, shapes=SHAPES).params)
    with pytest.raises(ValueError, match="recipe: expected one of"):
        RMSProp.from_recipe(ps, "resnet_sgd", steps_per_epoch=10)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        RMSProp.from_recipe(ps, "efficientnet_tf")
    with pytest.raises(TypeError, match="learning_rate: expected a MindSpore learning rate or one of"):
        RMSProp(ps, learning_rate=schedules.LinearWarmup(lambda step: 0.1, 3))
