"""rmsprop_ops.op_stats(): the core counts its successful update calls, tensor sets and elements per
device, whichever front end makes them (here the functional API; the Paddle and MindSpore suites check
their ops against the same counters)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops import _core

OK = dict(lr=0.1, rho=0.9, epsilon=1e-6)
ZERO = {"calls": 0, "tensor_sets": 0, "elements": 0}


def _set(n):
    return np.ones(n, np.float32), np.full(n, 0.5, np.float32), np.zeros(n, np.float32)


def test_counts_successful_calls_sets_and_elements_per_device():
    rmsprop_ops.reset_op_stats()
    assert rmsprop_ops.op_stats() == {**ZERO, "cpu": ZERO, "cuda": ZERO}
    rmsprop_ops.rmsprop_(*_set(7), **OK)
    ps, gs, mss = zip(*(_set(n) for n in (3, 0, 5)))
    rmsprop_ops.rmsprop_multi_(list(ps), list(gs), list(mss), **OK)
    want = {"calls": 2, "tensor_sets": 4, "elements": 15}
    assert rmsprop_ops.op_stats() == {**want, "cpu": want, "cuda": ZERO}


@pytest.mark.parametrize("call", [
    lambda: rmsprop_ops.rmsprop_(*_set(4), lr=0.1, rho=1.5, epsilon=1e-6),          # refused in Python
    lambda: rmsprop_ops.rmsprop_(np.ones(4, np.float32), np.ones(5, np.float32), np.zeros(4, np.float32), **OK),
    lambda: rmsprop_ops.rmsprop_multi_([], [], [], **OK),                           # nothing to run
])
def test_refused_and_empty_calls_do_not_count(call):
    rmsprop_ops.reset_op_stats()
    try:
        call()
    except (TypeError, ValueError):
        pass
    assert rmsprop_ops.op_stats()["calls"] == 0


def test_a_skipped_step_counts_and_the_bandwidth_probe_does_not():
    rmsprop_ops.reset_op_stats()
    p, g, ms = _set(6)
    rmsprop_ops.rmsprop_(p, g, ms, skip_update=np.array(True), **OK)  # the kernel reads the flag
    assert rmsprop_ops.op_stats()["cpu"] == {"calls": 1, "tensor_sets": 1, "elements": 6}
    _core.update([p], [g], [ms], None, None, None, list_names=True, bandwidth_probe=True)
    assert rmsprop_ops.op_stats()["calls"] == 1


def test_counts_are_exact_under_threads():
    rmsprop_ops.reset_op_stats()
    errors = []

    def work():
        try:
            p, g, ms = _set(10)
            for _ in range(200):
                rmsprop_ops.rmsprop_(p, g, ms, **OK)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert rmsprop_ops.op_stats()["cpu"] == {"calls": 800, "tensor_sets": 800, "elements": 8000}
