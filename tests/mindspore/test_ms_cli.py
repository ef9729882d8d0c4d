"""``python -m rmsprop_ops.mindspore build|info`` and the shared cache seen from MindSpore: --help
builds nothing, build announces its compile time, info tells what is built, and one cache entry serves
another installation of the package (another virtual environment) without compiling."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

ms = pytest.importorskip("mindspore")

import rmsprop_ops
from rmsprop_ops._toolkit import build
from rmsprop_ops.mindspore import _build, kernel_library

PKG = pathlib.Path(rmsprop_ops.__file__).parent


def _run(args, cache, timeout=600):
    env = dict(os.environ, **{build.CACHE_ENV: str(cache)})
    env.pop(build.DEPRECATED_CACHE_ENV, None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.parametrize("args", [["--help"], [], ["info"], ["info", "--json"], ["build", "--help"]])
def test_help_and_info_build_nothing(tmp_path, args):
    out = _run(["-m", "rmsprop_ops.mindspore", *args], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "rmsprop_ops.mindspore: compiling" not in out.stderr and list(tmp_path.iterdir()) == []
    if args[:1] == ["info"]:
        assert "nothing yet (python -m rmsprop_ops.mindspore build)" in out.stdout
    elif "--help" in args or not args:
        assert "usage: python -m rmsprop_ops.mindspore" in out.stdout


def test_build_compiles_once_and_says_how_long(tmp_path):
    first = _run(["-m", "rmsprop_ops.mindspore", "build"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "rmsprop_ops.mindspore: compiling the MindSpore cpu kernel with" in first.stderr
    assert re.search(r"rmsprop_ops\.mindspore: compiled in \d+\.\d s", first.stderr), first.stderr
    library = re.search(r"library +(\S+)", first.stdout).group(1)
    assert library.startswith(str(tmp_path)) and os.path.exists(library)
    assert "built for cpu" in first.stdout
    again = _run(["-m", "rmsprop_ops.mindspore", "build"], tmp_path)
    assert again.returncode == 0 and "rmsprop_ops.mindspore: compiling" not in again.stderr
    info = _run(["-m", "rmsprop_ops", "info"], tmp_path)
    entry = os.path.dirname(library)
    assert re.search(rf"mindspore +{re.escape(ms.__version__)} installed; cpu ops built in {re.escape(entry)} "
                     r"\(compiled in \d+\.\d s\)", info.stdout), info.stdout


def test_another_installation_reuses_the_cache_and_runs_its_own_core(tmp_path):
    path = kernel_library()  # the entry exists in this suite's cache
    site = tmp_path / "site"
    shutil.copytree(PKG, site / "rmsprop_ops", ignore=shutil.ignore_patterns("__pycache__"))
    code = textwrap.dedent("""
        import numpy as np, mindspore as ms, rmsprop_ops
        from rmsprop_ops.mindspore import kernel_library, rmsprop_multi_
        ms.set_context(mode=ms.PYNATIVE_MODE)
        p = ms.Parameter(ms.Tensor(np.ones(2, np.float32)), name="p")
        s = ms.Parameter(ms.Tensor(np.ones(2, np.float32)), name="s")
        m = ms.Parameter(ms.Tensor(np.zeros(2, np.float32)), name="m")
        rmsprop_multi_([p], [ms.Tensor(np.full(2, 0.5, np.float32))], [s], [m], 0.1)
        print(rmsprop_ops.__file__)
        print(kernel_library())
        print([l.split()[-1] for l in open("/proc/self/maps") if "librmsprop_ops_core" in l][0])
        print(p.asnumpy().tolist())
    """)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "rmsprop_ops.mindspore: compiling" not in out.stderr
    where, library, core, values = out.stdout.strip().splitlines()[-4:]
    assert where.startswith(str(site)) and library == path
    assert core == str(site / "rmsprop_ops" / "lib" / "librmsprop_ops_core.so")
    # MindSpore's rule from its ones-initialised accumulator: s = 0.9 + 0.1 * 0.25; p -= 0.1 * 0.5 / sqrt(s + eps).
    expected = 1.0 - 0.1 * 0.5 / (0.9 + 0.1 * 0.25 + 1e-10) ** 0.5
    assert [round(v, 6) for v in eval(values)] == [round(expected, 6)] * 2


def test_build_module_does_not_import_the_package_root():
    source = pathlib.Path(_build.__file__).read_text()
    assert not re.search(r"^\s*import rmsprop_ops\b|^\s*from rmsprop_ops import", source, re.M)
