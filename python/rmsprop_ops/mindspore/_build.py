"""Build-on-first-use of the MindSpore aot kernel (``kernel.cc``), in the shared cache.

The kernel is a thin shim over the core's C ABI, compiled with the C++ compiler against the installed
``rmsprop_ops`` headers and with the ``_GLIBCXX_USE_CXX11_ABI`` value that the installed MindSpore was
built with. Cache, key, lock, compiler search and messages are ``rmsprop_ops._toolkit.build``'s: an entry
is keyed on the kernel source, the core headers, the MindSpore version, the ABI flag and the device, so a
second process (or another virtual environment with the same MindSpore) finds it and compiles nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
import sys
import tempfile

from .._runtime import get_include, get_library
from .._toolkit import build as _toolkit
from .._toolkit.build import BuildError, CompilerNotFoundError

_WHO = "rmsprop_ops.mindspore"
_SOURCE = os.path.join(os.path.dirname(__file__), "kernel.cc")
_LIBRARY = "librmsprop_ops_mindspore.so"
FUNC_NAME = "rmsprop_ops_ms_update"

__all__ = ["cache_dir", "kernel_library", "kernel_handle", "mindspore_cxx11_abi", "built_kernels", "FUNC_NAME",
           "BuildError", "CompilerNotFoundError"]


def cache_dir() -> str:
    """Where built kernels are kept: ``$RMSPROP_OPS_CACHE_DIR``, else ``$XDG_CACHE_HOME/rmsprop_ops``
    (``~/.cache/rmsprop_ops``)."""
    return _toolkit.cache_root()


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


def _spec(flavor: str) -> _toolkit.BuildSpec:
    import mindspore

    with open(_SOURCE, encoding="utf-8") as f:
        source = f.read()
    return _toolkit.BuildSpec("mindspore", mindspore.__version__, flavor, sources=(("kernel.cc", source),),
                              options=(f"abi{mindspore_cxx11_abi()}",), what=f"the MindSpore {flavor} kernel")


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


def _compile_command(out: str, flavor: str, compiler: str | None = None) -> list[str]:
    # The core is linked by soname with no rpath (see _toolkit.build): the process has it loaded already.
    libdir = os.path.dirname(os.path.realpath(get_library()))
    cmd = [compiler or os.environ.get("CXX", "g++"), "-O2", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden",
           f"-D_GLIBCXX_USE_CXX11_ABI={mindspore_cxx11_abi()}", "-I", get_include()]
    if flavor == "cuda":
        cuda_home = _cuda_home()
        cmd += ["-DRMSPROP_OPS_MS_CUDA", "-I", os.path.join(cuda_home, "include")]
    cmd += [_SOURCE, "-o", out, f"-L{libdir}", "-lrmsprop_ops_core"]
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


def _compile(flavor: str):
    def compile_into(directory: str, compiler: str) -> None:
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=directory)
        os.close(fd)
        try:
            proc = subprocess.run(_compile_command(tmp, flavor, compiler), capture_output=True, text=True)
            if _toolkit.verbose():
                print(proc.stdout + proc.stderr, file=sys.stderr)
            if proc.returncode != 0:
                raise BuildError(f"{_WHO}: building the MindSpore kernel failed:\n{proc.stderr}")
            os.replace(tmp, os.path.join(directory, _LIBRARY))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    return compile_into


@functools.cache
def kernel_library(device_target: str = "CPU") -> str:
    """Path of the built kernel library for ``device_target`` ("CPU" or "GPU"), compiling it if needed.

    Compilation takes about a second, is announced on stderr ("compiling ...", "compiled in N s"), and
    happens once per cache entry: concurrent processes wait on a file lock and reuse the result.
    """
    flavor = _device_flavor(device_target)
    spec = _spec(flavor)
    _check_white_list(os.path.join(spec.directory(), _LIBRARY))
    _toolkit.load_core_library()
    return os.path.join(_toolkit.ensure_built(spec, _compile(flavor), who=_WHO).directory, _LIBRARY)


def built_kernels() -> list[str]:
    """The device flavours ("cpu", "cuda") whose kernel for this MindSpore is compiled already."""
    return [flavor for flavor in ("cpu", "cuda")
            if _toolkit.BuildInfo.read(_spec(flavor).directory()) is not None]


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
