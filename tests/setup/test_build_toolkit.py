"""The shared build toolkit (rmsprop_ops._toolkit.build): cache root, key, one compile per entry under a
lock, messages and errors, and the install hints that come from the package's own extras."""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import warnings

import pytest

import rmsprop_ops
from rmsprop_ops._toolkit import build

ROOT = pathlib.Path(__file__).resolve().parents[2]
PKG = pathlib.Path(rmsprop_ops.__file__).parent


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in (build.CACHE_ENV, build.DEPRECATED_CACHE_ENV, "XDG_CACHE_HOME", "CXX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


@pytest.mark.parametrize("env, expected, warns", [
    ({}, "home/.cache/rmsprop_ops", None),
    ({"XDG_CACHE_HOME": "xdg"}, "xdg/rmsprop_ops", None),
    ({"RMSPROP_OPS_CACHE_DIR": "one"}, "one", None),
    ({"RMSPROP_OPS_PADDLE_CACHE": "old"}, "old", "deprecated \\(use RMSPROP_OPS_CACHE_DIR\\)"),
    ({"RMSPROP_OPS_CACHE_DIR": "one", "RMSPROP_OPS_PADDLE_CACHE": "old"}, "one", "ignored: RMSPROP_OPS_CACHE_DIR"),
    ({"RMSPROP_OPS_CACHE_DIR": "same", "RMSPROP_OPS_PADDLE_CACHE": "same"}, "same", None),
])
def test_cache_root(clean_env, tmp_path, env, expected, warns):
    for name, value in env.items():
        clean_env.setenv(name, str(tmp_path / value))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        root = build.cache_root()
    assert root == str(tmp_path / expected)
    messages = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    if warns is None:
        assert not messages
    else:
        assert len(messages) == 1 and re.search(warns, messages[0]), messages


SPEC = build.BuildSpec("paddle", "3.3.1", "cpu", sources=(("a.cc", "int f();\n"), ("b.h", "#pragma once\n")),
                       options=("abi0",))


@pytest.mark.parametrize("change", [
    dict(framework="mindspore"), dict(version="3.3.2"), dict(flavor="cuda"),
    dict(sources=(("a.cc", "int f(); "), ("b.h", "#pragma once\n"))),
    dict(sources=(("a2.cc", "int f();\n"), ("b.h", "#pragma once\n"))),
    dict(sources=(("a.cc", "int f();\n"),)), dict(options=("abi1",)),
])
def test_key_changes_with_every_input(change):
    import dataclasses

    other = dataclasses.replace(SPEC, **change)
    assert other.key() != SPEC.key()
    assert os.path.basename(other.directory("/r")).startswith(f"{other.framework}-{other.version}-{other.flavor}-")


def test_key_ignores_messages_and_is_stable():
    import dataclasses

    assert dataclasses.replace(SPEC, what="other words").key() == SPEC.key() == SPEC.key()


def _copy_package(tmp_path) -> pathlib.Path:
    site = tmp_path / "site"
    shutil.copytree(PKG, site / "rmsprop_ops", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def test_key_does_not_depend_on_where_the_package_is(tmp_path):
    # Another virtual environment with the same core headers shares the entry (no path in the key).
    site = _copy_package(tmp_path)
    code = textwrap.dedent(f"""
        import rmsprop_ops
        from rmsprop_ops._toolkit import build
        assert rmsprop_ops.__file__.startswith({str(site)!r}), rmsprop_ops.__file__
        print(build.BuildSpec(**{{k: v for k, v in {SPEC.__dict__!r}.items()}}).key())
    """)
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(site)),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == SPEC.key()
    # ... while a changed core header is a different key.
    header = site / "rmsprop_ops" / "include" / "rmsprop_ops" / "c_api.h"
    header.write_text(header.read_text() + "\n/* changed */\n")
    changed = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(site)),
                             capture_output=True, text=True, timeout=120)
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() != SPEC.key()


