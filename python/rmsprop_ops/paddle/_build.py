"""Compiles the Paddle custom ops against the installed Paddle on first use, into the shared cache.

The cache, its key, the lock, the compiler search and the messages are ``rmsprop_ops._toolkit.build``'s:
an entry is keyed on the generated source, the hand-written header, the core headers, the Paddle version
and its CUDA flag, so a second import, in this process, another one or another virtual environment with
the same Paddle, loads the cached library without compiling; changing any of them rebuilds.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

from .._runtime import get_include, get_library
from .._toolkit import build as _toolkit
from .._toolkit.build import BuildError, CompilerNotFoundError
from ._codegen import render_source

__all__ = ["load_ops", "cache_dir", "built_ops", "CompilerNotFoundError", "BuildError"]

_WHO = "rmsprop_ops.paddle"
_MODULE_NAME = "rmsprop_ops_paddle_ops"
_CSRC = os.path.join(os.path.dirname(__file__), "csrc")
_loaded = None  # Paddle's generated module of op functions
_checked_ops = None


def _paddle_facts():
    import paddle

    return paddle.__version__, bool(paddle.is_compiled_with_cuda())


def _cache_root() -> str:
    """The cache root (kept for callers of the former private name)."""
    return _toolkit.cache_root()


def _spec() -> _toolkit.BuildSpec:
    with open(os.path.join(_CSRC, "paddle_kernel.h"), encoding="utf-8") as f:
        header = f.read()
    version, cuda = _paddle_facts()
    return _toolkit.BuildSpec("paddle", version, "cuda" if cuda else "cpu",
                              sources=(("rmsprop_ops_paddle.cc", render_source()), ("paddle_kernel.h", header)),
                              what="the Paddle custom ops")


def cache_dir() -> str:
    """The directory holding (or about to hold) the compiled ops for this Paddle and these core headers."""
    return _spec().directory()


def built_ops() -> bool:
    """True when the ops for this Paddle are compiled already (nothing to build on first use)."""
    return _toolkit.BuildInfo.read(cache_dir()) is not None


def _find_compiler() -> str:
    return _toolkit.find_compiler(_WHO)


def _compile(directory: str, compiler: str):
    from paddle.utils import cpp_extension

    spec = _spec()
    for name, text in spec.sources:
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.write(text)
    cflags = ["-O2", "-std=c++17"]
    include = [directory, get_include()]
    if spec.flavor == "cuda":
        # Tensor::stream() exists only under PADDLE_WITH_CUDA; the core then runs on Paddle's stream.
        cflags.append("-DPADDLE_WITH_CUDA")
        include += cpp_extension.extension_utils.find_cuda_includes()
    lib_dir = os.path.dirname(get_library())
    # The core is linked by soname with no rpath (see _toolkit.build): this process has it loaded already,
    # and Paddle's build subprocess, which opens the library to generate its Python API, finds it through
    # LD_LIBRARY_PATH.
    library_path = os.pathsep.join(p for p in (lib_dir, os.environ.get("LD_LIBRARY_PATH")) if p)
    # Paddle's loader prints progress on stdout; keep the user's stdout clean.
    with _environ(CXX=compiler, LD_LIBRARY_PATH=library_path), warnings.catch_warnings(), _quiet_paddle_log(), \
            contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        return cpp_extension.load(
            name=_MODULE_NAME, sources=[os.path.join(directory, "rmsprop_ops_paddle.cc")],
            extra_cxx_cflags=cflags, extra_include_paths=include,
            extra_ldflags=[f"-L{lib_dir}", "-l:librmsprop_ops_core.so"],
            build_directory=directory, verbose=_toolkit.verbose())


@contextlib.contextmanager
def _environ(**values):
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _quiet_paddle_log():
    import logging

    # Paddle's extension loader logs "using custom operator only" at INFO on every load.
    loggers = [logging.getLogger(n) for n in ("", "utils.cpp_extension")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def load_ops():
    """The module of op functions (``rmsprop_ops_rmsprop`` etc.), compiling the ops first if needed.

    Each function takes Paddle's generated op function's arguments (inputs, then attributes, in the
    registry's order) and checks them before the call (see ``_checked``); ``load_ops().raw`` holds
    Paddle's unchecked functions."""
    global _checked_ops
    if _checked_ops is None:
        from ._checked import wrap_module

        _checked_ops = wrap_module(_load_raw())
    return _checked_ops


def _load_raw():
    global _loaded
    if _loaded is not None:
        return _loaded
    with warnings.catch_warnings():
        # Paddle warns about a missing ccache on import; the cache here makes ccache irrelevant.
        warnings.simplefilter("ignore")
        from paddle.utils.cpp_extension import extension_utils

    _toolkit.load_core_library()
    outcome = _toolkit.ensure_built(_spec(), _compile, who=_WHO)
    if outcome.compiled:
        _loaded = outcome.value
    else:
        with warnings.catch_warnings(), _quiet_paddle_log():
            warnings.simplefilter("ignore")
            _loaded = extension_utils._import_module_from_library(
                _MODULE_NAME, os.path.join(outcome.directory, _MODULE_NAME))
    return _loaded
