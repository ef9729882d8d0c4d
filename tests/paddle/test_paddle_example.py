"""examples/paddle_static_train.py runs, uses one fused custom op, and its loss falls."""

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("paddle")

pytestmark = pytest.mark.paddle

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "paddle_static_train.py")


def test_static_example_trains():
    run = subprocess.run([sys.executable, EXAMPLE, "--steps", "60"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "['custom_op.rmsprop_ops_rmsprop_centered_multi_static_'] for 4 parameters" in run.stdout
    losses = [float(v) for v in re.findall(r"loss ([0-9.]+)", run.stdout)]
    assert len(losses) == 4 and losses[-1] < 0.1 * losses[0]
