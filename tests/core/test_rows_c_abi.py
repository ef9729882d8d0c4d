"""The rows C ABI (rows_api.h) from plain C: one update compared with the Python front end, then hostile
descriptors a C caller can build (shapes that do not match numel, products past 2^63, NULL pointers, an
unknown mode, float indices, counters ahead of the step) and rule options of the hparams the rows update
does not model (nesterov, bias_correction, a step other than the default, in every mode, update and
catch-up), each refused with a message and nothing written; maximize, which it does model, is compared
with the dense update. The program runs in a subprocess: a descriptor the validation missed would crash it."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

import rmsprop_ops

C_PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include "rmsprop_ops/rows_api.h"

static float p[8], ms[8], mom[8], vals[6];
static int64_t idx[3] = {3, 0, 3}, last[4], step[1], shape[2] = {4, 2}, vshape[2] = {3, 2}, ishape[1] = {3};
static double fidx[3] = {3, 0, 3};

static rmsprop_ops_tensor tensor(void *data, int64_t numel, const int64_t *shape, int32_t ndim, int32_t dtype) {
  rmsprop_ops_tensor t;
  memset(&t, 0, sizeof t);
  t.data = data; t.numel = numel; t.shape = shape; t.ndim = ndim; t.dtype = dtype; t.writable = 1;
  t.device = RMSPROP_OPS_CPU;
  return t;
}

static rmsprop_ops_rows valid(void) {
  rmsprop_ops_rows r;
  memset(&r, 0, sizeof r);
  r.param = tensor(p, 8, shape, 2, RMSPROP_OPS_FLOAT32);
  r.mean_square = tensor(ms, 8, shape, 2, RMSPROP_OPS_FLOAT32);
  r.last_step = tensor(last, 4, shape, 1, RMSPROP_OPS_INT64);
  r.step = tensor(step, 1, NULL, 0, RMSPROP_OPS_INT64);
  r.indices = tensor(idx, 3, ishape, 1, RMSPROP_OPS_INT64);
  r.values = tensor(vals, 6, vshape, 2, RMSPROP_OPS_FLOAT32);
  r.lr_mult = 1.0;
  r.mode = RMSPROP_OPS_ROWS_EXACT;
  return r;
}

static unsigned checksum(void) {
  unsigned h = 0;
  const unsigned char *b[5] = {(const unsigned char *)p, (const unsigned char *)ms, (const unsigned char *)last,
                               (const unsigned char *)step, (const unsigned char *)mom};
  const size_t n[5] = {sizeof p, sizeof ms, sizeof last, sizeof step, sizeof mom};
  for (int k = 0; k < 5; ++k)
    for (size_t i = 0; i < n[k]; ++i) h = h * 31u + b[k][i];
  return h;
}

int main(void) {
  for (int i = 0; i < 8; ++i) p[i] = (float)i * 0.25f;
  for (int i = 0; i < 6; ++i) vals[i] = 0.5f - (float)i * 0.125f;
  rmsprop_ops_hparams hp;
  rmsprop_ops_default_hparams(&hp);
  hp.lr.value = 0.1; hp.rho = 0.9; hp.epsilon = 1e-6;
  char err[512];
  rmsprop_ops_rows r = valid();
  int rc = rmsprop_ops_rows_update(&r, &hp, NULL, 0, err, sizeof err);
  if (rc != RMSPROP_OPS_OK) { printf("error %d %s\n", rc, err); return 1; }
  for (int i = 0; i < 8; ++i) printf("%.9g ", p[i]);
  printf("\n%lld %lld %lld %lld %lld\n", (long long)last[0], (long long)last[1], (long long)last[2],
         (long long)last[3], (long long)step[0]);

  const unsigned before = checksum();
  int64_t bad_shape[2] = {4, 3}, huge[2] = {(int64_t)1 << 40, (int64_t)1 << 40};
  static const int32_t modes[3] = {RMSPROP_OPS_ROWS_DENSE, RMSPROP_OPS_ROWS_EXACT, RMSPROP_OPS_ROWS_LAZY};
  int64_t step_mem[1] = {3};
  for (int c = 0; c < 9 + 4 * 3 * 2; ++c) {
    r = valid();
    rmsprop_ops_hparams h = hp;
    const int u = c - 9, option = u / 6, mode = (u % 6) / 2, catch_up = u % 2;
    if (c >= 9) {  /* an option the rows update does not model, in every mode, update and catch-up */
      r.mode = modes[mode];
      if (r.mode == RMSPROP_OPS_ROWS_DENSE) { r.last_step.data = NULL; r.step.data = NULL; }
      if (r.mode == RMSPROP_OPS_ROWS_LAZY) h.momentum = 0.9, r.moment = tensor(mom, 8, shape, 2, RMSPROP_OPS_FLOAT32);
      switch (option) {
        case 0: h.nesterov = 1; break;
        case 1: h.bias_correction = 1; break;
        case 2: h.step.value = 3; break;
        case 3: h.step.ptr = step_mem; h.step.dtype = RMSPROP_OPS_INT64; break;
      }
      rc = catch_up && r.mode != RMSPROP_OPS_ROWS_DENSE ? rmsprop_ops_rows_catch_up(&r, &h, NULL, 0, err, sizeof err)
                                                         : rmsprop_ops_rows_update(&r, &h, NULL, 0, err, sizeof err);
      printf("case %d: %d %s\n", c, rc, err);
      if (rc == RMSPROP_OPS_OK) return 5;
      if (checksum() != before) { printf("case %d wrote\n", c); return 6; }
      continue;
    }
    switch (c) {
      case 0: r.param.shape = bad_shape; break;                     /* 12 elements said, 8 given */
      case 1: r.param.shape = huge; break;                          /* rows x width past 2^63 */
      case 2: r.indices.data = NULL; break;                         /* 3 indices, no memory */
      case 3: r.values.data = NULL; r.values.numel = 0; break;      /* no values */
      case 4: r.mode = 7; break;
      case 5: r.indices = tensor(fidx, 3, ishape, 1, RMSPROP_OPS_FLOAT64); break;
      case 6: last[2] = 99; r.indices.data = NULL; r.indices.numel = 0; break;  /* catch-up: every row */
      case 7: idx[1] = 4; break;                                    /* one past the last row */
      case 8: r.values.numel = (int64_t)1 << 62; r.values.shape = NULL; break;
    }
    rc = c == 6 ? rmsprop_ops_rows_catch_up(&r, &hp, NULL, 0, err, sizeof err)
                : rmsprop_ops_rows_update(&r, &hp, NULL, 0, err, sizeof err);
    printf("case %d: %d %s\n", c, rc, err);
    if (c == 6) last[2] = 0;
    if (c == 7) idx[1] = 0;
    if (rc == RMSPROP_OPS_OK) return 5;
    if (checksum() != before) { printf("case %d wrote\n", c); return 6; }
  }

  /* maximize: modelled (the gradient is negated; a skipped row's zero gradient moves nothing either way) */
  r = valid();
  hp.maximize = 1;
  rc = rmsprop_ops_rows_update(&r, &hp, NULL, 0, err, sizeof err);
  if (rc != RMSPROP_OPS_OK) { printf("maximize: error %d %s\n", rc, err); return 7; }
  printf("maximize:");
  for (int i = 0; i < 8; ++i) printf(" %.9g", p[i]);
  printf("\n");
  return 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler")
def test_rows_c_abi_from_plain_c(tmp_path):
    src = tmp_path / "main.c"
    src.write_text(C_PROGRAM)
    exe = tmp_path / "main"
    sanitize = os.environ.get("RMSPROP_OPS_TEST_SANITIZE") == "1"
    flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"] if sanitize else []
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1") if sanitize else None
    if env is not None:
        env.pop("LD_PRELOAD", None)
    lib = rmsprop_ops.get_library()
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", *flags, "-I", rmsprop_ops.get_include(), str(src), lib,
                    "-Wl,-rpath," + os.path.dirname(lib), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()

    # The same update through Python.
    p = (np.arange(8, dtype=np.float32) * 0.25).reshape(4, 2)
    ms, last, step = np.zeros_like(p), np.zeros(4, np.int64), np.zeros(1, np.int64)
    vals = (0.5 - np.arange(6, dtype=np.float32) * 0.125).reshape(3, 2)
    rmsprop_ops.rmsprop_rows_(p, np.array([3, 0, 3]), vals, ms, last_step=last, step=step, lr=0.1, rho=0.9,
                              epsilon=1e-6)
    np.testing.assert_array_equal(np.array(lines[0].split(), np.float32), p.ravel())
    assert lines[1].split() == ["1", "0", "0", "1", "1"]

    cases = dict(line.split(": ", 1) for line in lines[2:-1])
    # maximize after the first update: the dense update with maximize, the gradient's rows summed.
    g = np.zeros_like(p)
    np.add.at(g, np.array([3, 0, 3]), vals)
    ms_dense = ms.copy()
    rmsprop_ops.rmsprop_(p, g, ms_dense, lr=0.1, rho=0.9, epsilon=1e-6, maximize=True)
    assert lines[-1].startswith("maximize:"), lines[-1]
    np.testing.assert_array_equal(np.array(lines[-1].split()[1:], np.float32), p.ravel())
    expect = {
        "case 0": "2 param: expected numel 12 (shape (4, 3)), got 8",
        "case 1": "2 param: expected a shape of at most 2^63 elements, got (1099511627776, 1099511627776)",
        "case 2": "2 indices: missing",
        "case 3": "2 values: expected an array, got None",
        "case 4": "2 mode: expected one of {dense, exact, lazy}, got 7",
        "case 5": "1 indices: expected dtype int64 or int32, got float64",
        "case 6": "2 last_step[2]: expected a count in [0, step=1], got 99",
        "case 7": "2 indices[1]: expected a row in [0, 4), got 4",
        "case 8": "2 values: expected shape (3, 2) (one row of param per index), got (4611686018427387904 elements)",
    }
    unmodelled = ["2 nesterov: expected False for a row-sparse update (its catch-up of skipped rows does not model it",
                  "2 bias_correction: expected False for a row-sparse update",
                  "2 step: expected the default 1 for a row-sparse update (its step counter is rows.step), got 3",
                  "2 step: expected the default 1 for a row-sparse update (its step counter is rows.step), got a scalar"]
    for c in range(9, 9 + 4 * 3 * 2):
        expect[f"case {c}"] = unmodelled[(c - 9) // 6]
    for case, message in expect.items():
        code, text = message.split(" ", 1)
        assert cases[case].startswith(code + " "), (case, cases[case])
        assert text in cases[case], (case, cases[case])
