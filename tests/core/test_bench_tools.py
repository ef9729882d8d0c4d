"""The benchmark's tools: the C loop it compares against computes the same update, every part plans its
run without importing a framework, and the report turns results into verdicts and a docs section."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import rmsprop_ops

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCH)

import report  # noqa: E402


@pytest.fixture(scope="module")
def cloop(tmp_path_factory):
    from _cloop import CLoop

    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("no C compiler")
    os.environ["RMSPROP_OPS_BENCH_CACHE"] = str(tmp_path_factory.mktemp("cloop"))
    loop = CLoop.build()
    if loop is None:
        pytest.skip("the C compiler cannot build OpenMP code")
    return loop


@pytest.mark.parametrize("kind", ["plain", "momentum", "centered+momentum"])
@pytest.mark.parametrize("sizes", [[1000], [17, 0, 300, 64]])
def test_c_loop_computes_the_update_it_is_compared_with(cloop, kind, sizes):
    # The bar must do the same work: the same rule, every buffer, every set. FMA contraction is allowed
    # there (the compiler's default), so results agree to a few float32 roundings of the O(1) operands
    # (p - mom can cancel), not bit for bit.
    centered, momentum = kind == "centered+momentum", 0.0 if kind == "plain" else 0.9
    arrays = {}
    for who in ("ours", "loop"):
        r = np.random.default_rng(1)
        arrays[who] = dict(p=[r.standard_normal(n, dtype=np.float32) for n in sizes],
                           g=[r.standard_normal(n, dtype=np.float32) for n in sizes],
                           ms=[np.abs(r.standard_normal(n, dtype=np.float32)) for n in sizes],
                           mom=[r.standard_normal(n, dtype=np.float32) for n in sizes] if momentum else None,
                           mg=[(r.standard_normal(n, dtype=np.float32) * 0.1) for n in sizes] if centered else None)
    a, b = arrays["ours"], arrays["loop"]
    p0 = [x.copy() for x in a["p"]]
    rmsprop_ops.rmsprop_multi_(a["p"], a["g"], a["ms"], moments=a["mom"], mean_grads=a["mg"], lr=0.01, rho=0.9,
                               epsilon=1e-6, momentum=momentum, centered=centered)
    cloop.bind(kind, b["p"], b["g"], b["ms"], b["mom"], b["mg"], threads=2, lr=0.01, rho=0.9, eps=1e-6,
               momentum=momentum)()
    for key in ("p", "ms", "mom", "mg"):
        if a[key] is None:
            continue
        for x, y in zip(a[key], b[key]):
            np.testing.assert_allclose(y, x, rtol=2e-6, atol=1e-6, err_msg=key)
    assert all(not np.array_equal(x, y) for x, y in zip(b["p"], p0) if x.size)  # it did update


def test_c_loop_refuses_what_it_cannot_take(cloop):
    with pytest.raises(ValueError, match="float32"):
        cloop.bind("plain", [np.zeros(4)], [np.zeros(4)], [np.zeros(4)], threads=1)
    with pytest.raises(ValueError, match="grads: expected 2 arrays"):
        z = np.zeros(4, np.float32)
        cloop.bind("plain", [z, z], [z], [z, z], threads=1)


@pytest.mark.parametrize("script", ["bench_core.py", "bench_paddle.py", "bench_mindspore.py"])
@pytest.mark.parametrize("quick", [True, False])
def test_every_part_plans_its_run_without_a_framework(script, quick):
    # run.py sums the parts' plans for its time-left estimate before any part imports its framework.
    cmd = [sys.executable, "-X", "importtime", os.path.join(BENCH, script), "--plan"] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=BENCH)
    assert out.returncode == 0, out.stderr
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert not imported & {"paddle", "mindspore", "torch"}
    cases = json.loads(out.stdout)
    assert cases and all(isinstance(label, str) and weight > 0 for label, weight in cases)
    assert len({label for label, _ in cases}) == len(cases)


def _results(speedup_16m_plain, ours_over_cloop_core):
    core_rows = []
    for shape in ("1x16M", "1000x16K"):
        for v in ("plain", "momentum", "centered+momentum"):
            core_rows.append(dict(shape=shape, variant=v, ours_ms=5.0, probe_ms=5.0, cloop_ms=5.0 / ours_over_cloop_core,
                                  ours_over_cloop=ours_over_cloop_core, host_ms=0.1))
    for r in core_rows[3:]:
        r["ours_many_over_one"] = 1.02
    machine = dict(cpu="Test CPU", vendor="V", family="1", model="2", isa=["avx2"], cores=2, llc_bytes=32 << 20,
                   load=(0.5, 0.5, 0.5), date="2026-01-01 00:00 UTC")
    paddle_rows = [dict(framework="paddle", bench="exe.run", shape="1x16M", rule="plain", config="defaults", ours_ms=5.0,
                        builtin_ms=5.0 * speedup_16m_plain, speedup=speedup_16m_plain, cloop_ms=4.5,
                        ours_over_cloop=5.0 / 4.5),
                   dict(framework="paddle", bench="exe.run", shape="1x16M", rule="plain", config="flat", ours_ms=1.0,
                        builtin_ms=5.0, speedup=5.0, cloop_ms=4.5, ours_over_cloop=1 / 4.5)]
    return {"core": dict(machine=machine, threads=2, reps=15, rows=core_rows, core=dict(cpu_loops="avx2")),
            "paddle": dict(machine=machine, threads=2, reps=15, rows=paddle_rows)}


def test_report_verdicts_follow_the_targets():
    good = {(t.part, t.shape, t.rule, t.metric): met for t, _, met in report.verdicts(_results(1.6, 1.05))}
    assert good[("paddle", "1x16M", "plain", "speedup")] is True          # >= 1.5
    assert good[("paddle", "1x16M", "plain", "ours_over_cloop")] is True  # 1.11 <= 1.25
    assert all(good[("core", s, v, "ours_over_cloop")] for s in ("1x16M", "1000x16K")
               for v in ("plain", "momentum", "centered+momentum"))
    bad = {(t.part, t.shape, t.rule, t.metric): met for t, _, met in report.verdicts(_results(1.4, 1.2))}
    assert bad[("paddle", "1x16M", "plain", "speedup")] is False
    assert not any(bad[("core", s, "plain", "ours_over_cloop")] for s in ("1x16M", "1000x16K"))
    # Targets apply to the default configuration only: the fast "flat" row does not count.
    assert sum(1 for t, _, _ in report.verdicts(_results(1.4, 1.2)) if t.part == "paddle") == 2


def test_report_rewrites_only_the_results_section(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text(f"# Title\n\nBefore.\n\n{report.BEGIN}\nold table\n{report.END}\n\nAfter.\n")
    report.update_docs(_results(1.6, 1.05), str(page), str(tmp_path / "img" / "chart.png"))
    text = page.read_text()
    assert text.startswith("# Title\n\nBefore.\n") and text.endswith("\nAfter.\n")
    assert "old table" not in text and "Test CPU" in text and "| paddle | exe.run | 1x16M | plain | defaults |" in text
    assert "Targets met: **" in text
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "img" / "chart.png").stat().st_size > 1000 and "](img/chart.png)" in text


def test_docs_page_has_a_results_section():
    with open(os.path.join(ROOT, "docs", "performance.md")) as f:
        text = f.read()
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
