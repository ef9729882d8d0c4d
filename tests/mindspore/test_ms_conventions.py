"""``rmsprop_ops.mindspore.RMSProp(convention=...)`` and each rule field on its own against the neutral
optimizer with the same convention and gradients (run: pytest -m mindspore).

The grid: every convention x {plain, momentum, centered + momentum} x {weight decay off, on} x
{per-parameter, flat state} x {GRAPH, PYNATIVE}, params and every state buffer after 6 steps (fp32 within
2e-6); float64 to rounding; every rule field alone on MindSpore's convention; groups with their own learning
rates and weight decays under a per-step learning rate; the default stays MindSpore's rule bit for bit.
"""

import dataclasses

import numpy as np
import pytest

import mindspore as ms
from mindspore import nn

import rmsprop_ops
from ms_conventions import (TOL, compare_states, ms_params, neutral, problem, resume_from_checkpoint, run_ms,
                            run_neutral)
from rmsprop_ops.mindspore import RMSProp

pytestmark = pytest.mark.mindspore

STEPS = 6
CONVENTIONS = sorted(rmsprop_ops.CONVENTIONS)
VARIANTS = {"plain": {}, "momentum": {"momentum": 0.9}, "centered": {"centered": True, "momentum": 0.5}}
# weight decay of the convention's own kind (keras: decoupled)
DECAYS = {"wd0": {}, "wd": {"weight_decay": 0.05}}


def _pair(prob, flat=False, dtype=np.float32, **kw):
    ps = ms_params(prob.params)
    opt = RMSProp(ps, flat_state=flat, **kw)
    ref, arrays = neutral(prob, **kw)
    return opt, ps, ref, arrays


@pytest.mark.parametrize("flat", [False, True], ids=["per-param", "flat"])
@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_every_convention_matches_the_neutral_optimizer(mode, convention, variant, decay, flat):
    prob = problem(3, STEPS)
    kw = {"convention": convention, "learning_rate": 0.01, **VARIANTS[variant], **DECAYS[decay]}
    opt, ps, ref, arrays = _pair(prob, flat=flat, **kw)
    assert opt.flat_state == flat
    # the same rule (MindSpore's Optimizer keeps the learning rate and weight decay themselves)
    assert dataclasses.replace(opt._rule, learning_rate=None, weight_decay=0.0) == \
        dataclasses.replace(ref.rule, learning_rate=None, weight_decay=0.0)
    got = run_ms(opt, ps, prob, STEPS)
    run_neutral(ref, arrays, prob, STEPS)
    for g, w, p0 in zip(got, arrays, prob.params):
        assert np.abs(g - p0).max() > 1e-4
        np.testing.assert_allclose(g, w, **TOL[np.float32])
    assert compare_states(opt, ref, TOL[np.float32], convention) >= len(prob.params)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_float64_matches_to_rounding(mode, convention):
    prob = problem(4, STEPS, np.float64)
    # a learning rate float32 holds exactly: MindSpore keeps a number learning rate as a float32 Parameter
    kw = {"convention": convention, "learning_rate": 2.0 ** -6, "momentum": 0.9, "centered": True, "weight_decay": 0.1}
    opt, ps, ref, arrays = _pair(prob, **kw)
    got = run_ms(opt, ps, prob, STEPS)
    run_neutral(ref, arrays, prob, STEPS)
    for g, w in zip(got, arrays):
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, w, **TOL[np.float64])
    compare_states(opt, ref, TOL[np.float64], convention)


# Each field alone, on MindSpore's convention (and the momentum / schedule that make it matter).
FIELDS = [
    ("initial_accumulator_value=0", {"initial_accumulator_value": 0.0}),
    ("initial_accumulator_value=0.25", {"initial_accumulator_value": 0.25, "momentum": 0.9}),
    ("eps_in_sqrt=False", {"eps_in_sqrt": False, "epsilon": 1e-3}),
    ("eps_in_sqrt=False-centered", {"eps_in_sqrt": False, "epsilon": 1e-3, "centered": True}),
    ("lr_in_momentum=False", {"lr_in_momentum": False, "momentum": 0.9}),
    ("weight_decay_mode=decoupled", {"weight_decay_mode": "decoupled", "weight_decay": 0.2, "momentum": 0.5}),
    ("weight_decay_mode=l1", {"weight_decay_mode": "l1", "weight_decay": 0.05}),
    ("maximize", {"maximize": True, "momentum": 0.9, "weight_decay": 0.05}),
    ("maximize-torch", {"convention": "torch", "maximize": True, "momentum": 0.9, "weight_decay": 0.05}),
]


