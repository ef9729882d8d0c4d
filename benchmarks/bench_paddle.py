"""Paddle, static and dynamic: ``rmsprop_ops.paddle.RMSProp`` with its default arguments vs
``paddle.optimizer.RMSProp``, and the plain fused C loop moving the same bytes.

A/B interleaved from cold caches, medians. For each shape (1x16M, 1000x16K) and rule (momentum 0.9, plain
or centered):

- **exe.run**: a static program made by ``apply_gradients`` alone over persistable gradient variables,
  stepped with ``Executor.run`` (which also prints the whole program into its cache key on every call:
  Paddle's fixed per-call cost, growing with the number of parameters); the C loop over NumPy buffers of
  the same sizes is timed in the same rounds (targets: built-in / ours, and ours / C loop for 1x16M);
- **optimizer** (not in ``--quick``): the same programs through the interpreter ``Executor.run`` caches,
  run directly: exactly the optimizer's ops;
- **dygraph**: ``opt.step()`` in dynamic mode over parameters holding gradients (1000x16K only in
  ``--quick``), in a child process of its own: after the static programs have allocated and freed
  thousands of tensors, every eager op call in the same process costs more (the allocator's state);
- **train step** (not in ``--quick``): a whole ``minimize`` step of a small MLP.

Beside the defaults, the full run also times ``RMSProp(fused=True)`` and ``RMSProp(fused=True,
flat_state=True)`` in the same rounds (config "fused", "flat"). Memory: bytes of each optimizer's state
variables and the RSS growth of its program's first steps.

    python benchmarks/bench_paddle.py [--reps 15] [--json bench_out/paddle.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

from _common import (HPARAMS, SHAPES, VARIANTS, Progress, add_progress_args, interleaved, machine, print_plan,
                     rss_bytes, write_json)

CONFIGS = {"ours": "defaults", "ours_fused": "fused", "ours_flat": "flat"}  # kind -> row config


def settings(args):
    quick = args.quick
    return dict(reps=3 if quick else args.reps, kinds=("ours", "builtin") if quick else (*CONFIGS, "builtin"),
                interp=not quick, train=not quick,
                dygraph_shapes=("1000x16K",) if quick else tuple(SHAPES))


# Expected costs for the progress estimate, in units of one cold core call (see _common.Progress): a
# process start with Paddle's import, building and starting one optimizer's program, one timed step.
_START = 600
_SETUP = {"1x16M": 25, "1000x16K": 150}
_STEP = {"1x16M": 1.5, "1000x16K": 5}
_DYGRAPH_SETUP = {"1x16M": 25, "1000x16K": 30}
_DYGRAPH_STEP = {"1x16M": 2, "1000x16K": 2.5}


def cases(args):
    s = settings(args)
    out = []
    for shape in SHAPES:
        for vname in VARIANTS:
            calls = (s["reps"] + 2) * (len(s["kinds"]) * (1 + s["interp"]) + 1)
            out.append((f"paddle static {shape} {vname}", len(s["kinds"]) * _SETUP[shape] + calls * _STEP[shape]))
    out[0] = (out[0][0], out[0][1] + _START)
    if s["train"]:
        out += [(f"paddle train {vname}", 50 + (s["reps"] + 2) * 2 * 6) for vname in VARIANTS]
    return out + dygraph_cases(s)


def dygraph_cases(s):
    out = [(f"paddle dygraph {shape} {vname}",
            len(s["kinds"]) * _DYGRAPH_SETUP[shape] + (s["reps"] + 2) * len(s["kinds"]) * _DYGRAPH_STEP[shape])
           for shape in s["dygraph_shapes"] for vname in VARIANTS]
    out[0] = (out[0][0], out[0][1] + _START // 2)  # its own process
    return out


def make_opt(kind, v, lr=HPARAMS["lr"], params=None):
    import paddle

    import rmsprop_ops.paddle as rp

    kw = dict(learning_rate=lr, rho=HPARAMS["rho"], epsilon=HPARAMS["epsilon"], momentum=v["momentum"],
              centered=v["centered"], parameters=params)
    if kind == "builtin":
        return paddle.optimizer.RMSProp(**kw)
    if kind == "ours_fused":
        kw["fused"] = True
    elif kind == "ours_flat":
        kw.update(fused=True, flat_state=True)
    return rp.RMSProp(**kw)


def create_parameters(main, sizes, trainable=True, chunk=100):
    """Parameters of ``sizes`` in ``main``, their initialisers spread over startup programs of ``chunk``
    parameters each: Paddle's time to run one startup program grows with the square of its ops (minutes
    for the few thousand of a 1000-parameter optimizer), its time for several small ones linearly."""
    import paddle

    params, startups = [], []
    for i in range(0, len(sizes), chunk):
        startups.append(paddle.static.Program())
        with paddle.static.program_guard(main, startups[-1]):
            params += [paddle.create_parameter([n], "float32", attr=None if trainable else
                                               paddle.ParamAttr(trainable=False)) for n in sizes[i:i + chunk]]
    return params, startups


def build_optimizer_only(kind, sizes, v):
    """Program = the optimizer's ops over parameters and persistable gradients, and its startup programs."""
    import paddle

    main = paddle.static.Program()
    params, startups = create_parameters(main, sizes)
    grads, more = create_parameters(main, sizes, trainable=False)
    startups += more
    startups.append(paddle.static.Program())  # the optimizer's state
    with paddle.static.program_guard(main, startups[-1]):
        make_opt(kind, v).apply_gradients(list(zip(params, grads)))
    known = {p.name for p in params} | {g.name for g in grads}
    return main, startups, params, grads, known