def _compile_ok(directory, compiler):
    pathlib.Path(directory, "out.txt").write_text(compiler)
    return "value"


def test_ensure_built_compiles_once_and_announces(clean_env, tmp_path, capsys):
    first = build.ensure_built(SPEC, _compile_ok, who="tester", root=str(tmp_path))
    err = capsys.readouterr().err
    assert first.compiled and first.value == "value" and first.directory == SPEC.directory(str(tmp_path))
    assert re.search(r"tester: compiling custom ops with \S+ into .*\n.*tester: compiled in \d+\.\d s", err), err
    info = build.BuildInfo.read(first.directory)
    assert (info.framework, info.version, info.flavor, info.key) == ("paddle", "3.3.1", "cpu", SPEC.key())
    assert info.core_headers == build.core_headers_digest() and os.path.exists(info.compiler)
    second = build.ensure_built(SPEC, lambda d, c: pytest.fail("compiled twice"), who="tester", root=str(tmp_path))
    assert not second.compiled and second.directory == first.directory
    assert capsys.readouterr().err == ""
    assert [e.directory for e in build.built_entries(str(tmp_path))] == [first.directory]


def test_failed_compile_is_a_build_error_and_leaves_the_entry_incomplete(clean_env, tmp_path):
    def broken(directory, compiler):
        raise OSError("disk full")

    with pytest.raises(build.BuildError, match=r"tester: compiling custom ops failed \(disk full\).*sources are in"):
        build.ensure_built(SPEC, broken, who="tester", root=str(tmp_path))
    assert build.BuildInfo.read(SPEC.directory(str(tmp_path))) is None
    assert build.built_entries(str(tmp_path)) == []
    assert build.ensure_built(SPEC, _compile_ok, who="tester", root=str(tmp_path)).compiled  # retried


def test_missing_compiler_names_the_caller(clean_env, tmp_path):
    clean_env.setattr(shutil, "which", lambda name: None)
    with pytest.raises(build.CompilerNotFoundError, match=r"^tester: building the framework ops needs a C\+\+ "
                                                          r"compiler.*\$CXX"):
        build.ensure_built(SPEC, _compile_ok, who="tester", root=str(tmp_path))
    assert issubclass(build.CompilerNotFoundError, build.BuildError)
    assert issubclass(build.BuildError, RuntimeError)


def test_cxx_is_the_compiler_when_set(clean_env, tmp_path):
    fake = tmp_path / "my-c++"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    clean_env.setenv("CXX", str(fake))
    assert build.find_compiler("tester") == str(fake)


def _race(root, marks):
    def slow(directory, compiler):
        with open(marks, "a") as f:
            f.write("compiled\n")
        import time
        time.sleep(0.5)

    build.ensure_built(SPEC, slow, who="racer", root=root)


def test_concurrent_first_uses_compile_once(clean_env, tmp_path):
    marks = tmp_path / "marks"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_race, args=(str(tmp_path / "cache"), str(marks))) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert marks.read_text() == "compiled\n"


def test_built_entries_skips_incomplete_and_unreadable(clean_env, tmp_path):
    (tmp_path / "paddle-1-cpu-x").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / build.INFO_FILE).write_text("{not json")
    (tmp_path / "a-file").write_text("")
    done = build.ensure_built(SPEC, _compile_ok, who="t", root=str(tmp_path)).directory
    assert [e.directory for e in build.built_entries(str(tmp_path))] == [done]
    assert build.built_entries(str(tmp_path / "missing")) == []


EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


@pytest.mark.parametrize("extra", ["paddle", "mindspore", "test"])
def test_install_hints_come_from_the_extras(extra):
    assert build.extra_requirements(extra) == [r.replace(" ", "") for r in EXTRAS[extra]]
    hint = build.install_hint(extra)
    assert hint.startswith(f'pip install ".[{extra}]"')
    for req in EXTRAS[extra]:
        assert f'"{req}"' in hint