@pytest.mark.parametrize("flat", [False, True], ids=["per-param", "flat"])
@pytest.mark.parametrize("name,fields", FIELDS, ids=[f[0] for f in FIELDS])
def test_each_rule_field_alone(mode, name, fields, flat):
    prob = problem(5, STEPS)
    # a per-step learning rate, so that lr placement shows
    lrs = [0.02 * 0.7 ** t for t in range(STEPS)]
    ps = ms_params(prob.params)
    opt = RMSProp(ps, learning_rate=lrs, flat_state=flat, **fields)
    ref, arrays = neutral(prob, learning_rate=lambda step: lrs[step], **{"convention": "mindspore", **fields})
    for field, value in fields.items():
        if field in ("initial_accumulator_value", "eps_in_sqrt", "lr_in_momentum", "weight_decay_mode", "maximize"):
            assert getattr(opt._rule, field) == value
    got = run_ms(opt, ps, prob, STEPS)
    run_neutral(ref, arrays, prob, STEPS)
    for g, w in zip(got, arrays):
        np.testing.assert_allclose(g, w, **TOL[np.float32])
    compare_states(opt, ref, TOL[np.float32], name)


def test_fields_change_the_numbers():
    """Each field moves the trajectory away from MindSpore's rule (else the table above proves nothing)."""
    prob = problem(6, 3)
    lrs = [0.02, 0.01, 0.005]

    def final(**fields):
        ps = ms_params(prob.params)
        return run_ms(RMSProp(ps, learning_rate=lrs, **fields), ps, prob, 3)

    base = final(momentum=0.9, weight_decay=0.05, epsilon=0.1)
    for fields in ({"initial_accumulator_value": 0.0}, {"eps_in_sqrt": False}, {"lr_in_momentum": False},
                   {"weight_decay_mode": "decoupled"}, {"maximize": True}, {"convention": "torch"}):
        moved = final(**{"momentum": 0.9, "weight_decay": 0.05, "epsilon": 0.1, **fields})
        assert max(np.abs(a - b).max() for a, b in zip(moved, base)) > 1e-4, fields


def test_the_default_is_mindspores_rule_bit_for_bit(mode):
    """No convention, convention='mindspore' and nn.RMSProp's own numbers: the first two identical."""
    prob = problem(7, STEPS)
    outs = []
    for kw in ({}, {"convention": "mindspore"}, {"convention": "mindspore", "decay": 0.9, "epsilon": 1e-10,
                                                 "initial_accumulator_value": 1.0, "eps_in_sqrt": True}):
        ps = ms_params(prob.params)
        opt = RMSProp(ps, learning_rate=0.01, momentum=0.9, centered=True, weight_decay=0.01, **kw)
        outs.append((run_ms(opt, ps, prob, STEPS), opt.state_per_parameter()))
    for other in outs[1:]:
        for a, b in zip(outs[0][0], other[0]):
            np.testing.assert_array_equal(a, b)
        for k in outs[0][1]:
            np.testing.assert_array_equal(outs[0][1][k], other[1][k])
    ref = ms_params(prob.params)
    run_ms(nn.RMSProp(ref, learning_rate=0.01, momentum=0.9, centered=True, weight_decay=0.01), ref, prob, STEPS)
    for a, b in zip(outs[0][0], ref):
        np.testing.assert_allclose(a, b.asnumpy(), rtol=2e-6, atol=1e-7)


def test_convention_defaults_apply_and_explicit_values_win():
    ps = ms_params(problem(8, 1).params)
    torch_like = RMSProp(ps, convention="torch")
    r = torch_like._rule
    assert (r.rho, r.epsilon, r.momentum, r.eps_in_sqrt, r.lr_in_momentum, r.initial_accumulator_value) == \
        (0.99, 1e-8, 0.0, False, False, 0.0)
    assert float(torch_like.learning_rate.asnumpy()) == pytest.approx(0.01)
    # torch's own names, and the same numbers passed explicitly in MindSpore's names
    a = RMSProp(ms_params(problem(8, 1).params), convention="torch", lr=0.05, alpha=0.9, eps=1e-6)._rule
    b = RMSProp(ms_params(problem(8, 1).params), convention="torch", learning_rate=0.05, decay=0.9, epsilon=1e-6)._rule
    assert a == b and (a.rho, a.epsilon) == (0.9, 1e-6)
    # a value equal to MindSpore's default, passed explicitly, keeps its value under another convention
    c = RMSProp(ms_params(problem(8, 1).params), convention="keras", decay=0.9, epsilon=1e-10, momentum=0.0)._rule
    assert (c.rho, c.epsilon, c.weight_decay_mode) == (0.9, 1e-10, "decoupled")
    d = RMSProp(ms_params(problem(8, 1).params), convention="keras", weight_decay_mode="l2")._rule
    assert (d.epsilon, d.weight_decay_mode) == (1e-7, "l2")


def test_groups_with_their_own_rates_and_decays(mode):
    """MindSpore's group 'lr' and 'weight_decay' under a non-MindSpore convention (lr outside momentum,
    decoupled decay), with a per-step learning rate list for the other group.

    Next to a dynamic rate MindSpore turns a group's number into a schedule returning ``lr + 1.0 - 1.0`` in
    float32 (``_ConvertToCell``), which rounds 0.03 to 0.029999971; the group's rate here, 2**-5, is exact.
    """
    prob = problem(9, STEPS)
    lrs = [0.01 * 0.8 ** t for t in range(STEPS)]
    for convention in ("torch", "keras", "tf1"):
        ps = ms_params(prob.params)
        opt = RMSProp([{"params": [ps[0], ps[2]], "lr": 2.0 ** -5, "weight_decay": 0.2}, {"params": [ps[1]]}],
                      learning_rate=lrs, convention=convention, momentum=0.9, weight_decay=0.01)
        ref, arrays = neutral(prob, groups=[([0, 2], {"learning_rate": 2.0 ** -5, "weight_decay": 0.2}), ([1], {})],
                              convention=convention, learning_rate=lambda s: lrs[s], momentum=0.9, weight_decay=0.01)
        got = run_ms(opt, ps, prob, STEPS)
        _run_grouped(ref, arrays, prob, STEPS)
        for g, w in zip(got, arrays):
            np.testing.assert_allclose(g, w, **TOL[np.float32], err_msg=convention)


