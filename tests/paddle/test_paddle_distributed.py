"""Data parallelism: two processes via ``python -m paddle.distributed.launch`` (gloo over loopback)."""

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("paddle")

pytestmark = [pytest.mark.paddle, pytest.mark.slow]

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "paddle_dist_train.py")


@pytest.mark.parametrize("mode,wrapper", [("fused", "dataparallel"), ("per_param", "dataparallel"),
                                          ("fused", "fleet")])
def test_two_process_data_parallel(tmp_path, mode, wrapper):
    env = dict(os.environ, RMSPROP_OPS_DIST_OUT=str(tmp_path))
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
           "--log_dir", str(tmp_path / "log"), SCRIPT, mode, wrapper]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    logs = "".join((tmp_path / "log" / f).read_text() for f in sorted(os.listdir(tmp_path / "log")))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + logs[-3000:]
    r0, r1 = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    init = np.random.RandomState(3)
    for i in range(4):
        # Replicas see the same all-reduced gradient and run the same op: bitwise identical.
        np.testing.assert_array_equal(r0[f"p{i}"], r1[f"p{i}"])
        # One process on the global batch: its gradient is summed in another order than the all-reduced
        # mean of two half-batch means, so it differs by rounding, which 12 centered momentum steps amplify.
        np.testing.assert_allclose(r0[f"p{i}"], r0[f"single{i}"], rtol=1e-5, atol=1e-5)
        assert not np.allclose(r0[f"p{i}"], init.uniform(-0.5, 0.5, r0[f"p{i}"].shape))  # it trained