_PIP_LINE = re.compile(r"pip install ([^\n#]*)")
_REQUIREMENT = re.compile(r"""["']?([A-Za-z0-9_.-]+\s*(?:==|<=|>=|<|>|~=)\s*[0-9][^"'\s]*)["']?""")


@pytest.mark.parametrize("page", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])
def test_docs_pin_what_the_extras_pin(page):
    # A pin a page tells users to install, of a package an extra installs, is the extra's own pin (the docs
    # and the extras agree); packages no extra mentions (torch for the reference tests) are free.
    pinned = {r.replace(" ", "") for reqs in EXTRAS.values() for r in reqs}
    extra_names = {_name(r) for r in pinned}
    for line in _PIP_LINE.findall((ROOT / page).read_text()):
        for req in _REQUIREMENT.findall(line):
            if _name(req) in extra_names:
                assert req.replace(" ", "") in pinned, f"{page}: `pip install ... {req}` is not what the extras pin"


def _name(requirement: str) -> str:
    return re.split(r"[=<>~! ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_pin_check_catches_a_stale_pin():
    pinned = {r.replace(" ", "") for reqs in EXTRAS.values() for r in reqs}
    stale = [r for r in _REQUIREMENT.findall('pip install "numpy<2" "ml_dtypes<0.5"') if r not in pinned]
    assert stale == ["ml_dtypes<0.5"] and _name(stale[0]) in {_name(r) for r in pinned}


@pytest.mark.parametrize("framework", ["paddle", "mindspore"])
def test_adapter_without_its_framework_says_what_to_install(framework):
    code = f"import sys; sys.modules[{framework!r}] = None; import rmsprop_ops.{framework}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: rmsprop_ops.") and f"needs {framework}, which is not installed" in last
    assert f'pip install ".[{framework}]"' in last
    for req in EXTRAS[framework]:
        assert req in last


def test_a_missing_dependency_of_the_framework_is_not_masked(tmp_path):
    # The framework is there but broken: its own error surfaces, not "install paddle".
    fake = tmp_path / "paddle"
    fake.mkdir()
    (fake / "__init__.py").write_text("import a_dependency_that_is_missing_xyz\n")
    out = subprocess.run([sys.executable, "-c", "import rmsprop_ops.paddle"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(tmp_path)), timeout=120)
    assert "No module named 'a_dependency_that_is_missing_xyz'" in out.stderr.strip().splitlines()[-1]


def test_build_info_round_trip(tmp_path):
    info = build.BuildInfo("mindspore", "2.10.0", "cpu", "k", "h", "/usr/bin/g++", 1.25, "2026-01-01T00:00:00",
                           str(tmp_path))
    info.write()
    assert build.BuildInfo.read(str(tmp_path)) == info
    assert "directory" not in json.loads((tmp_path / build.INFO_FILE).read_text())


@pytest.mark.parametrize("framework", ["paddle", "mindspore"])
@pytest.mark.parametrize("command", [["info"], ["build"], ["--help"]])
def test_adapter_cli_without_its_framework_answers_without_a_traceback(framework, command):
    """``python -m rmsprop_ops.<framework> info`` says the framework is missing (exit 0); build and --help
    say what to install (exit 1); neither prints a traceback."""
    code = (f"import runpy, sys; sys.modules[{framework!r}] = None; sys.orig_argv = [sys.executable, '-m', "
            f"'rmsprop_ops.{framework}', *{command!r}]; sys.argv = ['-m', *{command!r}]; "
            f"runpy.run_module('rmsprop_ops.{framework}', run_name='__main__', alter_sys=True)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in out.stderr
    if command == ["info"]:
        assert out.returncode == 0 and out.stdout.startswith(framework) and "not installed" in out.stdout
    else:
        assert out.returncode == 1 and f'pip install ".[{framework}]"' in out.stderr
