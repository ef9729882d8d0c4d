"""Paddle, static and dynamic: ``rmsprop_ops.paddle.RMSProp(fused=True)`` vs ``paddle.optimizer.RMSProp``.

A/B interleaved, medians:

- **optimizer**: a program made by ``apply_gradients`` alone over persistable gradient variables, run
  through the interpreter that ``Executor.run`` caches for it: exactly the optimizer's ops (no feed, no
  backward, nothing fetched);
- **exe.run**: the same programs through ``Executor.run``, which also prints the whole program into its
  cache key on every call (Paddle's fixed per-call cost, growing with the number of parameters);
- **train step**: a whole ``minimize`` step (feed, forward, backward, update) of a small MLP;
- **dygraph**: ``opt.step()`` in dynamic mode over parameters that hold gradients (no target in the issue;
  what a dygraph user gets). Measured in a child process of its own: after the static programs above
  have allocated and freed thousands of tensors, every eager op call in the same process costs more (the
  allocator's state, not the ops; measured in docs/performance.md), ours more than the built-in.

Memory: bytes of the optimizer's state variables (everything persistable the optimizer added) and the
RSS growth of each program's first steps.

Each optimizer, exe.run and dygraph case also times ``RMSProp(fused=True, flat_state=True)`` (variant
"<rule>+flat"), interleaved with the default layout and the built-in, so both rows share the built-in's
time.

    python benchmarks/bench_paddle.py [--reps 15] [--json bench_out/paddle.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import paddle

from _common import HPARAMS, SHAPES, VARIANTS, interleaved, machine, rss_bytes, write_json

import rmsprop_ops.paddle as rp

CPU = paddle.CPUPlace()
KINDS = ("ours", "ours_flat", "builtin")


def make_opt(kind, v, lr=HPARAMS["lr"], params=None):
    kw = dict(learning_rate=lr, rho=HPARAMS["rho"], epsilon=HPARAMS["epsilon"], momentum=v["momentum"],
              centered=v["centered"], parameters=params)
    if kind == "builtin":
        return paddle.optimizer.RMSProp(**kw)
    return rp.RMSProp(fused=True, flat_state=kind == "ours_flat", **kw)


def state_bytes(scope, names):
    return sum(np.array(scope.var(n).get_tensor()).nbytes for n in names)


def build_optimizer_only(kind, sizes, v):
    """Program = the optimizer's ops over parameters and persistable gradients; returns a step callable."""
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        params = [paddle.create_parameter([n], "float32") for n in sizes]
        grads = [paddle.create_parameter([n], "float32", attr=paddle.ParamAttr(trainable=False))
                 for n in sizes]
        opt = make_opt(kind, v)
        opt.apply_gradients(list(zip(params, grads)))
    known = {p.name for p in params} | {g.name for g in grads}
    return main, startup, params, grads, known


def persistable_names(program):
    names = []
    for var in program.list_vars():
        if getattr(var, "persistable", False):
            names.append(var.name)
    return names


def cached_interpreter(exe, program, scope):
    """The StandaloneExecutor that ``exe.run(program)`` caches and runs. Each ``exe.run`` of a PIR program
    first builds its cache key from ``str(program)``, printing the whole program (for 1000 parameters,
    every op and attribute) on every call; running the cached interpreter directly times the ops alone."""
    captured = {}
    cache = exe._executor_cache
    original = cache.get_pir_program_and_executor

    def capture(*a, **kw):
        out = original(*a, **kw)
        captured["exe"] = out[1]
        return out

    cache.get_pir_program_and_executor = capture
    try:
        with paddle.static.scope_guard(scope):
            exe.run(program)
    finally:
        cache.get_pir_program_and_executor = original
    return captured["exe"]


def setup_optimizer_only(kind, sizes, v, rng):
    main, startup, params, grads, known = build_optimizer_only(kind, sizes, v)
    scope = paddle.static.Scope()
    exe = paddle.static.Executor(CPU)
    rss0 = rss_bytes()
    with paddle.static.scope_guard(scope):
        exe.run(startup)
        for p in params:
            scope.var(p.name).get_tensor().set(rng.standard_normal(p.shape[0], dtype=np.float32), CPU)
        for g in grads:
            scope.var(g.name).get_tensor().set(rng.standard_normal(g.shape[0], dtype=np.float32), CPU)
        exe.run(main)
    rss1 = rss_bytes()
    state = [n for n in persistable_names(main) + persistable_names(startup) if n not in known]
    state = sorted({n for n in state if scope.find_var(n) is not None})
    nbytes = 0
    for n in state:
        t = scope.find_var(n).get_tensor()
        if t._is_initialized():
            nbytes += np.array(t).nbytes

    def step():
        with paddle.static.scope_guard(scope):
            exe.run(main)

    interp = cached_interpreter(exe, main, scope)

    def interp_step():
        interp.run([], True, False)

    return step, interp_step, dict(state_bytes=nbytes, state_vars=len(state), rss_growth=rss1 - rss0,
                      ops=[op.name() for op in main.global_block().ops if not op.name().startswith(("builtin.", "pd_op.data"))])


def setup_train_step(kind, v, rng, batch=256, width=1024, depth=4):
    """A small MLP (depth x width x width Linear + ReLU) trained with MSE."""
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [batch, width], "float32")
        y = paddle.static.data("y", [batch, width], "float32")
        h = x
        for i in range(depth):
            h = paddle.nn.Linear(width, width)(h)
            if i < depth - 1:
                h = paddle.nn.functional.relu(h)
        loss = ((h - y) ** 2).mean()
        make_opt(kind, v, lr=1e-4).minimize(loss)
    scope = paddle.static.Scope()
    exe = paddle.static.Executor(CPU)
    feed = {"x": rng.standard_normal((batch, width), dtype=np.float32),
            "y": rng.standard_normal((batch, width), dtype=np.float32)}
    with paddle.static.scope_guard(scope):
        exe.run(startup)

    def step():
        with paddle.static.scope_guard(scope):
            exe.run(main, feed=feed)

    return step


