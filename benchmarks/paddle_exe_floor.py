"""What ``Executor.run`` costs a 1000-parameter Paddle static optimizer step whatever its kernel does, and the
best built-in / ours that each layout of the step's variables allows.

Every ``exe.run`` of a PIR program prints the whole program into its cache key (``str(program)``) and walks
its data ops in Python before the interpreter runs: a cost per program variable, paid on every step by
``paddle.optimizer.RMSProp`` and by us alike. To see it apart from any kernel, a custom op that does
nothing is given the variables of four layouts over 1000 x 16K float32 parameters (momentum 0.9):

- ``per-parameter state``: the default of ``rmsprop_ops.paddle.RMSProp``, whose state variables carry
  Paddle's accumulator names (what ``paddle.static.save`` writes): the parameters in place; gradients,
  mean squares, moments and mean gradients (Paddle creates these even when not centered) as inputs;
- ``coalesced params, per-parameter state``: the parameters as views of one coalesced buffer (Paddle's
  ``coalesce_tensor``), the op updating that buffer; the parameters stay in the program for the forward
  pass (here: as inputs) and the state as above;
- ``flat state``: ``RMSProp(flat_state=True)``: one state buffer per kind instead of per parameter;
- ``coalesced params, flat state``: both.

Interleaved in one process with ``paddle.optimizer.RMSProp``, ours with its defaults, and the plain fused C
loop moving an update's bytes. ``bound`` = built-in / (no-op step + C loop): the ratio a kernel at the C
loop's speed could show in that layout.

    python benchmarks/paddle_exe_floor.py [--reps 9] [--json bench_out/paddle_exe_floor.json]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from _common import SHAPES, VARIANTS, interleaved, machine, machine_line, write_json  # before paddle: OpenMP

import bench_paddle  # noqa: E402
import paddle  # noqa: E402
from paddle_overhead import load_noop, noop_program  # noqa: E402

N, NUMEL = len(SHAPES["1000x16K"]), SHAPES["1000x16K"][0]
PER = [NUMEL] * N
# layout -> (sizes of the op's in-place tensors, sizes of its other inputs)
LAYOUTS = {
    "per-parameter state": (PER, PER * 4),
    "coalesced params, per-parameter state": ([NUMEL * N], PER * 5),
    "flat state": (PER + [NUMEL * N] * 2, PER),
    "coalesced params, flat state": ([NUMEL * N] * 3, PER * 2),
}


def noop_exe_run(mod, in_place_sizes, input_sizes):
    """``exe.run`` of a program whose only op is the no-op over variables of these sizes."""
    exe, main, scope = noop_program(mod, in_place_sizes, input_sizes)

    def step():
        with paddle.static.scope_guard(scope):
            exe.run(main)
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--json", default="bench_out/paddle_exe_floor.json")
    args = ap.parse_args()
    import rmsprop_ops
    from _cloop import CLoop

    paddle.enable_static()
    mod = load_noop()
    v = VARIANTS["plain"]
    rng = np.random.default_rng(0)
    print(f"paddle {paddle.__version__}  {machine_line(machine())}  {N} x {NUMEL} float32, momentum 0.9", flush=True)
    fns = {f"no-op, {name}": noop_exe_run(mod, *sizes) for name, sizes in LAYOUTS.items()}
    fns["paddle.optimizer.RMSProp"] = bench_paddle.setup_optimizer_only("builtin", PER, v, rng)[0]
    fns["ours, defaults"] = bench_paddle.setup_optimizer_only("ours", PER, v, rng)[0]
    loop = CLoop.build()
    if loop is not None:
        fns["C loop"] = loop.for_rule(PER, v["momentum"], v["centered"], threads=rmsprop_ops.get_num_threads())
    med, _ = interleaved(fns, args.reps)
    builtin, cloop = med["paddle.optimizer.RMSProp"], med.get("C loop")
    rows = []
    for name in LAYOUTS:
        noop = med[f"no-op, {name}"]
        bound = builtin / (noop + cloop) if cloop else None
        rows.append(dict(layout=name, noop_exe_run_ms=noop, bound=bound))
        print(f"no-op exe.run, {name:<38} {noop:7.2f} ms" + (f"   bound {bound:.2f}" if bound else ""), flush=True)
    for k in ("paddle.optimizer.RMSProp", "ours, defaults", "C loop"):
        if k in med:
            print(f"{k:<53} {med[k]:7.2f} ms", flush=True)
    print(f"built-in / ours, defaults: {builtin / med['ours, defaults']:.2f}", flush=True)
    write_json(args.json, dict(framework="paddle", version=paddle.__version__, machine=machine(), reps=args.reps,
                               shape=f"{N}x{NUMEL}", builtin_ms=builtin, ours_ms=med["ours, defaults"],
                               cloop_ms=cloop, rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
