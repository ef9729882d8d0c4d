"""Run by test_paddle_conventions_legacy_ir.py with FLAGS_enable_pir_api=0: conventions in Paddle's legacy IR.

For a table of cases (every convention; the fields set on their own; the moving averages with each
schedule), builds the static program with ``rmsprop_ops.paddle.RMSProp`` in the legacy IR, trains it next
to the neutral optimizer fed the same gradients (tests/support/paddle_conventions.py), and prints one JSON
line per case with the largest difference of every step's parameters and every state buffer; the core's
rule options (maximize, nesterov, bias_correction with its persistable update counter) in float64 against
the float64 reference (``option_case`` lines, with the counter's final value). Then checks
that a TF1 program's state (the mean square starting at ones) and its averages survive
``paddle.static.save`` / ``load``.
"""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

import numpy as np  # noqa: E402
import paddle  # noqa: E402

import paddle_conventions as C  # noqa: E402
import rmsprop_ops  # noqa: E402
from rmsprop_ops.paddle import RMSProp  # noqa: E402

STEPS = 8
CASES = [dict(convention=c, learning_rate=0.01, momentum=m, centered=centered, weight_decay=wd, **layout)
         for i, c in enumerate(sorted(rmsprop_ops.CONVENTIONS))
         for m, centered, wd, layout in [(0.0, False, 0.05, {}), (0.9, False, 0.0, {"flat_state": True}),
                                         (0.5, True, 0.05, {"fused": False})]]
CASES += [
    dict(convention="paddle", learning_rate=0.01, momentum=0.9, initial_accumulator_value=1.0, eps_in_sqrt=False),
    dict(convention="paddle", learning_rate=0.01, momentum=0.9, lr_in_momentum=False, weight_decay_mode="decoupled",
         weight_decay=0.1),
    dict(convention="paddle", learning_rate=0.01, maximize=True, weight_decay_mode="l1", weight_decay=0.1),
] + [dict(convention="tf1", learning_rate=0.02, momentum=0.9, use_ema=True, ema_momentum=0.7, ema_schedule=s,
          ema_overwrite_frequency=f, **layout)
     for s, f, layout in [("keras", None, {}), ("tf1", 3, {"flat_state": True}), ("constant", None, {"fused": False})]]


# The core's rule options, float64, hyper-parameters float32 holds exactly: against the float64 reference.
HYPER = dict(learning_rate=2.0 ** -6, rho=0.875, epsilon=2.0 ** -20)
OPTION_CASES = [
    dict(HYPER, maximize=True, nesterov=True, momentum=0.75),
    dict(HYPER, convention="torch", bias_correction=True, momentum=0.75, flat_state=True),
    dict(HYPER, bias_correction=True, centered=True, momentum=0.5, initial_accumulator_value=0.125, fused=False),
]


def _err(run, ref):
    worst = 0.0
    for a, b in zip(run.history, ref.history):
        worst = max(worst, max(float(np.max(np.abs(x - y))) for x, y in zip(a, b)))
    missing = sorted(set(ref.state) - set(run.state))
    for key, value in ref.state.items():
        if key in run.state:
            worst = max(worst, float(np.max(np.abs(run.state[key] - value))))
    return worst, missing


def _save_load(tmp):
    prob = C.problem(seed=7, steps=6)
    kw = dict(convention="tf1", learning_rate=0.02, momentum=0.9, use_ema=True, ema_schedule="tf1")
    whole = C.run_static(prob, 6, **kw)
    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        params = [paddle.create_parameter(list(p.shape), "float32", default_initializer=paddle.nn.initializer.Assign(p))
                  for p in prob.init]
        feeds = [paddle.static.data(f"g{i}", list(p.shape), "float32") for i, p in enumerate(prob.init)]
        opt = RMSProp(**kw)
        opt.minimize(C.static_loss(params, feeds))
    names = [p.name for p in params]
    exe = paddle.static.Executor(paddle.CPUPlace())
    first, second = paddle.static.Scope(), paddle.static.Scope()
    start = None
    for scope, steps in ((first, range(3)), (second, range(3, 6))):
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            if start is None:
                ms = [v for v in opt._accumulators[opt._acc_name("mean_square")].values()]
                start = min(float(np.min(np.array(scope.var(v.name).get_tensor()))) for v in ms)
            else:
                paddle.static.load(main, os.path.join(tmp, "ckpt"), exe)
            for t in steps:
                cur = [np.array(scope.var(n).get_tensor()) for n in names]
                exe.run(main, feed=C.static_feed(prob.grads(cur, t)))
            if scope is first:
                paddle.static.save(main, os.path.join(tmp, "ckpt"))
    got = [np.array(second.var(n).get_tensor()) for n in names]
    by_param = {s.param: s.average for s in opt._static_averages}
    avgs = [np.array(second.var(by_param[n]).get_tensor()) for n in names]
    paddle.disable_static()
    return dict(start=start, param_err=max(float(np.max(np.abs(g - w))) for g, w in zip(got, whole.history[-1])),
                ema_err=max(float(np.max(np.abs(a - whole.state[f"ema.{i}"]))) for i, a in enumerate(avgs)))


def main():
    assert not paddle.framework.use_pir_api(), "run with FLAGS_enable_pir_api=0"
    for i, kw in enumerate(CASES):
        prob = C.problem(seed=100 + i, steps=STEPS)
        run = C.run_static(prob, STEPS, **kw)
        neutral = {k: v for k, v in kw.items() if k not in ("fused", "flat_state")}
        ref = C.run_neutral(prob, STEPS, **neutral)
        err, missing = _err(run, ref)
        ops = [op for op in run.extra["ops"] if op.startswith("rmsprop")]
        print(json.dumps(dict(case=kw, err=err, missing=missing, ops=ops)), flush=True)
    for i, kw in enumerate(OPTION_CASES):
        prob = C.problem(seed=200 + i, steps=STEPS, dtype="float64")
        run = C.run_static(prob, STEPS, **kw)
        ref = C.run_reference(prob, STEPS, **{k: v for k, v in kw.items() if k not in ("fused", "flat_state")})
        err, missing = _err(run, ref)
        scope = run.extra["scope"]
        counters = [float(np.array(scope.var(n).get_tensor())[0]) for n in scope.local_var_names()
                    if "bias_correction_step" in n]
        print(json.dumps(dict(option_case=kw, err=err, missing=missing, counters=counters)), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(dict(save_load=_save_load(tmp))), flush=True)
    print("legacy conventions ok")


if __name__ == "__main__":
    main()
