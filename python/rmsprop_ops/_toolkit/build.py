"""Build-on-first-use of the framework adapters' native code, shared by Paddle and MindSpore.

One cache root (``$RMSPROP_OPS_CACHE_DIR``), one cache key, one file lock, one compiler search, one error
type and one announcement ("compiling ...", then "compiled in N s") for both adapters. Each built entry
gets a ``BUILD-INFO.json``, written last, which marks it complete and which ``python -m rmsprop_ops info``
reads without importing any framework.

The key hashes what goes into the binary and nothing else: the adapter's sources, every core header
(the C ABI the binary is compiled against), the framework version, the device flavour and the platform.
The binaries name the core library only by its soname, with no path of the environment that built them:
the process has ``librmsprop_ops_core.so`` loaded already (``rmsprop_ops._core`` links it), and the
dynamic loader reuses a loaded library of that name. So one entry serves every virtual environment with
the same framework version and core headers, and each of them runs its own core.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Callable

__all__ = [
    "CACHE_ENV", "DEPRECATED_CACHE_ENV", "BuildError", "CompilerNotFoundError", "BuildSpec", "BuildInfo",
    "BuildOutcome", "cache_root", "core_headers_digest", "find_compiler", "locked", "ensure_built",
    "built_entries", "load_core_library", "verbose", "extra_requirements", "install_hint", "require_framework",
]

CACHE_ENV = "RMSPROP_OPS_CACHE_DIR"
DEPRECATED_CACHE_ENV = "RMSPROP_OPS_PADDLE_CACHE"  # the Paddle adapter's own variable, before this module
INFO_FILE = "BUILD-INFO.json"
_COMPILERS = ("g++", "c++", "clang++")


class BuildError(RuntimeError):
    """Building a framework adapter's native code failed."""


class CompilerNotFoundError(BuildError):
    """No C++ compiler is available to build a framework adapter's native code."""


def cache_root() -> str:
    """Where compiled framework ops are kept: ``$RMSPROP_OPS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/rmsprop_ops`` (``~/.cache/rmsprop_ops``). ``$RMSPROP_OPS_PADDLE_CACHE`` is still read
    when the first is unset, with a FutureWarning."""
    explicit = os.environ.get(CACHE_ENV)
    old = os.environ.get(DEPRECATED_CACHE_ENV)
    if old and (not explicit or os.path.abspath(old) != os.path.abspath(explicit)):
        what = f"ignored: {CACHE_ENV} is set" if explicit else f"use {CACHE_ENV}"
        # FutureWarning, not DeprecationWarning: an environment variable is set by users, who should see it.
        warnings.warn(f"{DEPRECATED_CACHE_ENV} is deprecated ({what})", FutureWarning, stacklevel=2)
    chosen = explicit or old
    if chosen:
        return os.path.abspath(os.path.expanduser(chosen))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rmsprop_ops")


def _include_dir() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "include")


def core_headers_digest() -> str:
    """A hash of every installed core header: the C ABI (and inline helpers) the adapters compile against."""
    h = hashlib.sha256()
    root = _include_dir()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            h.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as f:
                h.update(f.read())
            h.update(b"\0")
    return h.hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class BuildSpec:
    """What one compiled binary is made of; its cache entry is named by a hash of all of it."""

    framework: str                       # "paddle", "mindspore"
    version: str                         # the framework's version
    flavor: str                          # "cpu" or "cuda"
    sources: tuple[tuple[str, str], ...]  # (name, text) of every file compiled in besides the core headers
    options: tuple[str, ...] = ()        # anything else that changes the binary (an ABI flag, ...)
    what: str = "custom ops"             # for messages: "the Paddle custom ops"

    def key(self) -> str:
        h = hashlib.sha256()
        facts = (self.framework, self.version, self.flavor, core_headers_digest(), *self.options,
                 sys.platform, platform.machine(), f"py{sys.version_info[0]}.{sys.version_info[1]}")
        for part in facts:
            h.update(part.encode() + b"\0")
        for name, text in self.sources:
            h.update(name.encode() + b"\0" + text.encode() + b"\0")
        return h.hexdigest()[:16]

    def directory(self, root: str | None = None) -> str:
        return os.path.join(root or cache_root(), f"{self.framework}-{self.version}-{self.flavor}-{self.key()}")


