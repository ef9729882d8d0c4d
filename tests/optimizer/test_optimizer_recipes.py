"""rmsprop_ops.recipes: every number sourced; schedules, rules and EMA against their sources.

Schedules are compared with transcriptions of the code the sources run: TF EfficientNet
``utils.build_learning_rate``, slim ``_configure_learning_rate``, timm ``StepLRScheduler._get_lr``
(per epoch), PaddleClas ``Cosine`` / ``Step`` with Paddle's ``LinearWarmup``, mindcv
``linear_refined_lr`` + ``cosine_decay_refined_lr``. The EfficientNet recipe is trained against a
transcription of ``tf.compat.v1.train.RMSPropOptimizer`` (``ApplyRMSProp``: ms starts at ones) with its
coupled L2 loss and ``ExponentialMovingAverage(0.9999, num_updates)``; the timm recipes against timm's
own ``RMSpropTF`` with ``param_groups_weight_decay``'s groups.
"""

import math

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops import recipes

from timm_optim import timm_optim_module

SPE = 7  # steps per epoch: small and odd, so that fractional decay periods fall inside epochs


def test_every_recipe_is_sourced_and_builds():
    assert {"efficientnet_tf", "mobilenet_v2_tf", "mobilenet_v3_tf", "efficientnet_b0_timm",
            "mobilenetv3_large_100_timm", "efficientnet_b0_paddleclas", "tinynet_a_paddleclas",
            "efficientnet_b0_mindcv", "mnasnet_100_mindcv"} <= set(recipes.RECIPES)
    for name, r in recipes.RECIPES.items():
        assert r.name == name and r.description
        for key in (*r.hyper, *r.extra, "schedule", "batch_size", "convention"):
            assert len(r.sources[key]) > 20, (name, key)
        if r.ema is not None:
            assert r.sources["ema"]
        p = [np.ones((3, 3), np.float32), np.ones(3, np.float32)]
        opt = rmsprop_ops.RMSProp.from_recipe(p, name, steps_per_epoch=SPE)
        assert opt.rule.convention == r.convention
        for key, value in r.hyper.items():
            assert getattr(opt.rule, key) == value, (name, key)
        assert opt.use_ema == (r.ema is not None)
        assert opt.step([np.ones((3, 3), np.float32), np.ones(3, np.float32)])
        with pytest.raises(TypeError):
            r.hyper["rho"] = 0.5  # frozen data


def test_recipes_need_steps_per_epoch_and_take_overrides():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        rmsprop_ops.RMSProp.from_recipe([np.ones(2)], "efficientnet_tf")
    with pytest.raises(ValueError, match="recipe: expected one of"):
        rmsprop_ops.RMSProp.from_recipe([np.ones(2)], "resnet50", steps_per_epoch=10)
    opt = rmsprop_ops.RMSProp.from_recipe([np.ones(2)], "efficientnet_tf", steps_per_epoch=10, epsilon=1e-2,
                                          decay=0.8, use_ema=False)
    assert (opt.rule.epsilon, opt.rule.rho, opt.use_ema) == (1e-2, 0.8, False)
    big = recipes.RECIPES["efficientnet_tf"].learning_rate(10, batch_size=4096)
    assert big(10 ** 6) == pytest.approx(2 * recipes.RECIPES["efficientnet_tf"].learning_rate(10)(10 ** 6))


def test_1d_params_get_no_weight_decay_without_reordering():
    ps = [np.ones((2, 2)), np.ones(2), np.ones(3), np.ones((3, 1)), np.ones(1)]
    opt = rmsprop_ops.RMSProp.from_recipe(ps, "tinynet_a_paddleclas", steps_per_epoch=SPE)
    assert [len(g["params"]) for g in opt.param_groups] == [1, 2, 1, 1]
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-5, 0.0, 1e-5, 0.0]
    assert [p for g in opt.param_groups for p in g["params"]] == ps
    assert len(opt._plans) == 1  # decays differ per tensor inside one launch


