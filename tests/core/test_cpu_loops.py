"""The CPU loops of every instruction set give the bits of the scalar rule, and the right ones are chosen.

The core compiles its CPU loops once per instruction set (avx512, avx2, sse2 on x86-64; generic elsewhere;
scalar everywhere: vectorisation off, the reference) and picks one per process. Each runs here in its own
process (RMSPROP_OPS_CPU_ISA) over tests/scripts/cpu_loops_cases.py's table, and every output buffer must
equal the scalar loops' bit for bit: IEEE sqrt and division, no contraction, and options that are off
folded away exactly.
"""

from __future__ import annotations

import ctypes
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import rmsprop_ops

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "scripts", "cpu_loops_cases.py")
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
ISAS = ["avx512", "avx2", "sse2", "generic"]


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def vendor():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def chosen(isa=None):
    env = dict(os.environ)
    env.pop("RMSPROP_OPS_CPU_ISA", None)
    if isa is not None:
        env["RMSPROP_OPS_CPU_ISA"] = isa
    code = ("import ctypes, rmsprop_ops; lib = ctypes.CDLL(rmsprop_ops.get_library()); "
            "lib.rmsprop_ops_cpu_isa.restype = ctypes.c_char_p; print(lib.rmsprop_ops_cpu_isa().decode())")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """isa -> {output name: bytes} for every instruction set this CPU runs (scalar included)."""
    out = {}
    for isa in ["scalar", *ISAS]:
        path = tmp_path_factory.mktemp(isa) / "out.npz"
        # The reference runs without software prefetch, the others with it (whatever this CPU's default):
        # prefetching must not change a bit either.
        env = dict(os.environ, RMSPROP_OPS_CPU_ISA=isa, RMSPROP_OPS_CPU_PREFETCH="0" if isa == "scalar" else "16384")
        proc = subprocess.run([sys.executable, SCRIPT, str(path)], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        if proc.stdout.strip() != isa:  # not in this build, or this CPU cannot run it
            continue
        with np.load(path) as data:
            out[isa] = {k: data[k] for k in data.files}
    return out


def test_scalar_reference_ran(results):
    assert "scalar" in results
    assert len(results["scalar"]) > 1000


@pytest.mark.parametrize("isa", ISAS)
def test_every_instruction_set_gives_the_scalar_bits(results, isa):
    if isa not in results:
        pytest.skip(f"the {isa} loops are not in this build or this CPU cannot run them")
    ref, got = results["scalar"], results[isa]
    assert got.keys() == ref.keys()
    differ = [k for k in ref if not np.array_equal(ref[k], got[k])]
    assert not differ, f"{len(differ)} outputs differ from the scalar loops, e.g. {differ[:5]}"


def test_some_vectorised_loops_run_here(results):
    if os.uname().machine in ("x86_64", "AMD64"):
        assert "sse2" in results  # part of x86-64: always runs


def test_automatic_choice_follows_the_cpu():
    auto = chosen()
    flags = cpu_flags()
    if os.uname().machine not in ("x86_64", "AMD64") or not flags:
        assert auto in ("generic", "scalar")
        return
    has_256 = {"avx2", "fma", "f16c", "bmi1", "bmi2"} <= flags
    has_512 = has_256 and {"avx512f", "avx512vl", "avx512bw", "avx512dq"} <= flags
    if has_512 and vendor() == "AuthenticAMD":
        assert auto == "avx512"  # 512-bit on AMD (cpu_kernel.cpp says why)
    elif has_256:
        assert auto == "avx2"    # Intel with or without AVX-512, and the rest: 256-bit
    else:
        assert auto == "sse2"    # part of x86-64


def test_a_set_the_cpu_cannot_run_or_an_unknown_name_falls_back_to_the_automatic_choice():
    auto = chosen()
    assert chosen("no-such-loops") == auto
    if "avx512f" not in cpu_flags():
        assert chosen("avx512") == auto


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs binutils' nm")
def test_loop_objects_share_nothing_with_vague_linkage():
    # A function with vague linkage (an inline function not inlined everywhere, a template instantiation)
    # defined in the avx512 object may be the one copy the linker keeps for every caller, the sse2 path's
    # included: a crash on CPUs without AVX-512. The loop objects must define none (weak symbols).
    objs = glob.glob(os.path.join(ROOT, "build", "*", "CMakeFiles", "rmsprop_ops_loops_*.dir", "**", "*.o"),
                     recursive=True)
    if not objs:
        pytest.skip("no build tree with the loop objects next to the tests")
    for obj in objs:
        out = subprocess.run(["nm", "--defined-only", obj], capture_output=True, text=True, check=True).stdout
        weak = [line for line in out.splitlines() if line.split()[1:2] and line.split()[1] in ("W", "V", "u", "w")]
        assert not weak, f"{obj}: {weak[:5]}"


def test_cpu_loops_are_reported():
    lib = ctypes.CDLL(rmsprop_ops.get_library())
    lib.rmsprop_ops_cpu_compiler.restype = ctypes.c_char_p
    assert lib.rmsprop_ops_cpu_compiler().decode()
    assert chosen() in ["scalar", *ISAS]


def test_prefetch_distance_is_settable_and_clamped():
    lib = ctypes.CDLL(rmsprop_ops.get_library())
    lib.rmsprop_ops_cpu_prefetch.restype = ctypes.c_int64
    lib.rmsprop_ops_cpu_set_prefetch.argtypes = [ctypes.c_int64]
    before = lib.rmsprop_ops_cpu_prefetch()
    try:
        for value, expected in ((0, 0), (8192, 8192), (-5, 0), (1 << 40, 1 << 20)):
            lib.rmsprop_ops_cpu_set_prefetch(value)
            assert lib.rmsprop_ops_cpu_prefetch() == expected
    finally:
        lib.rmsprop_ops_cpu_set_prefetch(before)
