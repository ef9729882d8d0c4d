"""One command for every CPU benchmark: the core kernel, Paddle and MindSpore, each in its own interpreter.

Paddle and MindSpore cannot share a process (their oneDNN builds clash), so each part runs as a subprocess
of the interpreter given for it (default: this one, when it can import the framework). Within each part
the candidates are interleaved from cold caches and medians reported (see the bench_*.py files); every
part also times the plain fused C loop of cloop.c, built at run time with this machine's C compiler.

Progress: one line per finished case with the time elapsed and an estimate of the time left for the whole
run. At the end: the results table with every target's verdict (report.py), the JSON of each part in
``--out`` (default bench_out/), ``table.md`` and the chart ``ratios.png``; ``--docs`` also writes the
results section of docs/performance.md and its chart.

    python benchmarks/run.py [--quick] [--paddle-python PY] [--mindspore-python PY] [--reps 15] [--docs]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

import report

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCRIPTS = {"core": ("bench_core.py", "rmsprop_ops"), "paddle": ("bench_paddle.py", "paddle"),
           "mindspore": ("bench_mindspore.py", "mindspore")}
# Quiet logs: GLOG_v is a verbosity level for Paddle but a minimum severity for MindSpore (3 = errors).
_QUIET = {"paddle": {"GLOG_minloglevel": "2"}, "mindspore": {"GLOG_v": "3"}, "core": {}}


def can_import(python, module):
    if python == sys.executable:
        return importlib.util.find_spec(module) is not None
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def plan(python, script, extra):
    """The part's cases and weights (``--plan``: no framework is imported)."""
    out = subprocess.run([python, os.path.join(HERE, script), "--plan", *extra], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return [tuple(c) for c in json.loads(out.stdout)]


def run_part(name, python, script, json_path, extra, progress_spec):
    cmd = [python, os.path.join(HERE, script), "--json", json_path, "--progress", progress_spec, *extra]
    print(f"\n== {name}: {' '.join(cmd[:4])} ...", flush=True)
    proc = subprocess.run(cmd, env=dict(_QUIET[name], **os.environ))
    if proc.returncode != 0 or not os.path.exists(json_path):
        print(f"!! {name} failed (exit {proc.returncode})", flush=True)
        return None
    with open(json_path) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paddle-python", default=None, help="interpreter with paddle and rmsprop_ops installed")
    ap.add_argument("--mindspore-python", default=None, help="interpreter with mindspore and rmsprop_ops installed")
    ap.add_argument("--core-python", default=sys.executable, help="interpreter for the core benchmark")
    ap.add_argument("--only", nargs="+", choices=list(SCRIPTS), default=None)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run of the targets' rows: 3 repetitions, default configurations only")
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--docs", action="store_true",
                    help="also write the results section of docs/performance.md and docs/img/perf_ratios.png")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    extra = ["--quick"] if args.quick else ["--reps", str(args.reps)]
    pythons = {"core": args.core_python, "paddle": args.paddle_python, "mindspore": args.mindspore_python}
    parts = []
    for name, (script, module) in SCRIPTS.items():
        if args.only and name not in args.only:
            continue
        python = pythons[name] or sys.executable
        if not can_import(python, module):
            print(f"== {name}: skipped, {python} cannot import {module} (pass --{name}-python)", flush=True)
            continue
        cases = plan(python, script, extra)
        if cases is None:
            print(f"== {name}: skipped, {python} {script} --plan failed", flush=True)
            continue
        parts.append((name, python, script, cases))
    total_weight = sum(w for *_, cases in parts for _, w in cases)
    total_cases = sum(len(cases) for *_, cases in parts)
    start = time.time()
    print(f"{total_cases} cases in {len(parts)} parts: {', '.join(p[0] for p in parts)}", flush=True)
    results, done_weight, done_cases = {}, 0.0, 0
    for name, python, script, cases in parts:
        spec = f"{done_weight},{total_weight},{start},{done_cases},{total_cases}"
        results[name] = run_part(name, python, script, os.path.join(args.out, f"{name}.json"), extra, spec)
        done_weight += sum(w for _, w in cases)
        done_cases += len(cases)
    ok = {k: v for k, v in results.items() if v is not None}
    print(f"\nall parts done in {(time.time() - start) / 60:.1f} min\n")
    print(report.text_table(ok))
    png = report.write_outputs(ok, args.out)
    print(f"\nJSON: {args.out}/{{{','.join(ok)}}}.json, Markdown: {args.out}/table.md" + (f", chart: {png}" if png else ""))
    if args.docs:
        report.update_docs(ok, os.path.join(ROOT, "docs", "performance.md"),
                           os.path.join(ROOT, "docs", "img", "perf_ratios.png"))
        print("updated docs/performance.md and docs/img/perf_ratios.png")
    return 0 if all(v is not None for v in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
