"""How much of a fused Paddle step is Paddle's own per-value cost, and what packing state saves.

Paddle's PIR interpreter does work for every value around an op on every step: for each in-place output it
shares the buffer into a new variable (``ShareVarBuffer``), and its garbage collector looks the value up and
releases that variable (``CheckGC``, ``~DenseTensor``). That cost depends on the number of values, not on
the op. This script measures it with a custom op that does nothing, given exactly the value layout of
``rmsprop_ops.paddle.RMSProp(fused=True)`` over 1000 x 16K float32 parameters:

- ``per-parameter state`` (the optimizer's default, whose program variables keep Paddle's accumulator
  names): Param, MeanSquare, Moment (and MeanGrad when centered) are in-place lists of 1000, Grad a list
  of 1000 inputs;
- ``packed state``: Param in place (1000) and Grad (1000) with one flat in-place buffer per kind of
  state, the layout of ``RMSProp(flat_state=True)`` (and of fused optimizers that allocate their state
  in one buffer per kind).

A/B interleaved in one process with the real fused op and ``paddle.optimizer.RMSProp``; the difference
"ours - no-op (per-parameter state)" is our kernel plus our adapter.

    python benchmarks/paddle_overhead.py [--reps 21] [--json bench_out/paddle_overhead.json]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import paddle

from _common import SHAPES, VARIANTS, interleaved, machine, machine_line, write_json

import bench_paddle
from rmsprop_ops.paddle._build import _cache_root

NOOP_SOURCE = r"""
#include "paddle/extension.h"
#include <vector>

// Does nothing: what remains of a step is the interpreter's cost for the values around the op.
void NoopKernel(std::vector<paddle::Tensor>& x, const std::vector<paddle::Tensor>& y) {}

std::vector<std::vector<int64_t>> NoopShape(const std::vector<std::vector<int64_t>>& x,
                                            const std::vector<std::vector<int64_t>>& y) { return x; }
std::vector<paddle::DataType> NoopDtype(const std::vector<paddle::DataType>& x,
                                        const std::vector<paddle::DataType>& y) { return x; }

PD_BUILD_OP(rmsprop_ops_bench_noop_)
    .Inputs({paddle::Vec("X"), paddle::Vec("Y")})
    .Outputs({paddle::Vec("XOut")})
    .SetInplaceMap({{paddle::Vec("X"), paddle::Vec("XOut")}})
    .SetKernelFn(PD_KERNEL(NoopKernel))
    .SetInferShapeFn(PD_INFER_SHAPE(NoopShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(NoopDtype));
"""

N_PARAMS, NUMEL = len(SHAPES["1000x16K"]), SHAPES["1000x16K"][0]


def load_noop():
    from paddle.utils.cpp_extension import load

    build = os.path.join(_cache_root(), "bench_noop")
    os.makedirs(build, exist_ok=True)
    src = os.path.join(build, "noop.cc")
    with open(src, "w") as f:
        f.write(NOOP_SOURCE)
    return load(name="rmsprop_ops_bench_noop", sources=[src], build_directory=build, verbose=False)


def noop_program(mod, in_place_sizes, input_sizes):
    """(executor, program, scope) of a program whose only op is the no-op over in-place tensors of
    ``in_place_sizes`` and inputs of ``input_sizes`` elements, its startup programs run."""
    main = paddle.static.Program()
    xs, startups = bench_paddle.create_parameters(main, in_place_sizes)
    ys, more = bench_paddle.create_parameters(main, input_sizes, trainable=False)
    with paddle.static.program_guard(main, paddle.static.Program()):
        mod.rmsprop_ops_bench_noop_(xs, ys)
    scope = paddle.static.Scope()
    exe = paddle.static.Executor(paddle.CPUPlace())
    with paddle.static.scope_guard(scope):
        for startup in startups + more:
            exe.run(startup)
    return exe, main, scope


def noop_step(mod, in_place_sizes, input_sizes):
    """An interpreter step of that program."""
    interp = bench_paddle.cached_interpreter(*noop_program(mod, in_place_sizes, input_sizes))
    return lambda: interp.run([], True, False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--json", default="bench_out/paddle_overhead.json")
    args = ap.parse_args()
    paddle.enable_static()
    mod = load_noop()
    rng = np.random.default_rng(0)
    rows = []
    print(f"paddle {paddle.__version__}  {machine_line(machine())}  "
          f"{N_PARAMS} x {NUMEL} float32", flush=True)
    for vname, v in VARIANTS.items():
        kinds = 3 + v["centered"]  # Param, MeanSquare, Moment (+ MeanGrad)
        fns = {
            "no-op, per-parameter state": noop_step(mod, [NUMEL] * (kinds * N_PARAMS), [NUMEL] * N_PARAMS),
            "no-op, packed state": noop_step(mod, [NUMEL] * N_PARAMS + [NUMEL * N_PARAMS] * (kinds - 1),
                                             [NUMEL] * N_PARAMS),
        }
        fns["ours (fused)"] = bench_paddle.setup_optimizer_only("ours_fused", [NUMEL] * N_PARAMS, v, rng)[1]
        fns["paddle.optimizer.RMSProp"] = bench_paddle.setup_optimizer_only("builtin", [NUMEL] * N_PARAMS, v,
                                                                            rng)[1]
        med, _ = interleaved(fns, args.reps)
        ours, builtin = med["ours (fused)"], med["paddle.optimizer.RMSProp"]
        per_param, packed = med["no-op, per-parameter state"], med["no-op, packed state"]
        projected = ours - per_param + packed
        row = dict(variant=vname, **med, kernel_and_adapter=ours - per_param,
                   projected_packed=projected, ratio_now=builtin / ours, ratio_packed=builtin / projected)
        rows.append(row)
        for k, t in med.items():
            print(f"{vname:<9} {k:<28} {t:8.2f} ms", flush=True)
        print(f"{vname:<9} ours - no-op (kernel + adapter) {row['kernel_and_adapter']:6.2f} ms; with packed state "
              f"~{projected:.2f} ms: built-in/ours {row['ratio_now']:.2f} now, ~{row['ratio_packed']:.2f} packed",
              flush=True)
    write_json(args.json, dict(framework="paddle", version=paddle.__version__, machine=machine(), reps=args.reps,
                               shape=f"{N_PARAMS}x{NUMEL}", rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
