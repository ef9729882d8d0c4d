"""What the command lines print: ``python -m rmsprop_ops info`` and the adapters' ``build`` / ``info``.

Everything here is read without importing a framework (Paddle and MindSpore cannot share a process, and
either takes seconds to import): installed versions come from package metadata, built framework ops from
the cache entries' ``BUILD-INFO.json``, and how the core was built from the ``build_config.json`` that
CMake installs next to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import sys
from collections.abc import Callable

from . import build

__all__ = ["Row", "core_rows", "framework_rows", "cpu_isa", "kernel_loops", "build_config", "print_rows", "main"]

# The framework's distribution names on PyPI, and its extra in pyproject.toml.
FRAMEWORKS = {"paddle": ("paddlepaddle", "paddlepaddle-gpu"), "mindspore": ("mindspore",)}
# The x86 / Arm features that decide which vector code the compiler could emit for the CPU kernel.
_ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_bf16",
              "avx512_fp16", "amx_tile", "asimd", "sve", "sve2")


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    value: str


def build_config() -> dict:
    """How the installed core was built (CUDA and why, -march=native, compiler); {} for a build without
    the file."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build_config.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def cpu_isa() -> tuple[str, list[str]]:
    """This machine's CPU model and its vector features that matter to the kernel (from /proc/cpuinfo)."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or "unknown CPU", [f for f in _ISA_FLAGS if f in flags]


def kernel_loops() -> str | None:
    """The instruction set of the CPU loops the core chose for this machine, from cores that choose at run
    time (``rmsprop_ops_cpu_isa`` in the C ABI); None for a core compiled for one target."""
    import ctypes

    from .._runtime import get_library

    fn = getattr(ctypes.CDLL(get_library()), "rmsprop_ops_cpu_isa", None)
    if fn is None:
        return None
    fn.restype = ctypes.c_char_p
    return fn().decode()


def _installed(framework: str) -> str | None:
    for dist in FRAMEWORKS[framework]:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def framework_rows(framework: str) -> list[Row]:
    """Whether the framework is installed and which of our ops are compiled for it (cache entries for its
    version and the installed core headers)."""
    version = _installed(framework)
    if version is None:
        return [Row(framework, f"not installed; to add it: {build.install_hint(framework)}")]
    digest = build.core_headers_digest()
    entries = [e for e in build.built_entries() if e.framework == framework]
    current = [e for e in entries if e.version == version and e.core_headers == digest]
    if not current:
        state = f"ops not built yet (built on first use, or now: python -m rmsprop_ops.{framework} build)"
    else:
        state = "; ".join(f"{e.flavor} ops built in {e.directory} (compiled in {e.seconds:.1f} s)" for e in current)
    rows = [Row(framework, f"{version} installed; {state}")]
    stale = len(entries) - len(current)
    if stale:
        rows.append(Row("", f"{stale} older cache entr{'y' if stale == 1 else 'ies'} (other {framework} versions "
                            "or core headers) can be deleted"))
    return rows


def core_rows() -> list[Row]:
    from .. import __version__
    from .._runtime import built_with_cuda, cuda_available, get_library, get_num_threads

    cfg = build_config()
    model, isa = cpu_isa()
    cuda = f"built {'yes' if built_with_cuda() else 'no'}, available {'yes' if cuda_available() else 'no'}"
    if cfg.get("cuda_reason"):
        cuda += f" ({cfg['cuda_reason']})"
    compiled = cfg.get("cxx_compiler", "?")
    if cfg.get("native"):
        compiled += f", -march=native on '{cfg.get('build_cpu', '?')}'"
    threads = f"{get_num_threads()} (set_num_threads(n) or $RMSPROP_OPS_NUM_THREADS"
    threads += f"={os.environ['RMSPROP_OPS_NUM_THREADS']})" if os.environ.get("RMSPROP_OPS_NUM_THREADS") else ")"
    where = f"${build.CACHE_ENV}" if os.environ.get(build.CACHE_ENV) else f"default; set ${build.CACHE_ENV} to move it"
    rows = [
        Row("rmsprop_ops", f"{__version__} ({os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})"),
        Row("python", f"{sys.version.split()[0]} ({sys.executable})"),
        Row("core", get_library()),
        Row("built with", compiled),
        Row("CUDA", cuda),
        Row("CPU", f"{model}; {', '.join(isa) or 'no vector features listed'}; {len(os.sched_getaffinity(0))} usable"
                   + (f"; kernel loops: {loops}" if (loops := kernel_loops()) else "")),
        Row("threads", threads),
        Row("cache", f"{build.cache_root()} ({where})"),
    ]
    return rows


def print_rows(rows: list[Row], as_json: bool = False) -> None:
    if as_json:
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))
        return
    width = max((len(r.label) for r in rows), default=0)
    for r in rows:
        print(f"{r.label:<{width}}  {r.value}")


def main(argv, *, prog: str, description: str, info: Callable[[], list[Row]],
         build_now: Callable[[], list[Row]] | None = None, epilog: str | None = None) -> int:
    """One command line: ``info`` (and ``build`` for an adapter), each with ``--help`` and ``--json``."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = {"info": (info, "print versions, build facts, the cache and which framework ops are built")}
    if build_now is not None:
        commands["build"] = (build_now, "compile the framework ops now (a no-op when cached) and say where they are")
    for name, (_, text) in commands.items():
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    rows = commands[args.command][0]()
    try:
        print_rows(rows, args.json)
        sys.stdout.flush()
    except BrokenPipeError:  # `... info | head`: the reader has gone, nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
