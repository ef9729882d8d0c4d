"""Conventions, fields set on their own and moving averages in Paddle's legacy IR (FLAGS_enable_pir_api=0;
issue #21): a static program built there trains like the neutral optimizer, TF1 state and averages
survive ``paddle.static.save`` / ``load``, and the core's rule options match the float64 reference. The
flag is read when Paddle is imported, so the cases run in a subprocess
(tests/scripts/paddle_conventions_legacy_ir.py)."""

import json
import os
import subprocess
import sys

import pytest

import rmsprop_ops

pytest.importorskip("paddle")

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "scripts", "paddle_conventions_legacy_ir.py")


def test_legacy_ir_programs_follow_every_convention():
    proc = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, FLAGS_enable_pir_api="0"))
    assert proc.returncode == 0 and "legacy conventions ok" in proc.stdout, (proc.stdout[-3000:], proc.stderr[-5000:])
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    cases = [r for r in rows if "case" in r]
    assert {r["case"]["convention"] for r in cases} == set(rmsprop_ops.CONVENTIONS)
    assert any(r["case"].get("use_ema") for r in cases)
    for row in cases:
        assert row["err"] <= 2e-6 and not row["missing"], row
        kw = row["case"]
        kind = "_centered" if kw.get("centered") else ""
        multi = "_multi_flat" if kw.get("flat_state") else ("_static" if kw.get("fused") is False else "_multi_static")
        assert row["ops"] and set(row["ops"]) == {f"rmsprop_ops_rmsprop{kind}{multi}"}, row
    options = [r for r in rows if "option_case" in r]
    assert len(options) == 3
    for row in options:
        assert row["err"] <= 1e-12 and not row["missing"], row
        assert row["counters"] == ([8.0] if row["option_case"].get("bias_correction") else []), row
    (save_load,) = [r["save_load"] for r in rows if "save_load" in r]
    assert save_load == {"start": 1.0, "param_err": 0.0, "ema_err": 0.0}
