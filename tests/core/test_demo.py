"""The README's main job runs and reproduces the D2L numbers."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_and_prints_d2l_result():
    out = subprocess.run([sys.executable, "-m", "rmsprop_ops.demo", "--steps", "60"], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    assert "-> epoch 20, x1 -0.010599, x2 0.000000" in out
    first, final = (float(x) for x in out.rsplit("-> mse ", 1)[1].split(" -> "))
    assert final < 0.5 * first