def _run_grouped(ref, arrays, prob, steps):
    """The neutral optimizer takes grads in group order (params 0, 2, then 1)."""
    order = [0, 2, 1]
    for t in range(steps):
        g = prob.grads(arrays, t)
        ref.step([g[i] for i in order])


def test_a_schedule_of_rmsprop_ops_runs_in_the_graph(mode):
    """An rmsprop_ops.schedules object as learning_rate: evaluated in the compiled step, with lr outside
    the momentum (torch), where every step's rate shows in the parameters."""
    from rmsprop_ops import schedules

    sched = schedules.LinearWarmup(schedules.CosineDecay(0.05, decay_steps=4, alpha=0.1), warmup_steps=2, start=0.01)
    prob = problem(10, STEPS)
    ps = ms_params(prob.params)
    opt = RMSProp(ps, convention="torch", learning_rate=sched, momentum=0.9)
    ref, arrays = neutral(prob, convention="torch", learning_rate=sched, momentum=0.9)
    got = run_ms(opt, ps, prob, STEPS)
    run_neutral(ref, arrays, prob, STEPS)
    for g, w in zip(got, arrays):
        np.testing.assert_allclose(g, w, **TOL[np.float32])


def test_a_mindspore_schedule_under_lr_outside_momentum(mode):
    """A MindSpore LearningRateSchedule (evaluated in float32 by MindSpore) drives torch's placement; the
    neutral optimizer gets the same float32 rates."""
    sched = nn.ExponentialDecayLR(0.05, 0.7, 2)
    rates = [float(sched(ms.Tensor(t, ms.int32)).asnumpy()) for t in range(STEPS)]
    prob = problem(11, STEPS)
    ps = ms_params(prob.params)
    opt = RMSProp(ps, convention="torch", learning_rate=nn.ExponentialDecayLR(0.05, 0.7, 2), momentum=0.9,
                  centered=True)
    ref, arrays = neutral(prob, convention="torch", learning_rate=lambda s: rates[s], momentum=0.9, centered=True)
    got = run_ms(opt, ps, prob, STEPS)
    run_neutral(ref, arrays, prob, STEPS)
    for g, w in zip(got, arrays):
        np.testing.assert_allclose(g, w, **TOL[np.float32])


@pytest.mark.parametrize("flat", [False, True], ids=["per-param", "flat"])
def test_a_checkpoint_resumes_exactly_under_a_convention(mode, flat, tmp_path):
    prob = problem(12, STEPS)
    kw = {"convention": "torch", "lr": 0.02, "momentum": 0.9, "centered": True, "weight_decay": 0.01,
          "flat_state": flat}
    whole, _, resumed = resume_from_checkpoint(lambda ps: RMSProp(ps, **kw), prob, STEPS, 3,
                                               str(tmp_path / "opt.ckpt"))
    for a, b in zip(whole, resumed):
        np.testing.assert_array_equal(a, b)


def test_inside_a_train_cell_with_loss_scale(mode):
    """TrainOneStepCell (MindSpore's gradients, scaled by sens and unscaled by the optimizer's loss_scale)
    under Keras' convention, against the neutral optimizer fed the same gradients; MindSpore's weight decay
    skips 'gamma' (ungrouped), so the neutral optimizer puts it in a group without decay."""
    from ms_helpers import batches, make_net
    import rmsprop_ops

    net = make_net()
    params = net.trainable_params()
    assert "gamma" in [p.name for p in params]
    opt = RMSProp(params, convention="keras", learning_rate=0.01, momentum=0.9, weight_decay=0.05, loss_scale=8.0)
    loss = nn.WithLossCell(net, nn.MSELoss())
    train = nn.TrainOneStepCell(loss, opt, sens=8.0)
    grad_fn = ms.grad(loss, grad_position=None, weights=opt.parameters)
    arrays = [p.asnumpy().copy() for p in params]
    groups = [{"params": [a], **({"weight_decay": 0.0} if "gamma" in p.name else {})} for p, a in zip(params, arrays)]
    ref = rmsprop_ops.RMSProp(groups, convention="keras", learning_rate=0.01, momentum=0.9, weight_decay=0.05)
    for x, y in batches(5):
        ref.step([g.asnumpy() for g in grad_fn(x, y)])
        train(x, y)
        for p, a in zip(params, arrays):
            np.testing.assert_allclose(p.asnumpy(), a, rtol=2e-6, atol=2e-7, err_msg=p.name)