# ------------------------------------------------------------------------------ schedules
def _tf_efficientnet(step, spe, batch=2048):
    """utils.build_learning_rate('exponential', warmup_epochs=5) with main.py's scaled_lr."""
    lr0 = 0.016 * batch / 256.0
    lr = lr0 * 0.97 ** math.floor(step / (spe * 2.4))
    warmup_steps = int(5 * spe)
    return lr0 * step / warmup_steps if step < warmup_steps else lr


def _slim_mobilenet_v2(step, spe):
    decay_steps = int(spe * 2.5)
    return 0.045 * 0.98 ** math.floor(step / decay_steps)


def _timm_step(base, decay_rate):
    """StepLRScheduler._get_lr(t), t = epoch, warmup_t 5 from 1e-6, no warmup prefix."""
    def lr(step, spe):
        t = step // spe
        if t < 5:
            return 1e-6 + t * (base - 1e-6) / 5
        return base * decay_rate ** (t // 2.4)
    return lr


def _paddle_cosine(step, spe):
    """Cosine(epochs 360, lr 0.032, warmup_epoch 5): LinearWarmup(0 -> lr, round(5 spe)) then
    CosineAnnealingDecay(T_max = 355 spe) counted from the end of the warmup."""
    warm = round(5 * spe)
    if step < warm:
        return 0.032 * step / warm
    return 0.5 * 0.032 * (1 + math.cos(math.pi * (step - warm) / (355 * spe)))


def _paddle_step(step, spe):
    """Step(lr 0.048, step_size 2.4, gamma 0.97, warmup 3 from 1e-6)."""
    warm = round(3 * spe)
    if step < warm:
        return 1e-6 + (0.048 - 1e-6) * step / warm
    return 0.048 * 0.97 ** ((step - warm) // int(2.4 * spe))


def _mindcv_cosine(lr, decay_epochs=445, min_lr=1e-10):
    def f(step, spe):
        warm = 5 * spe
        if step < warm:
            return 0.0 + min(step / spe, 5) / 5 * (lr - 0.0)
        t = min((step - warm) / spe, decay_epochs)
        return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * t / decay_epochs))
    return f


SCHEDULE_CASES = [
    ("efficientnet_tf", _tf_efficientnet),
    ("mobilenet_v2_tf", _slim_mobilenet_v2),
    ("efficientnet_b0_timm", _timm_step(0.048, 0.97)),
    ("mobilenetv3_large_100_timm", _timm_step(0.064, 0.973)),
    ("efficientnet_b0_paddleclas", _paddle_cosine),
    ("tinynet_a_paddleclas", _paddle_step),
    ("efficientnet_b0_mindcv", _mindcv_cosine(0.128)),
    ("mnasnet_100_mindcv", _mindcv_cosine(0.016)),
]


@pytest.mark.parametrize("name,ref", SCHEDULE_CASES, ids=[c[0] for c in SCHEDULE_CASES])
def test_recipe_schedules_match_their_sources(name, ref):
    sched = recipes.RECIPES[name].learning_rate(SPE)
    steps = list(range(0, 80)) + [SPE * 100 + 3, SPE * 300]
    for step in steps:
        assert sched(step) == pytest.approx(ref(step, SPE), rel=1e-12, abs=1e-15), step


# ------------------------------------------------------------------------------ training
def _tf1_rmsprop(lr, rho=0.9, momentum=0.9, eps=1e-3):
    """tf.compat.v1.train.RMSPropOptimizer: ms starts at ones; ApplyRMSProp."""
    def rule(p, g, st):
        st["ms"] = st["ms"] + (g * g - st["ms"]) * (1 - rho)
        st["mom"] = st["mom"] * momentum + lr * g / np.sqrt(st["ms"] + eps)
        return p - st["mom"]
    return rule


