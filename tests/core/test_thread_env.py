"""$RMSPROP_OPS_NUM_THREADS is read like set_num_threads' argument: an integer in [1, 1024]. A larger one is
capped at 1024, anything else gives the CPU count; both with one line on stderr naming the variable. Never a
crash, an error at the first update, or a million threads. Each case runs in its own process (the
variable is read once per process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CPUS = min(len(os.sched_getaffinity(0)), 1024)

# The child updates a small tensor (so that a capped 1024 starts only the threads the size needs), checks
# the result against the same update on one thread, and prints the thread count the core uses.
CHILD = """
import numpy as np, rmsprop_ops
def step():
    p = np.linspace(-1, 1, 4099, dtype=np.float32); g = np.cos(p); ms = np.abs(g)
    rmsprop_ops.rmsprop_(p, g, ms, lr=0.1, rho=0.9, epsilon=1e-6)
    return p
n = rmsprop_ops.get_num_threads()
got = step()
rmsprop_ops.set_num_threads(1)
assert np.array_equal(got, step())
rmsprop_ops._core.set_num_threads(0)  # back to the default: consulted again, the same, no second message
assert rmsprop_ops.get_num_threads() == n
print(n)
"""

# value -> (threads, what stderr says: None for nothing)
CASES = {
    "1": (1, None),
    "2": (2, None),
    " 3 ": (3, None),
    "+2": (2, None),
    "1024": (1024, None),
    "": (CPUS, None),  # blank: as if unset
    "   ": (CPUS, None),
    "1025": (1024, "above the maximum of 1024 threads; using 1024"),
    "1000000000": (1024, "above the maximum of 1024 threads; using 1024"),
    "99999999999999999999999999": (1024, "above the maximum of 1024 threads; using 1024"),
    "0": (CPUS, "is not an integer in [1, 1024]"),
    "-0": (CPUS, "is not an integer in [1, 1024]"),
    "-3": (CPUS, "is not an integer in [1, 1024]"),
    "abc": (CPUS, "is not an integer in [1, 1024]"),
    "1e9": (CPUS, "is not an integer in [1, 1024]"),
    "4.0": (CPUS, "is not an integer in [1, 1024]"),
    "2x": (CPUS, "is not an integer in [1, 1024]"),
    "0x10": (CPUS, "is not an integer in [1, 1024]"),
    "+": (CPUS, "is not an integer in [1, 1024]"),
    "nan": (CPUS, "is not an integer in [1, 1024]"),
}


def run_child(value):
    env = dict(os.environ, RMSPROP_OPS_NUM_THREADS=value)
    return subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("value", list(CASES), ids=[repr(v) for v in CASES])
def test_num_threads_variable(value):
    threads, message = CASES[value]
    proc = run_child(value)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) == threads
    lines = [line for line in proc.stderr.splitlines() if "RMSPROP_OPS_NUM_THREADS" in line]
    if message is None:
        assert not lines, proc.stderr
    else:
        assert len(lines) == 1, proc.stderr  # once, however often the default is consulted
        assert message in lines[0] and value in lines[0], lines[0]
        if threads == CPUS:
            assert f"using {CPUS} " in lines[0]
