"""Calls over many tensors: the memory-overlap check orders thousands of address ranges (a radix sort past a
few dozen), and the binding and the kernel keep their per-call buffers per thread between calls. Checked
here against a plain Python model of the documented check (ranges in call order, stably sorted by start,
swept for an overlap involving a written buffer; the later argument named, a scalar before a tensor), on
calls whose addresses differ in many bytes (small heap arrays beside large mmap-ed ones), and with a call
made from inside another call (a DLPack producer that steps another optimizer)."""

from __future__ import annotations

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops.reference import rmsprop_step

ROLES = ("params", "grads", "mean_squares", "moments")
HP = dict(rho=0.9, epsilon=1e-6, momentum=0.9)


def sizes_for(rng, n):
    # Mostly small arrays (the allocator's heap) and a few of 1-2 MiB (mmap-ed far away): addresses that
    # differ in low and high bytes alike.
    return [int(rng.choice([1, 3, 16, 100, 4096])) if rng.random() > 0.05 else int(rng.integers(1 << 18, 1 << 19))
            for _ in range(n)]


def make_call(rng, n):
    sizes = sizes_for(rng, n)
    return {
        "params": [rng.standard_normal(s).astype(np.float32) for s in sizes],
        "grads": [rng.standard_normal(s).astype(np.float32) for s in sizes],
        "mean_squares": [rng.random(s).astype(np.float32) for s in sizes],
        "moments": [rng.standard_normal(s).astype(np.float32) for s in sizes],
    }


def expected_overlap(call, lr=None):
    """The message the core's overlap check gives for ``call``, or None: the documented rule, in Python."""
    ranges = []  # (lo, hi, written, name), pushed in call order: set by set, role by role, scalars after set 0
    for k in range(len(call["params"])):
        for role in ROLES:
            a = call[role][k]
            if a.size:
                lo = a.__array_interface__["data"][0]
                ranges.append((lo, lo + a.nbytes, role != "grads", f"{role}[{k}]"))
        if k == 0 and lr is not None and not isinstance(lr, float):
            lo = lr.__array_interface__["data"][0]
            ranges.append((lo, lo + lr.nbytes, False, "lr"))
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])  # stable: ties keep call order
    far_any = far_written = None
    for i in order:
        lo, hi, written, name = ranges[i]
        hit = None
        if far_written is not None and lo < far_written[1]:
            hit = far_written
        elif written and far_any is not None and lo < far_any[1]:
            hit = far_any
        if hit is not None:
            first, second = (hit, ranges[i]) if hit[3] == "lr" and name != "lr" else (ranges[i], hit)
            return f"{first[3]}: memory overlaps {second[3]}"
        if far_any is None or hi > far_any[1]:
            far_any = ranges[i]
        if written and (far_written is None or hi > far_written[1]):
            far_written = ranges[i]
    return None


def reference_step(call, lr=0.01):
    """The float64 NumPy reference over every set of ``call`` (arrays replaced by the float64 results)."""
    for k in range(len(call["params"])):
        out = rmsprop_step(call["params"][k], call["grads"][k], call["mean_squares"][k], moment=call["moments"][k],
                           lr=lr, **HP)
        call["params"][k], call["mean_squares"][k], call["moments"][k] = out["param"], out["mean_square"], out["moment"]


def step(call, lr=0.01):
    rmsprop_ops.rmsprop_multi_(call["params"], call["grads"], call["mean_squares"], moments=call["moments"],
                               lr=lr, **HP)


def snapshot(call):
    return {role: [a.copy() for a in call[role]] for role in ROLES}


@pytest.mark.parametrize("seed", range(3))
def test_a_large_call_without_overlap_matches_the_reference(seed):
    rng = np.random.default_rng(seed)
    call = make_call(rng, 400)
    want = {role: [a.astype(np.float64) for a in call[role]] for role in ROLES}
    for _ in range(2):
        step(call)
        reference_step(want)
    for role in ("params", "mean_squares", "moments"):
        for k, (got, ref) in enumerate(zip(call[role], want[role])):
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6, err_msg=f"{role}[{k}]")


