"""Side-by-side runs of ``rmsprop_ops.mindspore.RMSProp`` and the neutral ``rmsprop_ops.RMSProp`` (the
reference that is itself checked against the real frameworks) on the same noisy quadratic, shared by the
MindSpore convention tests."""

from __future__ import annotations

import dataclasses

import numpy as np

import rmsprop_ops
from cases import quadratic_problem

SHAPES = [(6,), (3, 4), (2, 1, 3)]
# fp32: both sides round every operation of the same rule in the same order, so they agree to a few ulp;
# the bound for the front ends is 2e-6. float64: to rounding.
TOL = {np.float32: dict(rtol=2e-6, atol=2e-7), np.float64: dict(rtol=1e-12, atol=1e-14)}


@dataclasses.dataclass
class Problem:
    params: list
    curv: list
    noise: list

    def grads(self, values, t, scale=1.0):
        return [scale * (c * p + n).astype(p.dtype) for p, c, n in zip(values, self.curv, self.noise[t])]


def problem(seed, steps, dtype=np.float32, shapes=SHAPES) -> Problem:
    params, curv, noise = quadratic_problem(seed, shapes, steps)
    cast = lambda xs: [np.asarray(x, dtype) for x in xs]  # noqa: E731
    return Problem(cast(params), cast(curv), [cast(n) for n in noise])


def ms_params(values, names=None):
    import mindspore as ms

    names = names or [f"w{i}" for i in range(len(values))]
    return [ms.Parameter(ms.Tensor(v.copy()), name=n) for v, n in zip(values, names)]


def run_ms(opt, params, prob: Problem, steps, scale=1.0):
    """``steps`` direct calls of a MindSpore optimizer; returns the params as NumPy. The gradients go in the
    optimizer's parameter order (with groups, MindSpore's is group by group)."""
    import mindspore as ms

    order = [next(i for i, p in enumerate(params) if p is q) for q in opt._parameters]
    for t in range(steps):
        grads = prob.grads([p.asnumpy() for p in params], t, scale)
        opt(tuple(ms.Tensor(grads[i]) for i in order))
    return [p.asnumpy() for p in params]


def run_neutral(opt, arrays, prob: Problem, steps, scale=1.0):
    for t in range(steps):
        opt.step(prob.grads(arrays, t, scale))
    return arrays


def neutral(prob: Problem, groups=None, **kw):
    """A neutral optimizer over copies of the problem's params (``groups``: lists of positions with their
    overrides, as ``[(positions, overrides), ...]``)."""
    arrays = [p.copy() for p in prob.params]
    if groups is None:
        return rmsprop_ops.RMSProp(arrays, **kw), arrays
    spec = [{"params": [arrays[i] for i in idx], **extra} for idx, extra in groups]
    return rmsprop_ops.RMSProp(spec, **kw), arrays


def compare_states(ms_opt, ref, tol, where=""):
    """Every state buffer the neutral optimizer keeps against the MindSpore optimizer's (in nn.RMSProp's
    per-parameter names, either layout)."""
    ours = ms_opt.state_per_parameter()
    sd = ref.state_dict()
    names = [p.name for p in ms_opt._parameters]
    compared = 0
    for key, value in sd.items():
        kind, _, index = key.rpartition(".")
        if kind not in ("mean_square", "moment", "mean_grad"):
            continue
        np.testing.assert_allclose(ours[f"{kind}.{names[int(index)]}"], value, **tol, err_msg=f"{where} {key}")
        compared += 1
    return compared


def resume_from_checkpoint(make, prob: Problem, steps, split, path):
    """``steps`` steps of ``make(params)`` in one go, and ``split`` steps, ``ms.save_checkpoint`` of the
    optimizer, a new optimizer over the reached params loading it before its first step
    (``load_param_into_net``) and the remaining steps. Returns (whole, resumed optimizer, resumed params)."""
    import mindspore as ms

    whole = ms_params(prob.params)
    run_ms(make(whole), whole, prob, steps)
    first = ms_params(prob.params)
    opt = make(first)
    run_ms(opt, first, prob, split)
    ms.save_checkpoint(opt, path)
    second = ms_params([p.asnumpy() for p in first])
    resumed = make(second)
    assert not ms.load_param_into_net(resumed, ms.load_checkpoint(path))[0]   # every entry loaded
    run_ms(resumed, second, Problem(prob.params, prob.curv, prob.noise[split:]), steps - split)
    return [p.asnumpy() for p in whole], resumed, [p.asnumpy() for p in second]
