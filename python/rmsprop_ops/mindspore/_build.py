"""Build-on-first-use of the MindSpore aot kernel (``kernel.cc``), cached across processes.

The kernel is a thin shim over the core's C ABI, compiled with g++ against the installed
``rmsprop_ops`` (headers and ``librmsprop_ops_core.so``) and with the ``_GLIBCXX_USE_CXX11_ABI`` value
that the installed MindSpore was built with. The result lives in a cache directory keyed by everything
that affects it, so a second process (or a second interpreter run) finds it and compiles nothing.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import rmsprop_ops

_SOURCE = os.path.join(os.path.dirname(__file__), "kernel.cc")
FUNC_NAME = "rmsprop_ops_ms_update"

__all__ = ["cache_dir", "kernel_library", "kernel_handle", "mindspore_cxx11_abi", "FUNC_NAME"]


def cache_dir() -> str:
    """Where built kernels are kept: ``$RMSPROP_OPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/rmsprop_ops``
    (``~/.cache/rmsprop_ops``)."""
    explicit = os.environ.get("RMSPROP_OPS_CACHE_DIR")
    if explicit:
        return os.path.abspath(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rmsprop_ops")


@functools.cache
def mindspore_cxx11_abi() -> int:
    """The ``_GLIBCXX_USE_CXX11_ABI`` value of the installed MindSpore (0 for the PyPI wheels).

    MindSpore does not report it, so it is read from its core library: a library built with the new ABI
    exports ``std::__cxx11`` symbols, one built with the old ABI has none.
    """
    import mindspore

    libdir = os.path.join(os.path.dirname(mindspore.__file__), "lib")
    for name in ("libmindspore_core.so", "libmindspore_common.so"):
        path = os.path.join(libdir, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                return 1 if b"__cxx11" in f.read() else 0
    return 0


def _device_flavor(device_target: str) -> str:
    return "cuda" if device_target == "GPU" else "cpu"


def _key(flavor: str) -> str:
    import mindspore

    h = hashlib.sha256()
    inc = os.path.join(rmsprop_ops.get_include(), "rmsprop_ops")
    for path in (_SOURCE, *(os.path.join(inc, h) for h in sorted(os.listdir(inc)) if h.endswith(".h"))):
        with open(path, "rb") as f:
            h.update(f.read())
    lib = rmsprop_ops.get_library()
    h.update(os.path.realpath(lib).encode())
    h.update(str(os.stat(lib).st_size).encode())
    h.update(f"{mindspore.__version__}|{flavor}|abi{mindspore_cxx11_abi()}|{sys.platform}".encode())
    return h.hexdigest()[:16]


def _cuda_home() -> str:
    """$CUDA_HOME / $CUDA_PATH, else the toolkit holding the CUDA runtime header next to nvcc."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var) and os.path.exists(os.path.join(os.environ[var], "include", "cuda_runtime_api.h")):
            return os.environ[var]
    candidates = []
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
        # nvcc may be a wrapper script that execs the real one.
        with open(nvcc, "rb") as f:
            head = f.read(4096)
        if head.startswith(b"#!"):
            for word in head.decode(errors="replace").split():
                if word.endswith("/bin/nvcc"):
                    candidates.append(os.path.dirname(os.path.dirname(word)))
    candidates.append("/usr/local/cuda")
    for home in candidates:
        if os.path.exists(os.path.join(home, "include", "cuda_runtime_api.h")):
            return home
    raise RuntimeError("rmsprop_ops.mindspore: building the GPU kernel needs the CUDA runtime headers; set "
                       "CUDA_HOME to the CUDA toolkit")


def _compile_command(out: str, flavor: str) -> list[str]:
    libdir = os.path.dirname(os.path.realpath(rmsprop_ops.get_library()))
    cmd = [os.environ.get("CXX", "g++"), "-O2", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden",
           f"-D_GLIBCXX_USE_CXX11_ABI={mindspore_cxx11_abi()}", "-I", rmsprop_ops.get_include()]
    if flavor == "cuda":
        cuda_home = _cuda_home()
        cmd += ["-DRMSPROP_OPS_MS_CUDA", "-I", os.path.join(cuda_home, "include")]
    cmd += [_SOURCE, "-o", out, f"-L{libdir}", "-lrmsprop_ops_core", f"-Wl,-rpath,{libdir}"]
    if flavor == "cuda":
        cudalib = next((d for d in (os.path.join(cuda_home, "lib64"), os.path.join(cuda_home, "lib"))
                        if os.path.exists(os.path.join(d, "libcudart.so"))), os.path.join(cuda_home, "lib64"))
        cmd += [f"-L{cudalib}", "-lcudart", f"-Wl,-rpath,{cudalib}"]
    return cmd


def _check_white_list(path: str) -> None:
    # MindSpore refuses aot libraries outside $MS_CUSTOM_AOT_WHITE_LIST; say how to fix it before it does.
    legal = os.environ.get("MS_CUSTOM_AOT_WHITE_LIST")
    if legal is None:
        return
    legal = os.path.realpath(legal)
    if os.path.commonpath([os.path.realpath(path), legal]) != legal:
        raise RuntimeError(
            f"MS_CUSTOM_AOT_WHITE_LIST is {legal!r} but the rmsprop_ops kernel is cached in {path!r}; set "
            f"RMSPROP_OPS_CACHE_DIR to a directory inside the white list")


@functools.cache
def kernel_library(device_target: str = "CPU") -> str:
    """Path of the built kernel library for ``device_target`` ("CPU" or "GPU"), compiling it if needed.

    Compilation takes about a second, prints one line to stderr, and happens once per cache directory:
    concurrent processes wait on a file lock and reuse the result.
    """
    flavor = _device_flavor(device_target)
    folder = os.path.join(cache_dir(), f"mindspore-{flavor}-{_key(flavor)}")
    target = os.path.join(folder, "librmsprop_ops_mindspore.so")
    _check_white_list(target)
    if os.path.exists(target):
        return target
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(target):
            return target
        if shutil.which(os.environ.get("CXX", "g++")) is None:
            raise RuntimeError("rmsprop_ops.mindspore needs a C++ compiler (g++, or $CXX) to build its kernel "
                               "on first use; none was found on PATH")
        print(f"rmsprop_ops: compiling the MindSpore {flavor} kernel (first use) into {folder}", file=sys.stderr,
              flush=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
        os.close(fd)
        try:
            proc = subprocess.run(_compile_command(tmp, flavor), capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"rmsprop_ops: building the MindSpore kernel failed:\n{proc.stderr}")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target


@functools.cache
def kernel_handle(device_target: str = "CPU") -> ctypes.CDLL:
    """The kernel library opened with ctypes (the same handle MindSpore's dlopen returns)."""
    lib = ctypes.CDLL(kernel_library(device_target))
    lib.rmsprop_ops_ms_last_error.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    lib.rmsprop_ops_ms_last_error.restype = None
    lib.rmsprop_ops_ms_clear_error.restype = None
    lib.rmsprop_ops_ms_launches.restype = ctypes.c_int64
    lib.rmsprop_ops_ms_tensors_updated.restype = ctypes.c_int64
    return lib
