"""The core's rule options in ``rmsprop_ops.mindspore.RMSProp``: ``nesterov``, ``bias_correction`` (the step
number read from the optimizer's global step) and ``maximize`` (the core negates first; the graph negates
only where MindSpore's own ops decay the weights before the launch), against the float64 reference
``rmsprop_ops.reference.rmsprop_step`` (run: pytest -m mindspore)."""

import numpy as np
import pytest

import mindspore as ms
from mindspore import nn

from ms_conventions import ms_params, problem, resume_from_checkpoint, run_ms
from rmsprop_ops.mindspore import RMSProp, config_layout
from rmsprop_ops.reference import rmsprop_step

pytestmark = pytest.mark.mindspore

STEPS = 6
# learning rates float32 holds exactly (MindSpore keeps a number learning rate as a float32 Parameter)
LRS = [2.0 ** -6, 2.0 ** -7, 2.0 ** -5, 2.0 ** -8, 2.0 ** -6, 2.0 ** -9]
F64 = dict(rtol=1e-12, atol=1e-14)
# weight decays float32 holds exactly too (MindSpore keeps the number as float32)

CASES = {
    "nesterov": {"momentum": 0.9, "nesterov": True},
    "bias_correction": {"bias_correction": True, "initial_accumulator_value": 0.0},
    "bias_correction-from-ones": {"bias_correction": True},
    # (MindSpore's mean square from ones: from zeros the corrected first variance ms - mg^2 cancels to 0,
    # and any two correct evaluations differ there by more than rounding)
    "bias_correction-centered-nesterov": {"bias_correction": True, "centered": True, "momentum": 0.5,
                                          "nesterov": True},
    "maximize-l2": {"maximize": True, "momentum": 0.9, "weight_decay": 2.0 ** -3},
    "torch-maximize-nesterov": {"convention": "torch", "maximize": True, "momentum": 0.9, "nesterov": True,
                                "weight_decay": 2.0 ** -5},
    "keras-bias_correction-decoupled": {"convention": "keras", "bias_correction": True, "momentum": 0.5,
                                        "weight_decay": 2.0 ** -5},
}


def _reference(opt, prob, lrs, steps, wd=None):
    """The float64 reference run with the optimizer's resolved rule (``wd``: its weight decay, a number)."""
    rule = opt._rule
    values = [p.copy() for p in prob.params]
    state = [dict(mean_square=np.full(p.shape, rule.initial_accumulator_value), moment=np.zeros(p.shape),
                  mean_grad=np.zeros(p.shape) if rule.centered else None) for p in values]
    wd = 0.0 if wd is None else wd
    for t in range(steps):
        grads = prob.grads(values, t)
        for k, (p, g) in enumerate(zip(values, grads)):
            out = rmsprop_step(p, g, state[k]["mean_square"], moment=state[k]["moment"],
                               mean_grad=state[k]["mean_grad"], lr=lrs[t], rho=rule.rho, epsilon=rule.epsilon,
                               momentum=rule.momentum, centered=rule.centered, eps_in_sqrt=rule.eps_in_sqrt,
                               lr_in_momentum=rule.lr_in_momentum, weight_decay=wd,
                               weight_decay_mode=rule.weight_decay_mode, nesterov=rule.nesterov,
                               bias_correction=rule.bias_correction, step=t + 1, maximize=rule.maximize)
            values[k] = out["param"]
            state[k] = {key: out[key] for key in ("mean_square", "moment", "mean_grad")}
    return values, state


@pytest.mark.parametrize("flat", [False, True], ids=["per-param", "flat"])
@pytest.mark.parametrize("name", CASES)
def test_core_options_match_the_reference(mode, name, flat):
    prob = problem(41, STEPS, np.float64)
    ps = ms_params(prob.params)
    opt = RMSProp(ps, learning_rate=LRS, flat_state=flat, **CASES[name])
    for field in ("nesterov", "bias_correction", "maximize"):
        assert getattr(opt._rule, field) == CASES[name].get(field, False)
    got = run_ms(opt, ps, prob, STEPS)
    want, state = _reference(opt, prob, LRS, STEPS, wd=CASES[name].get("weight_decay", 0.0))
    ours = opt.state_per_parameter()
    for k, (g, w, p0) in enumerate(zip(got, want, prob.params)):
        assert np.abs(g - p0).max() > 1e-4
        np.testing.assert_allclose(g, w, **F64, err_msg=f"{name} param {k}")
        np.testing.assert_allclose(ours[f"mean_square.w{k}"], state[k]["mean_square"], **F64)
        if opt._rule.momentum:
            np.testing.assert_allclose(ours[f"moment.w{k}"], state[k]["moment"], **F64)


