"""Row-sparse RMSProp (docs/sparse.md): ``rmsprop_ops.paddle.RMSProp`` against ``paddle.optimizer.RMSProp``
on the same SelectedRows gradients, and the core's cost as rows and table grow.

- **paddle**: dynamic mode, defaults, a ``--rows`` x ``--dim`` float32 ``Embedding(sparse=True)`` table,
  ``--ids`` lookups per step (about 1% of the rows; one id repeated, so Paddle's kernel sees merged rows,
  see docs/sparse.md), ``--steps`` steps. Both optimizers get the same gradient each step (the backward
  passes are untimed); ``opt.step()`` is timed, ours and the built-in alternating which goes first. Plain
  and centered without momentum (our "exact" mode) and with momentum 0.9 ("dense" mode). After the last
  step the tables are compared: the largest difference relative to the table's scale. Wall time and the
  process's CPU time (all threads) are both recorded; on a busy machine the CPU time is the steadier.
- **scaling**: the core's exact-mode step (``rmsprop_rows_``) for 10x the ids, and for a 10x smaller and
  (``--big``) a 10x larger table at the same ids, interleaved; each step's ids drawn afresh.
- **memory**: the optimizer state each one adds (Paddle's accumulators; ours adds one int64 counter per
  row and one per table).

    python benchmarks/bench_rows.py [--rows 1000000] [--dim 64] [--ids 10000] [--steps 12]
                                    [--json bench_out/rows.json] [--big] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import numpy as np

from _common import machine, write_json

import rmsprop_ops

RULES = {"plain": dict(), "centered": dict(centered=True), "momentum": dict(momentum=0.9),
         "centered+momentum": dict(centered=True, momentum=0.9)}


def batches(rows, ids, steps, dim, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        b = rng.integers(0, rows, ids).astype(np.int64)
        b[1] = b[0]
        out.append((b, rng.standard_normal((ids, dim)).astype(np.float32)))
    return out


def bench_paddle(args):
    import paddle

    from rmsprop_ops.paddle import RMSProp

    table = np.random.default_rng(1).uniform(-0.05, 0.05, (args.rows, args.dim)).astype(np.float32)
    data = batches(args.rows, args.ids, args.steps, args.dim)
    results = {}
    for rule, kw in RULES.items():
        sides = {}
        for name, cls in (("ours", RMSProp), ("builtin", paddle.optimizer.RMSProp)):
            emb = paddle.nn.Embedding(args.rows, args.dim, sparse=True)
            emb.weight.set_value(table)
            sides[name] = (emb, cls(learning_rate=0.01, parameters=[emb.weight], **kw))
        times = {name: [] for name in sides}
        cpu = {name: [] for name in sides}  # CPU time of the process (all threads): robust to a busy machine
        for step, (ids, w) in enumerate(data):
            for name in (("ours", "builtin") if step % 2 == 0 else ("builtin", "ours")):
                emb, opt = sides[name]
                (emb(paddle.to_tensor(ids)) * paddle.to_tensor(w)).sum().backward()
                t, c = time.perf_counter(), time.process_time()
                opt.step()
                times[name].append((time.perf_counter() - t) * 1e3)
                cpu[name].append((time.process_time() - c) * 1e3)
                opt.clear_grad()
        ours, theirs = (sides[n][0].weight.numpy() for n in ("ours", "builtin"))
        med = {n: statistics.median(v) for n, v in times.items()}
        cpu_med = {n: statistics.median(v) for n, v in cpu.items()}
        mode = sides["ours"][1]._sparse.counters.get(sides["ours"][0].weight.name)
        results[rule] = dict(ms=med, times=times, speedup=med["builtin"] / med["ours"], cpu_ms=cpu_med,
                             cpu_speedup=cpu_med["builtin"] / cpu_med["ours"],
                             max_diff_rel_scale=float(np.abs(ours - theirs).max() / np.abs(theirs).max()),
                             mode=mode.mode if mode is not None else "dense",
                             state_bytes={n: _state_bytes(o, e.weight) for n, (e, o) in sides.items()})
        print(f"paddle {rule:18s} ours {med['ours']:8.2f} ms  built-in {med['builtin']:8.2f} ms  "
              f"{results[rule]['speedup']:6.1f}x  (CPU time {cpu_med['ours']:.1f} / {cpu_med['builtin']:.1f} ms, "
              f"{results[rule]['cpu_speedup']:.1f}x)  max diff {results[rule]['max_diff_rel_scale']:.1e} of the "
              f"table's scale  ({results[rule]['mode']})", flush=True)
        del sides
    return results


def _state_bytes(opt, param):
    total = sum(v.numpy().nbytes for accs in opt._accumulators.values() for v in accs.values())
    sparse = getattr(opt, "_sparse", None)
    if sparse is not None:
        c = sparse.counters.get(param.name)
        if c is not None:
            total += c.last_step.numpy().nbytes + c.step.numpy().nbytes
    return total


def bench_scaling(args):
    configs = {"base": (args.rows, args.ids), "10x ids": (args.rows, args.ids * 10),
               "table / 10": (args.rows // 10, args.ids)}
    if args.big:
        configs["table x 10"] = (args.rows * 10, args.ids)
    tables = {}
    for name, (rows, ids) in configs.items():
        p = np.random.default_rng(2).uniform(-0.05, 0.05, (rows, args.dim)).astype(np.float32)
        ms = np.ones_like(p)  # written (as last_step), so no first-touch page faults land in the timings
        tables[name] = (p, ms, np.full(rows, 0, np.int64), np.zeros(1, np.int64),
                        batches(rows, ids, args.reps + 2, args.dim, seed=3))
    times = {n: [] for n in configs}
    names = list(configs)
    for r in range(args.reps + 2):
        for name in names[r % len(names):] + names[:r % len(names)]:
            p, ms, last, step, data = tables[name]
            ids, vals = data[r]
            t = time.perf_counter()
            rmsprop_ops.rmsprop_rows_(p, ids, vals, ms, last_step=last, step=step, lr=0.01, rho=0.95, epsilon=1e-6)
            if r >= 2:
                times[name].append((time.perf_counter() - t) * 1e3)
    med = {n: statistics.median(v) for n, v in times.items()}
    out = {"ms": med, "times": times, "configs": {n: dict(rows=r, ids=i) for n, (r, i) in configs.items()}}
    for n in names:
        print(f"core  {n:12s} {configs[n][0]:>9d} rows {configs[n][1]:>7d} ids  {med[n]:8.2f} ms  "
              f"({med[n] / med['base']:.2f}x base)", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--ids", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--reps", type=int, default=15, help="steps timed per scaling configuration")
    ap.add_argument("--big", action="store_true", help="also a 10x larger table in the scaling part")
    ap.add_argument("--json", default="bench_out/rows.json")
    ap.add_argument("--quick", action="store_true", help="a small table (smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.ids, args.steps, args.reps = 20_000, 200, 4, 3
    info = machine()
    print(f"CPU: {info['cpu']}, {info['cores']} cores, load {info['load']}; {args.rows} x {args.dim} float32, "
          f"{args.ids} ids per step, {rmsprop_ops.get_num_threads()} threads", flush=True)
    payload = {"machine": info, "args": vars(args)}
    if importlib.util.find_spec("paddle") is not None:
        payload["paddle"] = bench_paddle(args)
    payload["scaling"] = bench_scaling(args)
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