def setup_dygraph_step(kind, sizes, v, rng):
    """``opt.step()`` in dynamic mode over parameters whose gradients are set once and kept."""
    params = [paddle.create_parameter([n], "float32") for n in sizes]
    for p in params:
        p.set_value(rng.standard_normal(p.shape[0], dtype=np.float32))
    # d(sum(p * c))/dp = c: every parameter gets a gradient, which the step leaves in place.
    loss = paddle.add_n([(p * paddle.to_tensor(rng.standard_normal(p.shape[0], dtype=np.float32))).sum()
                         for p in params])
    loss.backward()
    return make_opt(kind, v, params=params).step


def layouts(vname):
    """(our kind, row variant) for the default layout and flat state."""
    return (("ours", vname), ("ours_flat", f"{vname}+flat"))


def timing_rows(bench, shape, vname, med):
    """One row per layout of ours against the built-in from interleaved medians, printed as they come."""
    rows = []
    for kind, variant in layouts(vname):
        rows.append(dict(bench=bench, shape=shape, variant=variant, rule=vname, ours_ms=med[kind],
                         builtin_ms=med["builtin"], speedup=med["builtin"] / med[kind]))
        print(f"{bench:<10} {shape:<9} {variant:<14} ours {med[kind]:8.2f} ms  built-in {med['builtin']:8.2f} ms  "
              f"x{rows[-1]['speedup']:.2f}", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--json", default="bench_out/paddle.json")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    ap.add_argument("--dygraph-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    reps = 3 if args.quick else args.reps
    if args.dygraph_only:
        return dygraph_main(args.json, reps)
    paddle.enable_static()
    rng = np.random.default_rng(0)
    rows = []
    print(f"paddle {paddle.__version__}  {machine()['cpu']}  cores={machine()['cores']}", flush=True)
    for shape, sizes in SHAPES.items():
        for vname, v in VARIANTS.items():
            steps, info = {}, {}
            for kind in KINDS:
                steps[kind], steps[kind + "_interp"], info[kind] = setup_optimizer_only(kind, sizes, v, rng)
            med, _ = interleaved(steps, reps)
            b = info["builtin"]
            rows += timing_rows("exe.run", shape, vname, med)
            for kind, variant in layouts(vname):
                o = info[kind]
                rows.append(dict(bench="optimizer", shape=shape, variant=variant, rule=vname,
                                 ours_ms=med[kind + "_interp"],
                                 builtin_ms=med["builtin_interp"],
                                 speedup=med["builtin_interp"] / med[kind + "_interp"],
                                 ours_state_bytes=o["state_bytes"], builtin_state_bytes=b["state_bytes"],
                                 ours_rss_growth=o["rss_growth"], builtin_rss_growth=b["rss_growth"],
                                 ours_ops=len(o["ops"]), builtin_ops=len(b["ops"])))
                r = rows[-1]
                print(f"optimizer  {shape:<9} {variant:<14} ours {r['ours_ms']:8.2f} ms ({r['ours_ops']} ops)  "
                      f"built-in {r['builtin_ms']:8.2f} ms ({r['builtin_ops']} ops)  x{r['speedup']:.2f}  state "
                      f"{r['ours_state_bytes'] / 2**20:.0f}/{r['builtin_state_bytes'] / 2**20:.0f} MiB", flush=True)
            del steps
    for vname, v in VARIANTS.items():
        ours, builtin = setup_train_step("ours", v, rng), setup_train_step("builtin", v, rng)
        med, _ = interleaved({"ours": ours, "builtin": builtin}, reps)
        rows.append(dict(bench="train_step", shape="mlp4x1024", variant=vname, ours_ms=med["ours"],
                         builtin_ms=med["builtin"], speedup=med["builtin"] / med["ours"]))
        r = rows[-1]
        print(f"train step mlp4x1024 {vname:<9} ours {r['ours_ms']:8.2f} ms  built-in {r['builtin_ms']:8.2f} ms  "
              f"x{r['speedup']:.2f}", flush=True)
    rows += dygraph_rows_in_child(args.json, reps)
    write_json(args.json, dict(framework="paddle", version=paddle.__version__, machine=machine(),
                               threads=__import__("rmsprop_ops").get_num_threads(), reps=reps, rows=rows))
    return 0


def dygraph_rows_in_child(json_path, reps):
    out = json_path + ".dygraph"
    subprocess.run([sys.executable, os.path.abspath(__file__), "--dygraph-only", "--reps", str(reps),
                    "--json", out], check=True)
    with open(out) as f:
        rows = json.load(f)["rows"]
    os.remove(out)
    return rows


def dygraph_main(json_path, reps):
    paddle.set_device("cpu")  # as the static rows (CPUPlace), also on a CUDA build of Paddle
    rng = np.random.default_rng(1)
    rows = []
    for shape, sizes in SHAPES.items():
        for vname, v in VARIANTS.items():
            steps = {kind: setup_dygraph_step(kind, sizes, v, rng) for kind in KINDS}
            med, _ = interleaved(steps, reps)
            rows += timing_rows("dygraph", shape, vname, med)
            del steps
    write_json(json_path, dict(rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