def test_the_options_change_the_numbers():
    """Each option moves the trajectory (else the table above proves nothing): bias correction after the
    first step too, which a step number stuck at 1 would not show in the first step alone."""
    prob = problem(42, STEPS, np.float64)

    def final(**kw):
        ps = ms_params(prob.params)
        return run_ms(RMSProp(ps, learning_rate=LRS, momentum=0.9, **kw), ps, prob, STEPS)

    base = final()
    for kw in ({"nesterov": True}, {"bias_correction": True}, {"maximize": True}):
        moved = final(**kw)
        assert max(np.abs(a - b).max() for a, b in zip(moved, base)) > 1e-4, kw
    ps = ms_params(prob.params)
    opt = RMSProp(ps, learning_rate=LRS, momentum=0.9, bias_correction=True)
    got = run_ms(opt, ps, prob, STEPS)
    right = _reference(opt, prob, LRS, STEPS)[0]
    # the reference with the right step agrees; with step 1 on every update it does not
    wrong = _step_one_reference(opt, prob)
    assert max(np.abs(a - b).max() for a, b in zip(got, right)) < 1e-12
    assert max(np.abs(a - b).max() for a, b in zip(got, wrong)) > 1e-4


def _step_one_reference(opt, prob):
    rule = opt._rule
    values = [p.copy() for p in prob.params]
    ms_, mom = [np.ones(p.shape) for p in values], [np.zeros(p.shape) for p in values]
    for t in range(STEPS):
        for k, g in enumerate(prob.grads(values, t)):
            out = rmsprop_step(values[k], g, ms_[k], moment=mom[k], lr=LRS[t], rho=rule.rho, epsilon=rule.epsilon,
                               momentum=rule.momentum, bias_correction=True, step=1)
            values[k], ms_[k], mom[k] = out["param"], out["mean_square"], out["moment"]
    return values


def test_bias_correction_resumes_from_a_checkpoint(mode, tmp_path):
    """The step number is the global step + 1, and MindSpore's checkpoint of the optimizer carries the
    global step: 3 steps, save, a new optimizer loads it and runs 3 more = 6 steps in one go."""
    prob = problem(43, STEPS, np.float64)
    kw = dict(learning_rate=2.0 ** -6, momentum=0.5, bias_correction=True, initial_accumulator_value=0.0)
    whole, resumed, got = resume_from_checkpoint(lambda ps: RMSProp(ps, **kw), prob, STEPS, 3,
                                                 str(tmp_path / "opt.ckpt"))
    assert int(resumed.global_step.asnumpy().reshape(())) == STEPS
    for a, b in zip(got, whole):
        np.testing.assert_array_equal(a, b)


class _Decay(nn.Cell):
    """A dynamic weight decay (MindSpore applies it as g + wd * w in its own ops, before the launch)."""

    def construct(self, global_step):
        return ms.ops.cast(global_step, ms.float32).reshape(()) * 0.0 + 0.1


def test_maximize_with_mindspores_own_decay_negates_before_it(mode):
    """With a dynamic weight decay MindSpore's ops decay before the launch, so the kernel cannot negate
    first: the graph negates the gradients before the decay (torch's order, ``-g + wd * w``). With a
    number the kernel does both, maximize first. Both equal the reference."""
    prob = problem(44, STEPS)
    results = {}
    for label, wd in (("dynamic", _Decay()), ("number", 0.1)):
        ps = ms_params(prob.params)
        opt = RMSProp(ps, learning_rate=0.01, momentum=0.9, weight_decay=wd, maximize=True)
        layout = config_layout()
        in_config = {float(launch.config.asnumpy()[layout.index("maximize")]) for launch in opt._plan.launches}
        assert (opt._negate, in_config) == ((True, {0.0}) if label == "dynamic" else (False, {1.0}))
        results[label] = run_ms(opt, ps, prob, STEPS)
    plain = RMSProp(ms_params(prob.params), learning_rate=0.01, momentum=0.9, maximize=True)
    want, _ = _reference(plain, prob, [0.01] * STEPS, STEPS, wd=0.1)
    for label, got in results.items():
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6, err_msg=label)
    # negating after MindSpore's decay (-(g + wd * w)) would be far off
    wrong, _ = _reference(plain, prob, [0.01] * STEPS, STEPS, wd=-0.1)
    assert max(np.abs(a - b).max() for a, b in zip(results["dynamic"], wrong)) > 1e-3
