"""Where epsilon goes: ``lr * g / sqrt(ms + eps)``, as MindSpore documents ``nn.RMSProp`` and as its GPU,
Ascend and centered kernels compute it, for every element of every tensor.

MindSpore 2.10's CPU ``ApplyRMSProp`` disagrees with itself. It splits a tensor into chunks, one per task of
its thread pool, and in each chunk ``[start, end)`` its 8-wide AVX loop computes ``lr * g / (sqrt(ms) + eps)``
for the first ``(end - start) // 8 * 8`` elements while its scalar tail computes the documented form. The
split itself changes: one chunk for the first five launches of a kernel, then 2, 4, ... chunks while
MindSpore times the alternatives (five launches each), then the fastest. So for a tensor of ``n`` elements
the first launch puts epsilon outside the root for elements ``[0, n - n % 8)``, later launches elsewhere,
and tensors of fewer than 8 elements always get the documented form.

The drop-in follows the documented form everywhere (see docs/mindspore.md). These tests pin down where
MindSpore's CPU kernel differs, and check parity at mindcv's epsilon (1e-3), where the difference is
visible: against the float64 reference everywhere, against nn.RMSProp for centered updates and for every
element MindSpore updated in the documented form at every step.
"""

from __future__ import annotations

import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, Tensor, nn

from rmsprop_ops.mindspore import RMSProp
from rmsprop_ops.reference import rmsprop_step

pytestmark = pytest.mark.mindspore

# Tensor sizes and where MindSpore's AVX blocks end: 4 -> no block, 8 -> no tail, 9 -> one tail element.
SIZES = [4, 8, 9, 15, 17, 100]


def _blocks(n):
    """Elements MindSpore's CPU AVX loop updates (the rest is its scalar tail)."""
    return n - n % 8


def _one_step_moves(cls, centered):
    """lr 1, decay 0.9, eps 1, g 1, one step from MindSpore's initial state: how far each element moves."""
    params = [Parameter(Tensor(np.zeros(n, np.float32)), name=f"w{n}") for n in SIZES]
    opt = cls(params, learning_rate=1.0, decay=0.9, epsilon=1.0, centered=centered)
    opt(tuple(Tensor(np.ones(n, np.float32)) for n in SIZES))
    return [-p.asnumpy().astype(np.float64) for p in params]


def test_mindspore_cpu_kernel_puts_epsilon_outside_the_root_in_its_blocks_of_8(mode):
    inside, outside = 1 / np.sqrt(1.0 + 1.0), 1 / (np.sqrt(1.0) + 1.0)  # ms = 0.9 * 1 + 0.1 * 1 = 1
    for n, moved in zip(SIZES, _one_step_moves(nn.RMSProp, centered=False)):
        np.testing.assert_allclose(moved[:_blocks(n)], outside, rtol=1e-6, err_msg=f"size {n}")
        np.testing.assert_allclose(moved[_blocks(n):], inside, rtol=1e-6, err_msg=f"size {n}")
    for moved in _one_step_moves(RMSProp, centered=False):
        np.testing.assert_allclose(moved, inside, rtol=1e-6)
    # Centered, MindSpore's CPU kernel follows its documentation in blocks and tail alike, and so do we.
    centered = 1 / np.sqrt(1.0 - 0.1 ** 2 + 1.0)  # ms - mg^2 + eps with mg = 0.1
    for ref, ours in zip(_one_step_moves(nn.RMSProp, True), _one_step_moves(RMSProp, True)):
        np.testing.assert_allclose(ref, centered, rtol=1e-6)
        np.testing.assert_allclose(ours, centered, rtol=1e-6)


STEPS = 12
HP = dict(learning_rate=0.01, decay=0.9, momentum=0.9, epsilon=1e-3)
# Per step against the float64 reference fed the same state: a few float32 roundings.
REF_TOL = dict(rtol=4e-6, atol=1e-7)
# Against nn.RMSProp where it follows the same form: the parity suite's tolerance (test_ms_parity.py).
MS_TOL = dict(rtol=2e-6, atol=1e-7)


