"""``python -m rmsprop_ops`` and the demo's command line: --help everywhere, and an ``info`` that tells
the truth about the build, the machine and the framework ops, without importing a framework."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

import rmsprop_ops
from rmsprop_ops._toolkit import build, cli


def _run(*args, env=None, check=True):
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, **(env or {})))
    if check:
        assert out.returncode == 0, out.stderr
    return out


def _info(env=None) -> dict[str, list[str]]:
    rows = json.loads(_run("-m", "rmsprop_ops", "info", "--json", env=env).stdout)
    table: dict[str, list[str]] = {}
    label = None
    for row in rows:
        label = row["label"] or label  # a row without a label continues the one above
        table.setdefault(label, []).append(row["value"])
    return table


@pytest.mark.parametrize("args, expect", [
    (["-m", "rmsprop_ops", "--help"], ["usage: python -m rmsprop_ops", "info", "python -m rmsprop_ops.paddle --help"]),
    (["-m", "rmsprop_ops"], ["usage: python -m rmsprop_ops"]),
    (["-m", "rmsprop_ops", "info", "--help"], ["--json", "which framework ops are built"]),
    (["-m", "rmsprop_ops.demo", "--help"], ["--steps N", "training steps", "--seed SEED", "default: 300"]),
])
def test_help(args, expect):
    out = _run(*args).stdout
    for text in expect:
        assert text in out


@pytest.mark.parametrize("args, message", [
    (["-m", "rmsprop_ops", "nonsense"], "invalid choice: 'nonsense'"),
    (["-m", "rmsprop_ops.demo", "--steps", "0"], "--steps: expected a positive integer, got '0'"),
    (["-m", "rmsprop_ops.demo", "--steps", "x"], "--steps: expected a positive integer, got 'x'"),
])
def test_bad_arguments_are_named(args, message):
    out = _run(*args, check=False)
    assert out.returncode == 2 and message in out.stderr


def test_info_matches_the_library(tmp_path):
    table = _info({build.CACHE_ENV: str(tmp_path), "RMSPROP_OPS_NUM_THREADS": "1"})
    assert table["rmsprop_ops"][0].startswith(f"{rmsprop_ops.__version__} ({pathlib.Path(rmsprop_ops.__file__).parent})")
    assert table["core"] == [rmsprop_ops.get_library()]
    built = "yes" if rmsprop_ops.built_with_cuda() else "no"
    available = "yes" if rmsprop_ops.cuda_available() else "no"
    assert table["CUDA"][0].startswith(f"built {built}, available {available}")
    assert table["threads"][0].startswith("1 (") and "RMSPROP_OPS_NUM_THREADS=1" in table["threads"][0]
    assert table["cache"] == [f"{tmp_path} (${build.CACHE_ENV})"]
    assert f"{len(os.sched_getaffinity(0))} usable" in table["CPU"][0]
    loops = cli.kernel_loops()  # a core that picks its CPU loops at run time says which
    assert (f"kernel loops: {loops}" in table["CPU"][0]) == (loops is not None)


def test_info_reports_why_cuda_was_or_was_not_built():
    cfg = cli.build_config()
    if not cfg:
        pytest.skip("installed without build_config.json")
    assert cfg["cuda_built"] == rmsprop_ops.built_with_cuda()
    assert cfg["cuda_reason"] and cfg["cuda_reason"] in _info()["CUDA"][0]


def _fake_dist(site: pathlib.Path, name: str, version: str) -> None:
    meta = site / f"{name}-{version}.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_info_lists_built_framework_ops_without_importing_frameworks(tmp_path):
    # A fake installed Paddle (metadata only: importing it would fail) and cache entries: one for that
    # version and these core headers, one for an older version.
    site, cache = tmp_path / "site", tmp_path / "cache"
    _fake_dist(site, "paddlepaddle", "9.9.9")
    digest = build.core_headers_digest()
    for version, seconds in (("9.9.9", 12.5), ("1.0.0", 3.0)):
        entry = cache / f"paddle-{version}-cpu-0123"
        entry.mkdir(parents=True)
        build.BuildInfo("paddle", version, "cpu", "0123", digest, "/usr/bin/g++", seconds,
                        "2026-01-01T00:00:00", str(entry)).write()
    env = {build.CACHE_ENV: str(cache), "PYTHONPATH": str(site)}
    table = _info(env)
    assert table["paddle"][0] == f"9.9.9 installed; cpu ops built in {cache / 'paddle-9.9.9-cpu-0123'} (compiled in 12.5 s)"
    assert "1 older cache entry" in table["paddle"][1]
    if "mindspore" not in table or "installed;" not in table["mindspore"][0]:
        assert table["mindspore"][0].startswith('not installed; to add it: pip install ".[mindspore]"')
    code = ("import runpy, sys\nsys.argv = ['rmsprop_ops', 'info']\ntry:\n    runpy.run_module('rmsprop_ops', "
            "run_name='__main__')\nexcept SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if "
            "m.split('.')[0] in ('paddle', 'mindspore')))")
    assert _run("-c", code, env=env).stdout.strip().splitlines()[-1] == "[]"


def test_info_says_how_to_build_when_nothing_is_built(tmp_path):
    site = tmp_path / "site"
    _fake_dist(site, "mindspore", "2.10.0")
    table = _info({build.CACHE_ENV: str(tmp_path / "empty"), "PYTHONPATH": str(site)})
    assert table["mindspore"][0] == ("2.10.0 installed; ops not built yet (built on first use, or now: "
                                     "python -m rmsprop_ops.mindspore build)")


def test_info_survives_a_closed_pipe():
    proc = subprocess.Popen([sys.executable, "-m", "rmsprop_ops", "info"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert b"Traceback" not in proc.stderr.read()