def persistable_names(program):
    return [var.name for var in program.list_vars() if getattr(var, "persistable", False)]


def cached_interpreter(exe, program, scope):
    """The StandaloneExecutor that ``exe.run(program)`` caches and runs. Each ``exe.run`` of a PIR program
    first builds its cache key from ``str(program)``, printing the whole program (for 1000 parameters,
    every op and attribute) on every call; running the cached interpreter directly times the ops alone."""
    import paddle

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
    """(exe.run step, cached-interpreter step, info) of one optimizer's program."""
    import paddle

    cpu = paddle.CPUPlace()
    main, startups, params, grads, known = build_optimizer_only(kind, sizes, v)
    scope = paddle.static.Scope()
    exe = paddle.static.Executor(cpu)
    rss0 = rss_bytes()
    with paddle.static.scope_guard(scope):
        for startup in startups:
            exe.run(startup)
        for x in params + grads:
            scope.var(x.name).get_tensor().set(rng.standard_normal(x.shape[0], dtype=np.float32), cpu)
        exe.run(main)
    rss1 = rss_bytes()
    state = [n for n in persistable_names(main) + persistable_names(startups[-1]) if n not in known]
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
    ops = [op.name() for op in main.global_block().ops if not op.name().startswith(("builtin.", "pd_op.data"))]
    return step, lambda: interp.run([], True, False), dict(state_bytes=nbytes, rss_growth=rss1 - rss0, ops=len(ops))


def setup_train_step(kind, v, rng, batch=256, width=1024, depth=4):
    """A small MLP (depth x width x width Linear + ReLU) trained with MSE."""
    import paddle

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
    exe = paddle.static.Executor(paddle.CPUPlace())
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
    import paddle

    params = [paddle.create_parameter([n], "float32") for n in sizes]
    for p in params:
        p.set_value(rng.standard_normal(p.shape[0], dtype=np.float32))
    # d(sum(p * c))/dp = c: every parameter gets a gradient, which the step leaves in place.
    loss = paddle.add_n([(p * paddle.to_tensor(rng.standard_normal(p.shape[0], dtype=np.float32))).sum()
                         for p in params])
    loss.backward()
    return make_opt(kind, v, params=params).step


def row(bench, shape, vname, kind, ours_ms, builtin_ms, cloop_ms=None, **extra):
    r = dict(framework="paddle", bench=bench, shape=shape, rule=vname, config=CONFIGS[kind], ours_ms=ours_ms,
             builtin_ms=builtin_ms, speedup=builtin_ms / ours_ms, cloop_ms=cloop_ms,
             ours_over_cloop=ours_ms / cloop_ms if cloop_ms else None, **extra)
    return r


