"""Fuzzes ``rmsprop_ops.mindspore.RMSProp``'s step-level promises (run by test_ms_launch_refusal.py in a
subprocess): random parameter groups (1-4, each with its own learning rate or none), dtypes (float32,
float64, float16) mixed within groups, shapes, flat or per-parameter state, centered or not; then either a
healthy step, or one group's learning rate set to NaN / inf / a negative value first.

Promises checked: a step with a refused learning rate anywhere changes no Parameter of the optimizer (params,
state, global_step) and counts no launch; a healthy step advances global_step, moves every parameter that
has a nonzero gradient and launches once per (learning rate, dtype) group.

Usage: fuzz_ms_optimizer.py SEED EXAMPLES [graph|pynative]
"""

from __future__ import annotations

import itertools
import sys

import numpy as np

import mindspore as ms
from mindspore import Parameter, Tensor

import rmsprop_ops.mindspore as rms

DTYPES = [np.float32, np.float64, np.float16]
SHAPES = [(1,), (3,), (2, 2), (9,), (4, 5)]
_names = itertools.count()
OUTCOMES: dict[str, int] = {}


def layout(rng):
    """A random optimizer layout and fault (a seeded generator: every case equally likely)."""
    groups = []
    for _ in range(rng.integers(1, 5)):
        params = []
        for _ in range(rng.integers(1, 4)):
            shape, dtype = SHAPES[rng.integers(len(SHAPES))], DTYPES[rng.integers(len(DTYPES))]
            data = np.linspace(-1, 1, int(np.prod(shape))).reshape(shape).astype(dtype)
            params.append(Parameter(Tensor(data), name=f"q{next(_names)}"))
        group = {"params": params}
        if rng.random() < 0.5:
            group["lr"] = float(rng.choice([0.01, 0.2]))
        groups.append(group)
    faults = [None, float("nan"), float("inf"), -0.5]
    return dict(groups=groups, flat=bool(rng.random() < 0.5), centered=bool(rng.random() < 0.5),
                momentum=float(rng.choice([0.0, 0.9])), fault=faults[rng.integers(len(faults))],
                where=int(rng.integers(sum(len(g["params"]) for g in groups))),
                grouped=len(groups) > 1 or bool(rng.random() < 0.5))


def _wait(outputs):
    for out in outputs if isinstance(outputs, tuple) else (outputs,):
        if isinstance(out, Tensor):
            out.asnumpy()


def _snapshot(opt):
    return {p.name: p.asnumpy().astype(np.float64).copy() for p in opt.get_parameters()}


def run(case):
    groups = case["groups"]
    params = [p for g in groups for p in g["params"]]
    arg = groups if case["grouped"] else params
    opt = rms.RMSProp(arg, learning_rate=0.05, momentum=case["momentum"], centered=case["centered"],
                      flat_state=case["flat"])
    grads = tuple(Tensor(np.full(p.shape, 0.5, p.asnumpy().dtype)) for p in params)
    if case["fault"] is not None:
        lr = opt.get_lr_parameter(params[case["where"]])
        ms.ops.assign(lr, Tensor(np.full(lr.shape, case["fault"], np.float32)))
    before, launches = _snapshot(opt), rms.kernel_stats()["launches"]
    try:
        _wait(opt(grads))
        outcome = "ok"
    except RuntimeError as e:
        assert case["fault"] is not None, f"a healthy step failed: {e}"
        outcome = "refused"
    after = _snapshot(opt)
    if outcome == "refused":
        assert rms.kernel_stats()["launches"] == launches, "a launch of a refused step succeeded"
        for name, data in before.items():
            assert np.array_equal(after[name], data, equal_nan=True), f"{name} changed by a refused step"
    else:
        assert case["fault"] is None, f"a step with lr {case['fault']} was taken"
        assert rms.kernel_stats()["launches"] - launches == len(opt._plan.launches)
        assert after["global_step"][0] == before["global_step"][0] + 1
        for p in params:
            assert not np.array_equal(after[p.name], before[p.name]), f"{p.name} did not move"
    OUTCOMES[outcome] = OUTCOMES.get(outcome, 0) + 1


if __name__ == "__main__":
    rng = np.random.default_rng(int(sys.argv[1]))
    mode = sys.argv[3] if len(sys.argv) > 3 else "graph"
    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    for _ in range(int(sys.argv[2])):
        run(layout(rng))
    print("outcomes:", OUTCOMES)
    print("fuzz ok")
