"""The installed C ABI is usable from plain C (no C++ types cross it): compile a C99 program against the
shipped header and library, run one update, and compare with the Python front end."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

import numpy as np
import pytest

import rmsprop_ops

C_PROGRAM = r"""
#include <stdio.h>
#include "rmsprop_ops/c_api.h"

int main(void) {
  float p[3] = {1.0f, -2.0f, 3.0f}, g[3] = {0.5f, 0.25f, -1.0f}, ms[3] = {0}, mom[3] = {0};
  int64_t shape[1] = {3};
  rmsprop_ops_hparams hp;
  rmsprop_ops_default_hparams(&hp);
  hp.lr.value = 0.1; hp.rho = 0.9; hp.epsilon = 1e-6; hp.momentum = 0.9;
  rmsprop_ops_tensor_set s = {0};
  rmsprop_ops_tensor t = {0};
  t.numel = 3; t.shape = shape; t.ndim = 1; t.dtype = RMSPROP_OPS_FLOAT32; t.writable = 1;
  t.device = RMSPROP_OPS_CPU;
  s.param = t; s.param.data = p;
  s.grad = t; s.grad.data = g;
  s.mean_square = t; s.mean_square.data = ms;
  s.moment = t; s.moment.data = mom;
  s.lr_mult = 1.0;
  char err[256];
  int rc = rmsprop_ops_update(&s, 1, &hp, NULL, 0, err, sizeof err);
  if (rc != RMSPROP_OPS_OK) { printf("error %d %s\n", rc, err); return 1; }
  printf("%.9g %.9g %.9g\n", p[0], p[1], p[2]);
  hp.epsilon = 0.0;
  rc = rmsprop_ops_update(&s, 1, &hp, NULL, 0, err, sizeof err);
  printf("%d %s\n", rc, err);
  if (rmsprop_ops_registry_json()[0] != '{') return 3;
  return rmsprop_ops_abi_version() == RMSPROP_OPS_ABI_VERSION ? 0 : 2;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler")
def test_c_program_against_installed_header_and_library(tmp_path):
    src = tmp_path / "main.c"
    src.write_text(C_PROGRAM)
    exe = tmp_path / "main"
    lib = rmsprop_ops.get_library()
    # In the sanitizer CI job the library is an ASan+UBSan build: the program is too, and it runs with
    # LeakSanitizer on, which CPython (not leak-clean at exit) cannot.
    sanitize = os.environ.get("RMSPROP_OPS_TEST_SANITIZE") == "1"
    flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"] if sanitize else []
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1") if sanitize else None
    if env is not None:
        env.pop("LD_PRELOAD", None)
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", *flags, "-I", rmsprop_ops.get_include(), str(src), lib,
                    f"-Wl,-rpath,{os.path.dirname(lib)}", "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True, env=env).stdout.splitlines()
    p = np.array([1.0, -2.0, 3.0], np.float32)
    rmsprop_ops.rmsprop_(p, np.array([0.5, 0.25, -1.0], np.float32), np.zeros(3, np.float32),
                         moment=np.zeros(3, np.float32), lr=0.1, rho=0.9, epsilon=1e-6, momentum=0.9)
    np.testing.assert_array_equal(np.array(out[0].split(), np.float32), p)
    code, msg = out[1].split(" ", 1)
    assert int(code) == 2 and msg.startswith("epsilon: expected a value > 0, got 0")


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs binutils' nm")
def test_core_library_exports_the_c_abi_alone():
    # Anything else exported (C++ instantiations, a statically linked libstdc++ or CUDA runtime) can
    # interpose on the process's own copies: a static libstdc++ exported this way crashed the interpreter.
    out = subprocess.run(["nm", "-D", "--defined-only", rmsprop_ops.get_library()], capture_output=True,
                         text=True, check=True).stdout
    names = {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}
    assert names, "no dynamic symbols read"
    assert {n for n in names if not n.startswith("rmsprop_ops_")} == set()
    assert {"rmsprop_ops_update", "rmsprop_ops_registry_json", "rmsprop_ops_abi_version"} <= names


LAYOUT_PROGRAM = r"""
#include <stddef.h>
#include <stdio.h>
#include "rmsprop_ops/c_api.h"
#include "rmsprop_ops/flat.h"
#define F(T, f) printf("%s.%s %zu %zu\n", #T, #f, offsetof(T, f), sizeof(((T *)0)->f))
int main(void) {
  printf("tensor %zu\nset %zu\nscalar %zu\nhparams %zu\n", sizeof(rmsprop_ops_tensor),
         sizeof(rmsprop_ops_tensor_set), sizeof(rmsprop_ops_scalar), sizeof(rmsprop_ops_hparams));
  FIELDS
  int64_t sizes[5] = {3, 20, 0, 1, 16}, offsets[5];
  long long total = (long long)rmsprop_ops_flat_offsets(sizes, 5, RMSPROP_OPS_FLAT_ALIGN, offsets);
  printf("flat %lld %lld %lld %lld %lld %lld\n", (long long)offsets[0], (long long)offsets[1], (long long)offsets[2],
         (long long)offsets[3], (long long)offsets[4], total);
  return 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler")
def test_ctypes_mirror_and_flat_packing_match_the_headers(tmp_path):
    import c_abi

    from rmsprop_ops._toolkit.flat import flat_offsets

    structs = {"rmsprop_ops_tensor": c_abi.Tensor, "rmsprop_ops_tensor_set": c_abi.TensorSet,
               "rmsprop_ops_scalar": c_abi.Scalar, "rmsprop_ops_hparams": c_abi.HParams}
    fields = " ".join(f"F({t}, {name});" for t, cls in structs.items() for name, _ in cls._fields_)
    src = tmp_path / "layout.c"
    src.write_text(LAYOUT_PROGRAM.replace("FIELDS", fields))
    exe = tmp_path / "layout"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-I", rmsprop_ops.get_include(), str(src), "-o", str(exe)],
                   check=True)
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    got = dict(line.rsplit(" ", 1) if line.count(" ") == 1 else (line.split(" ", 1)[0], line.split(" ", 1)[1])
               for line in lines)
    for key, cls in zip(("tensor", "set", "scalar", "hparams"), structs.values()):
        assert int(got[key]) == ctypes.sizeof(cls), key
    for t, cls in structs.items():
        for name, _ in cls._fields_:
            offset, size = map(int, got[f"{t}.{name}"].split())
            assert (offset, size) == (getattr(cls, name).offset, getattr(cls, name).size), f"{t}.{name}"
    offsets, total = flat_offsets([3, 20, 0, 1, 16])
    assert list(map(int, got["flat"].split())) == [*offsets, total]