def _note(rows):
    return "  " + "  ".join(f"{r['bench']} {r['config']}: x{r['speedup']:.2f}"
                            + (f" ({r['ours_over_cloop']:.2f} C)" if r["ours_over_cloop"] else "") for r in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--json", default="bench_out/paddle.json")
    ap.add_argument("--quick", action="store_true", help="3 repetitions, defaults only, no train step (smoke run)")
    ap.add_argument("--dygraph-only", action="store_true", help=argparse.SUPPRESS)
    add_progress_args(ap)
    args = ap.parse_args()
    s = settings(args)
    if args.plan:
        print_plan(cases(args))
        return 0
    if args.dygraph_only:
        return dygraph_main(args, s)
    import paddle

    import rmsprop_ops
    from _cloop import CLoop

    paddle.enable_static()
    threads = rmsprop_ops.get_num_threads()
    loop = CLoop.build()
    rng = np.random.default_rng(0)
    progress = Progress(cases(args), args.progress)
    rows = []
    print(f"paddle {paddle.__version__}: {', '.join(CONFIGS[k] for k in s['kinds'] if k != 'builtin')} vs "
          f"paddle.optimizer.RMSProp, {s['reps']} reps", flush=True)
    for shape, sizes in SHAPES.items():
        for vname, v in VARIANTS.items():
            fns, info = {}, {}
            for kind in s["kinds"]:
                exe_step, interp_step, info[kind] = setup_optimizer_only(kind, sizes, v, rng)
                fns[f"{kind} exe.run"] = exe_step
                if s["interp"]:
                    fns[f"{kind} optimizer"] = interp_step
            if loop is not None:
                fns["cloop"] = loop.for_rule(sizes, v["momentum"], v["centered"], threads=threads)
            med, _ = interleaved(fns, s["reps"])
            new = []
            for kind in s["kinds"]:
                if kind == "builtin":
                    continue
                new.append(row("exe.run", shape, vname, kind, med[f"{kind} exe.run"], med["builtin exe.run"],
                               med.get("cloop")))
                if s["interp"]:
                    o, b = info[kind], info["builtin"]
                    new.append(row("optimizer", shape, vname, kind, med[f"{kind} optimizer"], med["builtin optimizer"],
                                   med.get("cloop"), ours_state_bytes=o["state_bytes"],
                                   builtin_state_bytes=b["state_bytes"], ours_rss_growth=o["rss_growth"],
                                   builtin_rss_growth=b["rss_growth"], ours_ops=o["ops"], builtin_ops=b["ops"]))
            rows += new
            del fns
            progress.done(f"paddle static {shape} {vname}", _note(new))
    if s["train"]:
        for vname, v in VARIANTS.items():
            ours, builtin = setup_train_step("ours", v, rng), setup_train_step("builtin", v, rng)
            med, _ = interleaved({"ours": ours, "builtin": builtin}, s["reps"])
            rows.append(row("train_step", "mlp4x1024", vname, "ours", med["ours"], med["builtin"]))
            progress.done(f"paddle train {vname}", _note(rows[-1:]))
    rows += dygraph_rows_in_child(args, progress, s)
    write_json(args.json, dict(part="paddle", framework="paddle", version=paddle.__version__, machine=machine(),
                               threads=threads, cloop=loop.info if loop else None, reps=s["reps"], rows=rows))
    return 0


def dygraph_rows_in_child(args, progress, s):
    out = args.json + ".dygraph"
    cmd = [sys.executable, os.path.abspath(__file__), "--dygraph-only", "--reps", str(args.reps), "--json", out,
           "--progress", progress.child_spec()]
    subprocess.run(cmd + (["--quick"] if args.quick else []), check=True)
    progress.advance([label for label, _ in dygraph_cases(s)])
    with open(out) as f:
        rows = json.load(f)["rows"]
    os.remove(out)
    return rows


def dygraph_main(args, s):
    import paddle

    paddle.set_device("cpu")  # as the static rows (CPUPlace), also on a CUDA build of Paddle
    rng = np.random.default_rng(1)
    progress = Progress(dygraph_cases(s), args.progress)
    rows = []
    for shape in s["dygraph_shapes"]:
        sizes = SHAPES[shape]
        for vname, v in VARIANTS.items():
            steps = {kind: setup_dygraph_step(kind, sizes, v, rng) for kind in s["kinds"]}
            med, _ = interleaved(steps, s["reps"])
            new = [row("dygraph", shape, vname, kind, med[kind], med["builtin"]) for kind in s["kinds"]
                   if kind != "builtin"]
            rows += new
            del steps
            progress.done(f"paddle dygraph {shape} {vname}", _note(new))
    write_json(args.json, dict(rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
