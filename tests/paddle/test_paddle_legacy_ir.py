"""Paddle's legacy IR static graph (FLAGS_enable_pir_api=0), still used by older programs: ``minimize``
builds our ops there, and training gives ``paddle.optimizer.RMSProp``'s numbers (parameters and
accumulators, as the PIR parity suite checks them). The flag is read when Paddle is imported, so the
cases run in a subprocess (tests/scripts/paddle_legacy_ir.py)."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("paddle")

pytestmark = pytest.mark.paddle

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "paddle_legacy_ir.py")


def test_legacy_ir_programs_train_like_paddle_rmsprop():
    proc = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, FLAGS_enable_pir_api="0"))
    assert proc.returncode == 0 and "legacy ok" in proc.stdout, (proc.stdout[-3000:], proc.stderr[-5000:])
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(rows) >= 8
    for row in rows:
        centered, momentum, wd, clip, lr, fused, flat = row["case"]
        assert row["param_err"] <= 1e-6 and row["acc_err"] <= 1e-6 * max(1.0, row["scale"]), row
        kind = "_centered" if centered else ""
        multi = "_multi_flat" if flat else ("_multi_static" if fused else "_static")
        assert row["ours"] and set(row["ours"]) == {f"rmsprop_ops_rmsprop{kind}{multi}"}, row
        assert "rmsprop" in row["theirs"], row