@pytest.mark.parametrize("seed", range(24))
def test_a_planted_overlap_is_named_like_the_reference(seed):
    """Two arguments share memory, anywhere in a call of a few hundred sets: refused with the names the
    documented rule gives (or accepted where the rule accepts: two gradients may share memory)."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(70, 300))
    call = make_call(rng, n)
    k1, k2 = (int(x) for x in rng.choice(n, 2, replace=seed % 4 == 0))
    r1, r2 = (ROLES[int(x)] for x in rng.choice(4, 2, replace=k1 != k2))
    size = call["params"][k2].size
    # (k2, r2)'s array becomes a view into a buffer that (k1, r1)'s array also lies in, shifted or not.
    base = rng.standard_normal(call["params"][k1].size + size + 8).astype(np.float32)
    shift = int(rng.integers(0, call["params"][k1].size + 1)) if seed % 3 else 0
    call[r1][k1] = base[: call["params"][k1].size]
    call[r2][k2] = base[shift: shift + size]
    want = expected_overlap(call)
    before = snapshot(call)
    if want is None:
        step(call)
        return
    with pytest.raises(ValueError) as info:
        step(call)
    assert str(info.value).startswith(want), (str(info.value), want)
    for role in ROLES:
        for got, old in zip(call[role], before[role]):
            np.testing.assert_array_equal(got, old)


def test_the_same_array_twice_names_the_later_argument():
    rng = np.random.default_rng(7)
    call = make_call(rng, 200)
    call["params"][150] = call["params"][20]
    call["grads"][150] = call["grads"][20]
    call["mean_squares"][150] = call["mean_squares"][20].copy()
    call["moments"][150] = call["moments"][20].copy()
    with pytest.raises(ValueError, match=r"^params\[150\]: memory overlaps params\[20\]"):
        step(call)
    assert expected_overlap(call).startswith("params[150]: memory overlaps params[20]")


def test_gradients_may_share_memory():
    rng = np.random.default_rng(8)
    call = make_call(rng, 200)
    call["params"][120] = call["params"][120][:1].copy()
    for role in ("grads", "mean_squares", "moments"):
        call[role][120] = call[role][120][:1].copy()
    call["grads"][120] = call["grads"][3][:1]  # read twice, written never: allowed
    assert expected_overlap(call) is None
    step(call)


def test_a_learning_rate_inside_a_param_is_named_first():
    rng = np.random.default_rng(9)
    call = make_call(rng, 150)
    k = 90
    lr = call["params"][k][:1]
    want = expected_overlap(call, lr)
    assert want == f"lr: memory overlaps params[{k}]"
    with pytest.raises(ValueError, match=rf"^lr: memory overlaps params\[{k}\]"):
        step(call, lr=lr)


class SteppingProducer:
    """A DLPack producer whose __dlpack__ runs another optimizer step (a call inside a call) first."""

    def __init__(self, array, inner):
        self.array, self.inner, self.calls = array, inner, 0

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()

    def __dlpack__(self, **kwargs):
        self.calls += 1
        step(self.inner)
        return self.array.__dlpack__(**kwargs)


def test_a_call_made_inside_a_call_leaves_both_correct():
    rng = np.random.default_rng(10)
    outer, inner = make_call(rng, 300), make_call(rng, 250)
    want_outer, want_inner = snapshot(outer), snapshot(inner)
    step(want_inner)
    step(want_outer)
    outer["grads"][123] = SteppingProducer(outer["grads"][123], inner)
    step(outer)
    assert outer["grads"][123].calls == 1
    for call, want in ((outer, want_outer), (inner, want_inner)):
        for role in ("params", "mean_squares", "moments"):
            for got, ref in zip(call[role], want[role]):
                np.testing.assert_array_equal(got, ref)


def test_shrinking_and_growing_calls_on_one_thread():
    """The per-thread buffers keep their size between calls: a small call after a large one (and the other
    way) reads none of the earlier call's descriptors."""
    rng = np.random.default_rng(11)
    for n in (500, 3, 0, 64, 65, 1, 700):
        call = make_call(rng, n)
        want = snapshot(call)
        step(call)
        reference_step(want)
        for role in ("params", "mean_squares", "moments"):
            for got, ref in zip(call[role], want[role]):
                np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_a_huge_call_then_small_ones():
    """A call over 150000 one-element tensors (its per-thread buffers past the size the library keeps
    between calls, so they are given back), then small calls: every update still lands where it should."""
    rng = np.random.default_rng(12)
    for n in (150_000, 5, 2000):
        call = {role: [rng.random(1).astype(np.float32) for _ in range(n)] for role in ROLES}
        want = snapshot(call)
        step(call)
        reference_step(want)
        got = np.concatenate(call["params"])
        np.testing.assert_allclose(got, np.concatenate(want["params"]), rtol=1e-5, atol=1e-6)