def _train(cls, centered, grads):
    rng = np.random.default_rng(3)
    params = [Parameter(Tensor(rng.standard_normal(n).astype(np.float32)), name=f"w{n}") for n in SIZES]
    opt = cls(params, centered=centered, **HP)
    history = []

    def copy(t):  # asnumpy() may share the Parameter's memory, which the next step overwrites
        return t.asnumpy().copy()

    for g in grads:
        before = [(copy(p), copy(s), copy(m), copy(c) if centered else None)
                  for p, s, m, c in zip(params, opt.ms, opt.moment, opt.mg if centered else params)]
        opt(tuple(Tensor(x) for x in g))
        after = [(copy(p), copy(s), copy(m)) for p, s, m in zip(params, opt.ms, opt.moment)]
        history.append((before, after))
    return history


def _reference(before, g, centered, eps_in_sqrt):
    p, s, m, c = before
    return rmsprop_step(p, g, s, lr=np.float32(HP["learning_rate"]), rho=HP["decay"], epsilon=HP["epsilon"],
                        momentum=HP["momentum"], moment=m, centered=centered, mean_grad=c,
                        eps_in_sqrt=eps_in_sqrt)


def _mindspore_form(before, after, g, centered):
    """Per element, which form nn.RMSProp's step took, fed its own state: 1 the documented one (eps inside
    the root), 0 eps outside, -1 where the two forms agree within the tolerance."""
    got = after[2]
    inside, outside = (_reference(before, g, centered, form)["moment"] for form in (True, False))
    tol = REF_TOL["atol"] + REF_TOL["rtol"] * np.abs(got)
    near_in, near_out = np.abs(got - inside), np.abs(got - outside)
    assert np.all(np.minimum(near_in, near_out) <= tol), "an element fits neither form"
    return np.where(np.abs(inside - outside) <= tol, -1, (near_in < near_out).astype(int))


@pytest.mark.parametrize("centered", [False, True], ids=["plain", "centered"])
def test_parity_at_mindcv_epsilon(mode, centered):
    rng = np.random.default_rng(7)
    grads = [[(0.3 * rng.standard_normal(n)).astype(np.float32) for n in SIZES] for _ in range(STEPS)]
    ours, ref = _train(RMSProp, centered, grads), _train(nn.RMSProp, centered, grads)
    documented = [np.ones(n, bool) for n in SIZES]  # elements MindSpore kept in the documented form so far
    outside_seen = 0
    for step, g in enumerate(grads):
        for k, n in enumerate(SIZES):
            (ob, oa), (rb, ra) = (ours[step][0][k], ours[step][1][k]), (ref[step][0][k], ref[step][1][k])
            expect = _reference(ob, g[k], centered, eps_in_sqrt=True)
            for got, key in zip(oa, ("param", "mean_square", "moment")):
                np.testing.assert_allclose(got, expect[key], **REF_TOL, err_msg=f"ours {key} size {n} step {step}")
            form = _mindspore_form(rb, ra, g[k], centered)
            if centered or n < 8:
                assert np.all(form != 0), f"size {n} step {step}: eps outside the root"
            else:
                documented[k] &= form == 1
            outside_seen += int(np.sum(form == 0))
            same = documented[k]
            for got, want, key in zip(oa, ra, ("param", "mean_square", "moment")):
                np.testing.assert_allclose(got[same], want[same], **MS_TOL, err_msg=f"{key} size {n} step {step}")
    if not centered:
        # The first launch alone puts eps outside the root for every full block of 8 from each tensor's start.
        assert outside_seen >= sum(_blocks(n) for n in SIZES), outside_seen


def test_the_difference_vanishes_at_mindspores_default_epsilon():
    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(9)
    grads = [[(0.3 * rng.standard_normal(n)).astype(np.float32) for n in SIZES] for _ in range(STEPS)]
    finals = []
    for cls in (RMSProp, nn.RMSProp):
        params = [Parameter(Tensor(np.linspace(-1, 1, n).astype(np.float32)), name=f"w{n}") for n in SIZES]
        opt = cls(params, learning_rate=0.01, momentum=0.9)  # epsilon 1e-10
        for g in grads:
            opt(tuple(Tensor(x) for x in g))
        finals.append([p.asnumpy() for p in params])
    for ours, ref in zip(*finals):
        np.testing.assert_allclose(ours, ref, **MS_TOL)
