"""Shared checks of the adapters' command lines (``python -m rmsprop_ops.<framework> build|info``) and of
the shared build cache as another installation of the package sees it."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import rmsprop_ops
from rmsprop_ops._toolkit import build

PKG = pathlib.Path(rmsprop_ops.__file__).parent
HELP_AND_INFO = [["--help"], [], ["info"], ["info", "--json"], ["build", "--help"]]


def run(args, cache, env=None, timeout=600):
    """``python <args>`` with ``cache`` as the only cache variable."""
    env = dict(os.environ, **{build.CACHE_ENV: str(cache)}, **(env or {}))
    env.pop(build.DEPRECATED_CACHE_ENV, None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout)


def check_help_and_info_build_nothing(framework, args, cache, not_built):
    out = run(["-m", f"rmsprop_ops.{framework}", *args], cache)
    assert out.returncode == 0, out.stderr
    assert f"rmsprop_ops.{framework}: compiling" not in out.stderr and list(cache.iterdir()) == []
    if args[:1] == ["info"]:
        assert not_built in out.stdout, out.stdout
    else:
        assert f"usage: python -m rmsprop_ops.{framework}" in out.stdout


def check_build_compiles_once(framework, version, cache, what) -> str:
    """``build`` twice into an empty cache: one announced compile with its time; the core's ``info`` (which
    imports no framework) then lists the entry. Returns the first build's stdout."""
    first = run(["-m", f"rmsprop_ops.{framework}", "build"], cache)
    assert first.returncode == 0, first.stderr
    assert f"rmsprop_ops.{framework}: compiling {what} with" in first.stderr, first.stderr
    assert re.search(rf"rmsprop_ops\.{framework}: compiled in \d+\.\d s", first.stderr), first.stderr
    again = run(["-m", f"rmsprop_ops.{framework}", "build"], cache)
    assert again.returncode == 0 and f"rmsprop_ops.{framework}: compiling" not in again.stderr
    (entry,) = [e.directory for e in build.built_entries(str(cache))]
    info = run(["-m", "rmsprop_ops", "info"], cache)
    assert re.search(rf"{framework} +{re.escape(version)} installed; cpu ops built in {re.escape(entry)} "
                     r"\(compiled in \d+\.\d s\)", info.stdout), info.stdout
    return first.stdout


def run_in_copy(tmp_path, code, framework):
    """Runs ``code`` against a copy of the installed package elsewhere (another environment's install,
    same core headers) with this suite's cache; it must compile nothing. Returns its stdout lines after
    checking the first two: where rmsprop_ops came from, and which librmsprop_ops_core.so is mapped."""
    site = tmp_path / "site"
    shutil.copytree(PKG, site / "rmsprop_ops", ignore=shutil.ignore_patterns("__pycache__"))
    prologue = ("import rmsprop_ops\nprint(rmsprop_ops.__file__)\n")
    epilogue = ('\nprint([l.split()[-1] for l in open("/proc/self/maps") if "librmsprop_ops_core" in l][0])\n')
    out = subprocess.run([sys.executable, "-c", prologue + code + epilogue], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(site)), timeout=600)
    assert out.returncode == 0, out.stderr
    assert f"rmsprop_ops.{framework}: compiling" not in out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith(str(site))
    assert lines[-1] == str(site / "rmsprop_ops" / "lib" / "librmsprop_ops_core.so")
    return lines[1:-1]


def imports_package_root(module_file) -> bool:
    return bool(re.search(r"^\s*import rmsprop_ops\b|^\s*from rmsprop_ops import",
                          pathlib.Path(module_file).read_text(), re.M))
