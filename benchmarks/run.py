"""One command for every benchmark: the core kernel, Paddle and MindSpore, each in its own interpreter.

Paddle and MindSpore cannot share a process (their oneDNN builds clash), so each framework's benchmark runs
as a subprocess of the interpreter given for it (default: this one, when it can import the framework).
Within each, ours and the built-in are A/B interleaved and medians reported (see the bench_*.py files).
Prints one table of times and ratios against the targets of issue 6, writes the JSON of every part and a
summary to ``--out`` (default bench_out/), and draws a bar chart of the ratios (``ratios.png``).

    python benchmarks/run.py [--paddle-python PY] [--mindspore-python PY] [--reps 15] [--quick]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# (framework, bench, shape, variant) -> minimum speedup of ours over the built-in, optimizer part.
SPEEDUP_TARGETS = {
    ("paddle", "optimizer", "1x16M", "plain"): 1.3,
    ("paddle", "optimizer", "1x16M", "centered"): 1.8,
    ("paddle", "optimizer", "1000x16K", "plain"): 3.0,
    ("paddle", "optimizer", "1000x16K", "centered"): 3.0,
    ("mindspore", "optimizer", "1x16M", "plain"): 1.4,
    ("mindspore", "optimizer", "1x16M", "centered"): 5.0,
    ("mindspore", "optimizer", "1000x16K", "plain"): 2.0,
    ("mindspore", "optimizer", "1000x16K", "centered"): 4.0,
}
CORE_TARGET = 1.25  # ours / bandwidth probe


def can_import(python, module):
    if python == sys.executable:
        return importlib.util.find_spec(module) is not None
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


# Quiet logs: GLOG_v is a verbosity level for Paddle but a minimum severity for MindSpore (3 = errors).
_QUIET = {"paddle": {"GLOG_minloglevel": "2"}, "mindspore": {"GLOG_v": "3"}, "core": {}}


def run_part(name, python, script, json_path, extra):
    cmd = [python, os.path.join(HERE, script), "--json", json_path, *extra]
    print(f"\n== {name}: {' '.join(cmd)}", flush=True)
    env = dict(_QUIET[name], **os.environ)
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0 or not os.path.exists(json_path):
        print(f"!! {name} failed (exit {proc.returncode})", flush=True)
        return None
    with open(json_path) as f:
        return json.load(f)


# Framework variant -> the core benchmark's variant moving the same buffers (both use momentum 0.9).
_CORE_VARIANT = {"plain": "momentum", "centered": "centered+momentum"}


def _rule(r):
    """The update rule of a row ("plain" / "centered"); its variant may name a layout too ("plain+flat")."""
    return r.get("rule", r["variant"])


def _target(fw, r):
    return SPEEDUP_TARGETS.get((fw, r["bench"], r["shape"], _rule(r)))


def roofline_bound(results, r):
    """The speedup ours would show running exactly at the memory roofline: built-in / bandwidth probe of the
    same shape and buffers (None without the core run or for rows that are not the optimizer alone)."""
    core = results.get("core")
    if core is None or r.get("bench") != "optimizer":
        return None
    for c in core["rows"]:
        if c["shape"] == r["shape"] and c["variant"] == _CORE_VARIANT.get(_rule(r)):
            return r["builtin_ms"] / c["probe_ms"]
    return None


def table(results):
    lines = [f"{'framework':<10} {'bench':<10} {'shape':<10} {'variant':<18} {'ours ms':>8} {'other ms':>9} "
             f"{'ratio':>7} {'target':>8}  ok  {'bound':>5}", "-" * 99]
    for fw, res in results.items():
        if res is None:
            continue
        for r in res["rows"]:
            if fw == "core":
                ok = r["ours_over_probe"] <= CORE_TARGET
                lines.append(f"{'core':<10} {'vs probe':<10} {r['shape']:<10} {r['variant']:<18} {r['ours_ms']:8.2f} "
                             f"{r['probe_ms']:9.2f} {r['ours_over_probe']:7.2f} {'<=' + str(CORE_TARGET):>8}  "
                             f"{'yes' if ok else 'NO'}")
                continue
            target = _target(fw, r)
            ok = "" if target is None else ("yes" if r["speedup"] >= target else "NO")
            bound = roofline_bound(results, r)
            lines.append(f"{fw:<10} {r['bench']:<10} {r['shape']:<10} {r['variant']:<18} {r['ours_ms']:8.2f} "
                         f"{r['builtin_ms']:9.2f} {r['speedup']:7.2f} "
                         f"{'' if target is None else '>=' + str(target):>8}  {ok:<3} "
                         f"{'' if bound is None else f'{bound:5.2f}'}")
    lines.append("ratio: core = ours / bandwidth probe (lower is better); frameworks = built-in / ours (speedup)")
    lines.append("bound: built-in / bandwidth probe, the speedup of an update running exactly at the memory roofline")
    return "\n".join(lines)


def markdown(results):
    """The same table as Markdown, for docs/performance.md."""
    out = ["| part | bench | shape | variant | ours ms | other ms | ratio | target | met | roofline bound |",
           "|---|---|---|---|---:|---:|---:|---|---|---:|"]
    for fw, res in results.items():
        if res is None:
            continue
        for r in res["rows"]:
            if fw == "core":
                out.append(f"| core | vs probe | {r['shape']} | {r['variant']} | {r['ours_ms']:.2f} | "
                           f"{r['probe_ms']:.2f} | {r['ours_over_probe']:.2f} | <= {CORE_TARGET} | "
                           f"{'yes' if r['ours_over_probe'] <= CORE_TARGET else 'no'} | |")
                continue
            t = _target(fw, r)
            b = roofline_bound(results, r)
            out.append(f"| {fw} | {r['bench']} | {r['shape']} | {r['variant']} | {r['ours_ms']:.2f} | "
                       f"{r['builtin_ms']:.2f} | {r['speedup']:.2f} | {'' if t is None else '>= ' + str(t)} | "
                       f"{'' if t is None else ('yes' if r['speedup'] >= t else 'no')} | "
                       f"{'' if b is None else f'{b:.2f}'} |")
    return "\n".join(out) + "\n"


def memory_table(results):
    lines = [f"{'framework':<10} {'shape':<10} {'variant':<14} {'state ours MiB':>15} {'state built-in MiB':>19} "
             f"{'RSS+ ours MiB':>14} {'RSS+ built-in MiB':>18}"]
    for fw in ("paddle", "mindspore"):
        res = results.get(fw)
        if res is None:
            continue
        for r in res["rows"]:
            if "ours_state_bytes" in r:
                lines.append(f"{fw:<10} {r['shape']:<10} {r['variant']:<14} {r['ours_state_bytes'] / 2**20:15.1f} "
                             f"{r['builtin_state_bytes'] / 2**20:19.1f} {r['ours_rss_growth'] / 2**20:14.1f} "
                             f"{r['builtin_rss_growth'] / 2**20:18.1f}")
    return "\n".join(lines)


def chart(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed in this interpreter: no chart", flush=True)
        return False
    labels, values, targets, colors, hatches = [], [], [], [], []
    palette = {"paddle": "#2f6db3", "mindspore": "#d0602a"}
    for fw in ("paddle", "mindspore"):
        res = results.get(fw)
        if res is None:
            continue
        for r in res["rows"]:
            bench = {"optimizer": "optim", "train_step": "train", "exe.run": "exe.run"}.get(r["bench"], r["bench"])
            labels.append(f"{fw} {bench} {r['shape']} {r['variant']}")
            values.append(r["speedup"])
            targets.append(_target(fw, r))
            colors.append(palette[fw] if r["bench"] == "optimizer" else "#999999")
            hatches.append("//" if r["variant"] != _rule(r) else "")
    # One bar per row: the figure grows with the rows so that the (rotated) labels stay readable.
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(17.0, 0.3 * len(values) + 7), 7),
                                   gridspec_kw=dict(width_ratios=[max(2.2, 0.055 * len(values)), 1]))
    x = range(len(values))
    ax1.bar(x, values, color=colors, hatch=hatches, edgecolor="white")
    for i, (v, t) in enumerate(zip(values, targets)):
        ax1.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
        if t is not None:
            ax1.plot([i - 0.4, i + 0.4], [t, t], color="black", lw=2)
    ax1.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax1.set_xticks(list(x), labels, fontsize=7, rotation=90)
    ax1.set_ylabel("speedup: built-in time / rmsprop_ops time")
    ax1.set_title("Frameworks: built-in / ours (black: targets; grey: exe.run, dygraph, whole training step; "
                  "hatched: flat_state=True)")
    core = results.get("core")
    if core is not None:
        rows = core["rows"]
        ax2.bar(range(len(rows)), [r["ours_over_probe"] for r in rows], color="#3a9a5b")
        for i, r in enumerate(rows):
            ax2.text(i, r["ours_over_probe"], f"{r['ours_over_probe']:.2f}", ha="center", va="bottom", fontsize=8)
        ax2.axhline(CORE_TARGET, color="black", lw=1.5, label=f"target <= {CORE_TARGET}")
        ax2.axhline(1.0, color="grey", lw=0.8, ls="--")
        short = {"centered+momentum": "centered\n+mom", "momentum": "mom"}
        ax2.set_xticks(range(len(rows)), [f"{r['shape']}\n{short.get(r['variant'], r['variant'])}" for r in rows],
                       fontsize=7)
        ax2.set_ylabel("core kernel time / bandwidth probe time")
        ax2.set_title("Core kernel vs memory roofline")
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paddle-python", default=None, help="interpreter with paddle and rmsprop_ops installed")
    ap.add_argument("--mindspore-python", default=None, help="interpreter with mindspore and rmsprop_ops installed")
    ap.add_argument("--core-python", default=sys.executable, help="interpreter for the core benchmark")
    ap.add_argument("--only", nargs="+", choices=["core", "paddle", "mindspore"], default=None)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    ap.add_argument("--out", default="bench_out")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    extra = ["--quick"] if args.quick else ["--reps", str(args.reps)]
    parts = {"core": (args.core_python, "bench_core.py", "rmsprop_ops"),
             "paddle": (args.paddle_python, "bench_paddle.py", "paddle"),
             "mindspore": (args.mindspore_python, "bench_mindspore.py", "mindspore")}
    results = {}
    for name, (python, script, module) in parts.items():
        if args.only and name not in args.only:
            continue
        python = python or sys.executable
        if not can_import(python, module):
            print(f"\n== {name}: skipped, {python} cannot import {module} (pass --{name}-python)", flush=True)
            continue
        results[name] = run_part(name, python, script, os.path.join(args.out, f"{name}.json"), extra)
    print("\n" + table(results))
    print("\nOptimizer state and RSS growth (compile/startup + first step):\n" + memory_table(results))
    summary = {k: v for k, v in results.items() if v is not None}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(dict(speedup_targets={"/".join(k): v for k, v in SPEEDUP_TARGETS.items()},
                       core_target=CORE_TARGET, results=summary), f, indent=2)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(markdown(results))
    png = os.path.join(args.out, "ratios.png")
    if chart(results, png):
        print(f"\nchart: {png}")
    print(f"JSON: {args.out}/{{core,paddle,mindspore,summary}}.json, Markdown: {args.out}/table.md")
    return 0 if all(v is not None for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