@dataclasses.dataclass(frozen=True)
class BuildInfo:
    """The ``BUILD-INFO.json`` of a complete cache entry."""

    framework: str
    version: str
    flavor: str
    key: str
    core_headers: str
    compiler: str
    seconds: float
    built_at: str
    directory: str = ""

    @classmethod
    def read(cls, directory: str) -> BuildInfo | None:
        try:
            with open(os.path.join(directory, INFO_FILE), encoding="utf-8") as f:
                data = json.load(f)
            fields = {f.name for f in dataclasses.fields(cls)} - {"directory"}
            return cls(**{k: data[k] for k in fields}, directory=directory)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self) -> None:
        data = dataclasses.asdict(self)
        del data["directory"]
        tmp = os.path.join(self.directory, f".{INFO_FILE}.{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, os.path.join(self.directory, INFO_FILE))  # atomic: readers see all or nothing


@dataclasses.dataclass(frozen=True)
class BuildOutcome:
    directory: str
    compiled: bool        # True when this call compiled; False when the cache had it
    value: object = None  # what the compile function returned (None on a cache hit)


def find_compiler(who: str) -> str:
    """The C++ compiler to use: ``$CXX``, else the first of g++, c++, clang++ on PATH."""
    for cand in (os.environ.get("CXX"), *_COMPILERS):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    raise CompilerNotFoundError(
        f"{who}: building the framework ops needs a C++ compiler (g++ >= 8 or clang++), and none was found "
        f"(looked for $CXX, {', '.join(_COMPILERS)}). Install one (e.g. `apt-get install g++`) or point $CXX "
        "at it, then try again.")


def verbose() -> bool:
    """``$RMSPROP_OPS_VERBOSE`` set: show the compiler's output."""
    return bool(os.environ.get("RMSPROP_OPS_VERBOSE"))


@contextlib.contextmanager
def locked(directory: str):
    """Holds an exclusive lock on ``directory`` (created if needed): concurrent first uses, one per rank
    under a distributed launcher, build once and the others wait."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_built(spec: BuildSpec, compile_into: Callable[[str, str], object], *, who: str,
                 root: str | None = None) -> BuildOutcome:
    """The cache entry for ``spec``, compiled first by ``compile_into(directory, compiler)`` when missing.

    A compile announces itself on stderr with the compiler and the directory, then "compiled in N s".
    Any failure other than a ``BuildError`` becomes one, naming the directory that holds the sources.
    """
    directory = spec.directory(root)
    if BuildInfo.read(directory) is not None:
        return BuildOutcome(directory, compiled=False)
    with locked(directory):
        if BuildInfo.read(directory) is not None:  # another process built it while this one waited
            return BuildOutcome(directory, compiled=False)
        compiler = find_compiler(who)
        _say(f"{who}: compiling {spec.what} with {compiler} into {directory} (once per {spec.framework} "
             "version and core headers; later processes and environments reuse it) ...")
        start = time.monotonic()
        try:
            value = compile_into(directory, compiler)
        except BuildError:
            raise
        except Exception as exc:
            raise BuildError(f"{who}: compiling {spec.what} failed ({exc}). Set RMSPROP_OPS_VERBOSE=1 for the "
                             f"compiler output; the sources are in {directory}.") from exc
        seconds = time.monotonic() - start
        BuildInfo(spec.framework, spec.version, spec.flavor, spec.key(), core_headers_digest(), compiler,
                  round(seconds, 2), time.strftime("%Y-%m-%dT%H:%M:%S%z"), directory).write()
        _say(f"{who}: compiled in {seconds:.1f} s")
    return BuildOutcome(directory, compiled=True, value=value)


def built_entries(root: str | None = None) -> list[BuildInfo]:
    """Every complete entry in the cache, newest first."""
    root = root or cache_root()
    try:
        names = os.listdir(root)
    except OSError:
        return []
    infos = [BuildInfo.read(os.path.join(root, name)) for name in names]
    return sorted((i for i in infos if i is not None), key=lambda i: i.built_at, reverse=True)


def load_core_library():
    """Loads this package's ``librmsprop_ops_core.so`` (through ``rmsprop_ops._core``), so that a cached
    binary asking for it by soname gets this environment's copy."""
    import ctypes

    from .._runtime import get_library

    return ctypes.CDLL(get_library())


def extra_requirements(extra: str) -> list[str]:
    """The requirements of one of the package's extras (``paddle``, ``mindspore``, ``test``), as installed:
    the one source of the pins that messages print."""
    try:
        requires = importlib.metadata.requires("rmsprop-ops") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    marker = f'extra == "{extra}"'
    return [r.split(";")[0].strip() for r in requires if marker in r.replace("'", '"')]


def install_hint(extra: str) -> str:
    """How to install what an extra adds: from a clone (or a wheel) of rmsprop-ops, or the pins alone."""
    pins = extra_requirements(extra)
    hint = f'pip install ".[{extra}]" in a clone of rmsprop-ops'
    if pins:
        hint += ", or pip install " + " ".join(f'"{p}"' for p in pins)
    return hint


def require_framework(module: str, extra: str, who: str):
    """Imports the framework ``module`` or raises ModuleNotFoundError saying what to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        message = f"{who} needs {module}, which is not installed: {install_hint(extra)}"
        if _cli_target() == who:
            # ``python -m rmsprop_ops.paddle info`` (or build, --help): the answer, not a traceback
            import sys

            asked_info = "info" in sys.orig_argv[sys.orig_argv.index("-m") + 2:]
            print(f"{module:12} not installed; to add it: {install_hint(extra)}" if asked_info else message,
                  file=sys.stdout if asked_info else sys.stderr)
            raise SystemExit(0 if asked_info else 1)
        raise ModuleNotFoundError(message, name=module) from None


def _cli_target() -> str | None:
    """The module of ``python -m MODULE ...``, if this process was started that way."""
    import sys

    argv = list(getattr(sys, "orig_argv", ()))
    if "-m" not in argv:
        return None
    i = argv.index("-m")
    return argv[i + 1] if i + 1 < len(argv) else None
