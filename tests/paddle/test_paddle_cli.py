"""``python -m rmsprop_ops.paddle build|info`` and the shared cache seen from Paddle: --help builds
nothing, build announces its compile time, info tells what is built, and one cache entry serves another
installation of the package (another virtual environment) without compiling."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
import warnings

import pytest

paddle = pytest.importorskip("paddle")

import rmsprop_ops
from rmsprop_ops._toolkit import build
from rmsprop_ops.paddle import _build, cache_dir, load_ops

PKG = pathlib.Path(rmsprop_ops.__file__).parent


def _run(args, cache, extra_env=None, timeout=600):
    env = dict(os.environ, **{build.CACHE_ENV: str(cache)}, **(extra_env or {}))
    env.pop(build.DEPRECATED_CACHE_ENV, None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.parametrize("args", [["--help"], [], ["info"], ["info", "--json"], ["build", "--help"]])
def test_help_and_info_build_nothing(tmp_path, args):
    out = _run(["-m", "rmsprop_ops.paddle", *args], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "rmsprop_ops.paddle: compiling" not in out.stderr and list(tmp_path.iterdir()) == []
    if args[:1] == ["info"]:
        assert "not built yet (python -m rmsprop_ops.paddle build)" in out.stdout
    elif "--help" in args or not args:
        assert "usage: python -m rmsprop_ops.paddle" in out.stdout


def test_build_compiles_once_and_says_how_long(tmp_path):
    first = _run(["-m", "rmsprop_ops.paddle", "build"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "rmsprop_ops.paddle: compiling the Paddle custom ops with" in first.stderr
    assert re.search(r"rmsprop_ops\.paddle: compiled in \d+\.\d s", first.stderr), first.stderr
    entry = re.search(r"ops +built in (\S+)", first.stdout).group(1)
    assert entry.startswith(str(tmp_path)) and build.BuildInfo.read(entry) is not None
    assert "custom_op.rmsprop_ops_rmsprop_multi" in first.stdout
    again = _run(["-m", "rmsprop_ops.paddle", "build"], tmp_path)
    assert again.returncode == 0 and "rmsprop_ops.paddle: compiling" not in again.stderr
    # The core's info (no Paddle import) sees the same entry.
    info = _run(["-m", "rmsprop_ops", "info"], tmp_path)
    assert re.search(rf"paddle +{re.escape(paddle.__version__)} installed; cpu ops built in {re.escape(entry)} "
                     r"\(compiled in \d+\.\d s\)", info.stdout), info.stdout


def test_another_installation_reuses_the_cache_and_runs_its_own_core(tmp_path):
    load_ops()  # the entry exists in this suite's cache
    site = tmp_path / "site"
    shutil.copytree(PKG, site / "rmsprop_ops", ignore=shutil.ignore_patterns("__pycache__"))
    code = textwrap.dedent("""
        import numpy as np, paddle, rmsprop_ops
        from rmsprop_ops.paddle import RMSProp, cache_dir
        w = paddle.create_parameter([3], "float32", default_initializer=paddle.nn.initializer.Constant(1.0))
        opt = RMSProp(learning_rate=0.1, parameters=[w])
        (w * paddle.to_tensor([1.0, 2.0, 3.0])).sum().backward()
        opt.step()
        print(rmsprop_ops.__file__)
        print(cache_dir())
        print([l.split()[-1] for l in open("/proc/self/maps") if "librmsprop_ops_core" in l][0])
        print(w.numpy().tolist())
    """)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "rmsprop_ops.paddle: compiling" not in out.stderr
    where, entry, core, values = out.stdout.strip().splitlines()[-4:]
    assert where.startswith(str(site)) and entry == cache_dir()
    assert core == str(site / "rmsprop_ops" / "lib" / "librmsprop_ops_core.so")
    # Paddle's rule, first step from a zero accumulator: w -= lr * g / sqrt((1 - rho) g^2 + eps).
    g = [1.0, 2.0, 3.0]
    expected = [1.0 - 0.1 * x / ((1 - 0.95) * x * x + 1e-6) ** 0.5 for x in g]
    assert [round(v, 5) for v in eval(values)] == [round(v, 5) for v in expected]


def test_deprecated_cache_variable_still_works(monkeypatch, tmp_path):
    monkeypatch.delenv(build.CACHE_ENV, raising=False)
    monkeypatch.setenv(build.DEPRECATED_CACHE_ENV, str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        where = cache_dir()
    assert where.startswith(str(tmp_path) + os.sep)
    assert any(issubclass(w.category, FutureWarning) and "RMSPROP_OPS_PADDLE_CACHE is deprecated" in str(w.message)
               for w in caught)


def test_build_module_does_not_import_the_package_root():
    source = pathlib.Path(_build.__file__).read_text()
    assert not re.search(r"^\s*import rmsprop_ops\b|^\s*from rmsprop_ops import", source, re.M)
