"""The plain fused C loop of cloop.c, built at run time with this machine's C compiler and called via ctypes.

    loop = CLoop.build()            # None (with a printed reason) when no C compiler with OpenMP works
    step = loop.bind(kind, params, grads, mean_squares, moments, mean_grads, threads=2)
    step()                          # one update of every buffer set, in place

The build goes to a cache directory keyed by the source, the compiler and its flags, so a run compiles it
once. ``CLoop.info`` records the compiler, its version and flags for the benchmark's JSON.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shlex
import subprocess
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "cloop.c")
# What the reference loop was built with: the machine's own ISA, IEEE sqrt and division without
# errno, and the compiler's default floating-point contraction (GCC contracts to FMA by default in C).
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC"]
KINDS = {"plain": 0, "momentum": 1, "centered+momentum": 2}


def _compiler():
    return shlex.split(os.environ.get("CC", "cc"))


def _version(cc):
    try:
        out = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out else None


def _cache_dir():
    root = os.environ.get("RMSPROP_OPS_BENCH_CACHE") or os.path.join(tempfile.gettempdir(),
                                                                      f"rmsprop_ops_bench_{os.getuid()}")
    os.makedirs(root, exist_ok=True)
    return root


class CLoop:
    def __init__(self, lib, info):
        self.lib = lib
        self.info = info
        fn = lib.cloop_update
        p = ctypes.c_void_p
        fn.argtypes = [ctypes.c_int, ctypes.c_int64, p, p, p, p, p, p, ctypes.c_float, ctypes.c_float,
                       ctypes.c_float, ctypes.c_float, ctypes.c_int]
        fn.restype = None
        self._fn = fn

    @classmethod
    def build(cls, flags=None):
        cc = _compiler()
        flags = list(FLAGS if flags is None else flags)
        version = _version(cc)
        if version is None:
            print(f"C loop: no C compiler ({' '.join(cc)}; set CC): C-loop rows skipped", flush=True)
            return None
        with open(SOURCE, "rb") as f:
            src = f.read()
        key = hashlib.sha256(src + repr((cc, flags, version)).encode()).hexdigest()[:16]
        path = os.path.join(_cache_dir(), f"cloop-{key}.so")
        if not os.path.exists(path):
            tmp = f"{path}.{os.getpid()}.tmp"
            proc = subprocess.run([*cc, *flags, "-o", tmp, SOURCE], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"C loop: {' '.join(cc)} failed, C-loop rows skipped:\n{proc.stderr.strip()}", flush=True)
                return None
            os.replace(tmp, path)
        info = dict(compiler=" ".join(cc), compiler_version=version, flags=" ".join(flags))
        return cls(ctypes.CDLL(path), info)

    def bind(self, kind, params, grads, mean_squares, moments=None, mean_grads=None, *, threads, lr=1e-9,
             rho=0.9, eps=1e-6, momentum=0.9):
        """A callable updating these float32 arrays in place, with every pointer table built up front."""
        n = len(params)
        for name, xs in (("grads", grads), ("mean_squares", mean_squares), ("moments", moments),
                         ("mean_grads", mean_grads)):
            if xs is not None and len(xs) != n:
                raise ValueError(f"{name}: expected {n} arrays, got {len(xs)}")
        for xs in (params, grads, mean_squares, moments or [], mean_grads or []):
            for x in xs:
                if x.dtype != np.float32 or not x.flags.c_contiguous:
                    raise ValueError("the C loop takes C-contiguous float32 arrays")
        numel = np.array([x.size for x in params], dtype=np.int64)

        def table(xs):
            return None if xs is None else np.array([x.ctypes.data for x in xs], dtype=np.uintp)

        tables = [table(xs) for xs in (params, grads, mean_squares, moments, mean_grads)]
        ptrs = [None if t is None else t.ctypes.data for t in tables]
        args = (KINDS[kind], n, numel.ctypes.data, *ptrs, lr, rho, eps, momentum, threads)
        fn = self._fn
        keep = (numel, tables, params, grads, mean_squares, moments, mean_grads)

        def step():
            fn(*args)

        step.keep = keep  # the arrays and pointer tables live as long as the callable
        return step

    def for_rule(self, sizes, momentum, centered, *, threads, seed=0):
        """A step over fresh float32 buffers of ``sizes`` (params, grads and the rule's state), for the
        framework benchmarks: the C loop moving the bytes the framework's update of that rule moves."""
        rng = np.random.default_rng(seed)
        p = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
        g = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
        zeros = lambda: [np.zeros(n, np.float32) for n in sizes]  # noqa: E731
        mom = zeros() if momentum else None
        kind = "centered+momentum" if centered else ("momentum" if momentum else "plain")
        if centered and not momentum:
            raise ValueError("the C loop's centered kind has momentum")
        return self.bind(kind, p, g, zeros(), mom, zeros() if centered else None, threads=threads,
                         momentum=momentum)
