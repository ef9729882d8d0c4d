"""Compiles the Paddle custom ops against the installed Paddle on first use, into a cache directory.

The cache key hashes everything the binary depends on (generated source, the hand-written header, the
core's C ABI header, the core library's path, the Paddle version and its CUDA flag), so a second import, in
this process or another, loads the cached library without compiling; changing any of them rebuilds.
Concurrent first uses (one per rank under ``paddle.distributed.launch``) serialise on a file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import sys
import time
import warnings

from .. import _runtime
from ._codegen import render_source

__all__ = ["load_ops", "cache_dir", "CompilerNotFoundError"]

_MODULE_NAME = "rmsprop_ops_paddle_ops"
_CSRC = os.path.join(os.path.dirname(__file__), "csrc")
_loaded = None  # Paddle's generated module of op functions
_checked_ops = None


class CompilerNotFoundError(RuntimeError):
    """No C++ compiler is available to build the Paddle custom ops."""


def _paddle_facts():
    import paddle

    return paddle.__version__, bool(paddle.is_compiled_with_cuda())


def _cache_root() -> str:
    root = os.environ.get("RMSPROP_OPS_PADDLE_CACHE")
    if root:
        return root
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rmsprop_ops", "paddle")


def _inputs():
    with open(os.path.join(_CSRC, "paddle_kernel.h"), encoding="utf-8") as f:
        header = f.read()
    # The core headers the ops include (the C ABI, dtypes.h, flat.h, ...): all of them.
    core_headers = ""
    inc = os.path.join(_runtime.get_include(), "rmsprop_ops")
    for name in sorted(n for n in os.listdir(inc) if n.endswith(".h")):
        with open(os.path.join(_runtime.get_include(), "rmsprop_ops", name), encoding="utf-8") as f:
            core_headers += f.read()
    return render_source(), header, core_headers


def cache_dir() -> str:
    """The directory holding (or about to hold) the compiled ops for this Paddle and this package."""
    source, header, core_headers = _inputs()
    version, cuda = _paddle_facts()
    h = hashlib.sha256()
    for part in (source, header, core_headers, _runtime.get_library(), version, str(cuda), sys.version):
        h.update(part.encode())
        h.update(b"\0")
    return os.path.join(_cache_root(), f"paddle-{version}-{h.hexdigest()[:16]}")


def _find_compiler() -> str:
    for cand in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    raise CompilerNotFoundError(
        "rmsprop_ops.paddle: building the Paddle custom ops needs a C++ compiler (g++ >= 8 or clang++), and "
        "none was found (looked for $CXX, c++, g++, clang++). Install one (e.g. `apt-get install g++`) or "
        "point $CXX at it, then import again.")


@contextlib.contextmanager
def _locked(directory):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _compile(directory):
    from paddle.utils import cpp_extension

    compiler = _find_compiler()
    source, header, _ = _inputs()
    src_path = os.path.join(directory, "rmsprop_ops_paddle.cc")
    with open(src_path, "w", encoding="utf-8") as f:
        f.write(source)
    with open(os.path.join(directory, "paddle_kernel.h"), "w", encoding="utf-8") as f:
        f.write(header)
    _, cuda = _paddle_facts()
    lib_dir = os.path.dirname(_runtime.get_library())
    cflags = ["-O2", "-std=c++17"]
    include = [directory, _runtime.get_include()]
    if cuda:
        # Tensor::stream() exists only under PADDLE_WITH_CUDA; the core then runs on Paddle's stream.
        cflags.append("-DPADDLE_WITH_CUDA")
        include += cpp_extension.extension_utils.find_cuda_includes()
    print(f"rmsprop_ops.paddle: compiling the Paddle custom ops with {compiler} (once per Paddle version; "
          f"cached in {directory}) ...", file=sys.stderr, flush=True)
    start = time.monotonic()
    env_cxx = os.environ.get("CXX")
    os.environ.setdefault("CXX", compiler)
    try:
        # Paddle's loader prints progress on stdout; keep the user's stdout clean.
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            module = cpp_extension.load(
                name=_MODULE_NAME, sources=[src_path], extra_cxx_cflags=cflags, extra_include_paths=include,
                extra_ldflags=[f"-L{lib_dir}", "-l:librmsprop_ops_core.so", f"-Wl,-rpath,{lib_dir}"],
                build_directory=directory, verbose=bool(os.environ.get("RMSPROP_OPS_VERBOSE")))
    except Exception as exc:
        raise RuntimeError(
            f"rmsprop_ops.paddle: compiling the Paddle custom ops failed ({exc}). Set RMSPROP_OPS_VERBOSE=1 "
            f"for the compiler output; sources are in {directory}.") from exc
    finally:
        if env_cxx is None:
            os.environ.pop("CXX", None)
    print(f"rmsprop_ops.paddle: compiled in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    with open(os.path.join(directory, "COMPLETE"), "w") as f:
        f.write("ok\n")
    return module


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

    directory = cache_dir()
    with _locked(directory):
        if os.path.exists(os.path.join(directory, "COMPLETE")):
            with warnings.catch_warnings(), _quiet_paddle_log():
                warnings.simplefilter("ignore")
                _loaded = extension_utils._import_module_from_library(
                    _MODULE_NAME, os.path.join(directory, _MODULE_NAME))
        else:
            _loaded = _compile(directory)
    return _loaded