def test_efficientnet_tf_recipe_trains_like_its_tf_transcription():
    rng = np.random.default_rng(7)
    shapes = [(5, 3), (4,)]
    params = [rng.standard_normal(s) for s in shapes]
    curv = [rng.uniform(0.2, 3.0, s) for s in shapes]
    noise = [[rng.standard_normal(s) * 0.3 for s in shapes] for _ in range(40)]
    ps = [p.copy() for p in params]
    # batch-norm-like 1-D variables are exempt from the L2 loss in main.py: a group with weight_decay 0
    opt = rmsprop_ops.RMSProp.from_recipe([{"params": [ps[0]]}, {"params": [ps[1]], "weight_decay": 0.0}],
                                          "efficientnet_tf", steps_per_epoch=3)
    ref = [p.copy() for p in params]
    states = [{"ms": np.ones_like(p), "mom": np.zeros_like(p)} for p in ref]
    shadows = [p.copy() for p in params]
    for t in range(40):
        opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])
        lr = _tf_efficientnet(t, 3)
        for i in range(2):
            g = curv[i] * ref[i] + noise[t][i] + (1e-5 * ref[i] if i == 0 else 0.0)  # d(wd * l2_loss)/dv
            ref[i] = _tf1_rmsprop(lr)(ref[i], g, states[i])
        n = t + 1  # global_step after the update, as ema.apply runs after train_op
        d = min(0.9999, (1.0 + n) / (10.0 + n))
        shadows = [s - (1 - d) * (s - p) for s, p in zip(shadows, ref)]
    for a, b, p0 in zip(ps, ref, params):
        assert np.abs(a - p0).max() > 1e-2
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    with opt.swap_ema_weights():
        for a, s in zip(ps, shadows):
            np.testing.assert_allclose(a, s, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["efficientnet_b0_timm", "mobilenetv3_large_100_timm"])
def test_timm_recipes_train_like_timm(name):
    torch = pytest.importorskip("torch")
    with timm_optim_module("rmsprop_tf") as mod:
        if mod is None:
            pytest.skip("timm is not installed (pip install --no-deps timm)")
        r = recipes.RECIPES[name]
        rng = np.random.default_rng(8)
        shapes = [(4, 3), (3,), (2, 2)]
        params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        curv = [rng.uniform(0.2, 3.0, s).astype(np.float32) for s in shapes]
        noise = [[(rng.standard_normal(s) * 0.3).astype(np.float32) for s in shapes] for _ in range(30)]
        spe = 2
        ps = [p.copy() for p in params]
        opt = rmsprop_ops.RMSProp.from_recipe(ps, name, steps_per_epoch=spe)
        ts = [torch.tensor(p) for p in params]
        # timm's param_groups_weight_decay: ndim <= 1 without decay; its scheduler sets lr per epoch
        groups = [{"params": [ts[0], ts[2]], "weight_decay": 1e-5}, {"params": [ts[1]], "weight_decay": 0.0}]
        ref = mod.RMSpropTF(groups, lr=r.schedule.base_learning_rate, alpha=0.9, eps=1e-3, momentum=0.9)
        lr_of = _timm_step(r.schedule.base_learning_rate, r.schedule.decay_rate)
        ema = [t.clone() for t in ts]
        for t in range(30):
            opt.step([c * p + n for p, c, n in zip(ps, curv, noise[t])])
            for g in ref.param_groups:
                g["lr"] = lr_of(t, spe)
            for x, c, n in zip(ts, curv, noise[t]):
                x.grad = torch.from_numpy(c * x.numpy() + n)
            ref.step()
            d = 0.0 if t == 0 else 0.9999  # ModelEmaV3.get_decay(step=t + 1)
            ema = [d * e + (1 - d) * x for e, x in zip(ema, ts)]
        for a, x, p0 in zip(ps, ts, params):
            assert np.abs(a - p0).max() > 1e-3
            np.testing.assert_allclose(a, x.numpy(), rtol=1e-5, atol=1e-6)
        with opt.swap_ema_weights():
            for a, e in zip(ps, ema):
                np.testing.assert_allclose(a, e.numpy(), rtol=1e-5, atol=1e-6)
