"""One gating mechanism for the framework tests.

Paddle and MindSpore cannot share an interpreter, so the tests under ``tests/paddle`` and ``tests/mindspore``
are collected only in a run whose ``-m`` expression selects their framework (``pytest -m paddle``); every
other run never imports them. Each of their tests carries the framework's marker (added here, so a module
cannot forget it). A selected framework that is not installed is skipped, with what to install, instead of
failing.

Tests are imported with ``--import-mode=importlib`` (pyproject.toml), so no test directory goes on
``sys.path``: ``tests/paddle`` could otherwise be imported as a namespace package named ``paddle`` where
the real one is missing. Shared helpers live in ``tests/support`` and stand-alone scripts (fuzzers, raw-op
tables, distributed launches) in ``tests/scripts``; both are put on ``sys.path`` here.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import sys
import tempfile

import pytest

HERE = pathlib.Path(__file__).resolve().parent
for _sub in ("support", "scripts"):
    if str(HERE / _sub) not in sys.path:
        sys.path.insert(0, str(HERE / _sub))

FRAMEWORKS = {"paddle": HERE / "paddle", "mindspore": HERE / "mindspore"}
_INSTALL = {"paddle": 'pip install ".[paddle]"', "mindspore": 'pip install ".[mindspore]"'}
_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


def selects(expr: str, framework: str) -> bool:
    """Whether a ``-m`` expression selects tests that carry only ``framework``'s marker. Evaluated here
    (identifiers become True for the framework's own name, False otherwise) rather than with pytest's
    private expression module."""
    if not expr.strip():
        return True
    words = []
    for token in _TOKEN.findall(expr):
        if token in ("(", ")", "and", "or", "not"):
            words.append(token)
        else:
            words.append("True" if token == framework else "False")
    try:
        return bool(eval(" ".join(words), {"__builtins__": {}}, {}))  # noqa: S307 (True/False/and/or/not)
    except SyntaxError:
        return framework in expr and f"not {framework}" not in expr


def installed(framework: str) -> bool:
    spec = importlib.util.find_spec(framework)
    # A namespace package (no origin) would be a directory of that name on sys.path, not the framework.
    return spec is not None and spec.origin not in (None, "namespace")


def framework_of(path) -> str | None:
    path = pathlib.Path(path).resolve()
    for name, root in FRAMEWORKS.items():
        if path == root or root in path.parents:
            return name
    return None


def pytest_ignore_collect(collection_path, config):
    framework = framework_of(collection_path)
    if framework is None or collection_path.is_dir():
        return None
    if collection_path.suffix == ".py" and not selects(config.getoption("markexpr", "") or "", framework):
        return True
    return None


class _MissingFramework(pytest.File):
    """Stands in for a test module of a framework that is not installed: reports one clean skip."""

    def collect(self):
        framework = framework_of(self.path)
        pytest.skip(f"{framework} is not installed ({_INSTALL[framework]})", allow_module_level=True)


def pytest_pycollect_makemodule(module_path, parent):
    framework = framework_of(module_path)
    if framework is not None and not installed(framework):
        return _MissingFramework.from_parent(parent, path=module_path)
    return None


def pytest_configure(config):
    expr = config.getoption("markexpr", "") or ""
    both = [f for f in FRAMEWORKS if selects(expr, f) and installed(f)]
    if len(both) > 1:
        raise pytest.UsageError(f"-m {expr!r} selects the tests of {' and '.join(both)}, which cannot share a "
                                "process: run `pytest -m paddle` and `pytest -m mindspore` separately")
    if installed("mindspore") and selects(config.getoption("markexpr", "") or "", "mindspore"):
        # MindSpore writes rank_0/om/analyze_fail.ir for failed compiles (the error tests) under $MS_OM_PATH,
        # the working directory by default: keep them out of the checkout.
        os.environ.setdefault("MS_OM_PATH", tempfile.mkdtemp(prefix="mindspore_om_"))


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        framework = framework_of(item.path)
        if framework is not None:
            item.add_marker(getattr(pytest.mark, framework))
