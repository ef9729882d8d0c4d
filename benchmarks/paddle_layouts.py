"""Paddle: what each state layout of ``rmsprop_ops.paddle.RMSProp`` costs against ``paddle.optimizer.RMSProp``.

Interleaved medians (``_common.interleaved``), one process per mode:

- **static**: a program made by ``apply_gradients`` over persistable gradients, run through
  ``Executor.run`` (``exe.run``: Paddle also prints the program into its cache key on every call) and
  through the interpreter ``Executor.run`` caches (``optimizer``: the ops alone). Candidates: the built-in,
  ours with default arguments (one fused op, ``paddle.optimizer.RMSProp``'s per-parameter variables) and
  ours with ``flat_state=True`` (the program's variables are one buffer per kind of state).
- **dygraph**: ``opt.step()`` over parameters holding gradients. Candidates: the built-in, ours with default
  arguments (flat buffers, per-parameter views) and ours with ``flat_state=False``.

    python benchmarks/paddle_layouts.py [--reps 11] [--shapes 1000x16K] [--json bench_out/paddle_layouts.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import paddle

from _common import HPARAMS, SHAPES, VARIANTS, interleaved, machine, write_json
from bench_paddle import cached_interpreter

import rmsprop_ops.paddle as rp

CPU = paddle.CPUPlace()
STATIC = {"builtin": None, "default": {}, "flat_state=True": dict(flat_state=True)}
DYGRAPH = {"builtin": None, "default": {}, "flat_state=False": dict(flat_state=False)}


def make_opt(extra, v, params=None):
    kw = dict(learning_rate=HPARAMS["lr"], rho=HPARAMS["rho"], epsilon=HPARAMS["epsilon"], momentum=v["momentum"],
              centered=v["centered"], parameters=params)
    return paddle.optimizer.RMSProp(**kw) if extra is None else rp.RMSProp(**kw, **extra)


def static_candidate(extra, sizes, v, rng):
    """(exe.run step, cached-interpreter step) of one optimizer's program."""
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        params = [paddle.create_parameter([n], "float32") for n in sizes]
        grads = [paddle.create_parameter([n], "float32", attr=paddle.ParamAttr(trainable=False)) for n in sizes]
        make_opt(extra, v).apply_gradients(list(zip(params, grads)))
    scope, exe = paddle.static.Scope(), paddle.static.Executor(CPU)
    with paddle.static.scope_guard(scope):
        exe.run(startup)
        for t in params + grads:
            scope.var(t.name).get_tensor().set(rng.standard_normal(t.shape[0], dtype=np.float32), CPU)
    interp = cached_interpreter(exe, main, scope)

    def run():
        with paddle.static.scope_guard(scope):
            exe.run(main)

    return run, lambda: interp.run([], True, False)


def dygraph_candidate(extra, sizes, v, rng):
    params = [paddle.create_parameter([n], "float32") for n in sizes]
    for p in params:
        p.set_value(rng.standard_normal(p.shape[0], dtype=np.float32))
    paddle.add_n([(p * paddle.to_tensor(rng.standard_normal(p.shape[0], dtype=np.float32))).sum()
                  for p in params]).backward()
    return make_opt(extra, v, params).step


def rows_for(mode, shapes, reps):
    rng = np.random.default_rng(0)
    out = []
    for shape in shapes:
        for vname, v in VARIANTS.items():
            fns = {}
            if mode == "static":
                for name, extra in STATIC.items():
                    fns[f"exe.run/{name}"], fns[f"optimizer/{name}"] = static_candidate(extra, SHAPES[shape], v, rng)
            else:
                for name, extra in DYGRAPH.items():
                    fns[f"dygraph/{name}"] = dygraph_candidate(extra, SHAPES[shape], v, rng)
            med, _ = interleaved(fns, reps)
            for key, ms in med.items():
                bench, name = key.split("/")
                if name == "builtin":
                    continue
                row = dict(bench=bench, shape=shape, rule=vname, layout=name, ours_ms=ms,
                           builtin_ms=med[f"{bench}/builtin"])
                row["speedup"] = row["builtin_ms"] / ms
                out.append(row)
                print("  ".join(f"{row[k]:.2f}" if isinstance(row[k], float) else str(row[k]) for k in row), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--json", default="bench_out/paddle_layouts.json")
    ap.add_argument("--mode", choices=["static", "dygraph"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:  # a child process: one mode, rows as JSON on stdout's last line
        if args.mode == "static":
            paddle.enable_static()
        else:
            paddle.set_device("cpu")
        print(json.dumps(rows_for(args.mode, args.shapes, args.reps)))
        return 0
    print(f"paddle {paddle.__version__}  {machine()['cpu']}  cores={machine()['cores']}", flush=True)
    rows = []
    for mode in ("static", "dygraph"):
        # Each mode in its own process: after a static program has allocated and freed thousands of
        # tensors, eager op calls in the same process cost more (the allocator's state, not the ops).
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--mode", mode, "--reps", str(args.reps),
                               "--shapes", *args.shapes], stdout=subprocess.PIPE, text=True, check=True)
        lines = proc.stdout.strip().splitlines()
        print("\n".join(lines[:-1]), flush=True)
        rows += json.loads(lines[-1])
    write_json(args.json, dict(framework="paddle", version=paddle.__version__, machine=machine(), reps=args.reps,
                               rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
