"""Tables, verdicts and the chart of a benchmark run, from its JSON; optionally written into the docs.

    python benchmarks/report.py [bench_out] [--docs docs/performance.md] [--chart docs/img/perf_ratios.png]

Reads ``bench_out/{core,paddle,mindspore}.json`` (whichever exist), prints the results table with each
target's verdict, writes ``bench_out/table.md`` and ``bench_out/ratios.png``, and with ``--docs``
replaces the results section of the Markdown file (between ``<!-- results:begin -->`` and
``<!-- results:end -->``) and redraws the chart there. run.py calls it after a run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass

PARTS = ("core", "paddle", "mindspore")


@dataclass(frozen=True)
class Target:
    part: str
    bench: str
    shape: str
    rule: str
    metric: str    # a row's field: "speedup" (built-in / ours), "ours_over_cloop", "ours_many_over_one"
    bound: float
    at_least: bool  # True: the metric must be >= bound; False: <= bound

    def met(self, value):
        return value >= self.bound if self.at_least else value <= self.bound

    def text(self):
        return f"{'>=' if self.at_least else '<='} {self.bound:g}"


def _targets():
    out = []
    for shape in ("1x16M", "1000x16K"):
        for rule in ("plain", "momentum", "centered+momentum"):
            out.append(Target("core", "core", shape, rule, "ours_over_cloop", 1.10, False))
    for rule in ("plain", "momentum", "centered+momentum"):
        out.append(Target("core", "core", "1000x16K", rule, "ours_many_over_one", 1.10, False))
    for (shape, rule), bound in {("1x16M", "plain"): 1.5, ("1x16M", "centered"): 1.8, ("1000x16K", "plain"): 1.8,
                                 ("1000x16K", "centered"): 1.8}.items():
        out.append(Target("paddle", "exe.run", shape, rule, "speedup", bound, True))
    for rule in ("plain", "centered"):
        out.append(Target("paddle", "exe.run", "1x16M", rule, "ours_over_cloop", 1.25, False))
        out.append(Target("paddle", "dygraph", "1000x16K", rule, "speedup", 1.3, True))
    for (shape, rule), bound in {("1x16M", "plain"): 1.3, ("1x16M", "centered"): 5.0, ("1000x16K", "plain"): 2.5,
                                 ("1000x16K", "centered"): 4.5}.items():
        out.append(Target("mindspore", "graph", shape, rule, "speedup", bound, True))
    for rule in ("plain", "centered"):
        out.append(Target("mindspore", "graph", "1x16M", rule, "ours_over_cloop", 1.25, False))
    return tuple(out)


# Every target of issue 18, in one place. Framework targets apply to the default configuration.
TARGETS = _targets()


def load(out_dir):
    results = {}
    for part in PARTS:
        path = os.path.join(out_dir, f"{part}.json")
        if os.path.exists(path):
            with open(path) as f:
                results[part] = json.load(f)
    return results


def rows_of(results):
    """Every row as (part, bench, row), frameworks' rows with their configuration."""
    for part in PARTS:
        for r in results.get(part, {}).get("rows", []):
            yield part, ("core" if part == "core" else r["bench"]), r


def _rule(part, r):
    return r["variant"] if part == "core" else r["rule"]


def targets_of(part, bench, r):
    if part != "core" and r.get("config") != "defaults":
        return []
    return [t for t in TARGETS if (t.part, t.bench, t.shape, t.rule) == (part, bench, r["shape"], _rule(part, r))
            and r.get(t.metric) is not None]


def verdicts(results):
    """(target, value, met) for every target with a measured row."""
    out = []
    for part, bench, r in rows_of(results):
        for t in targets_of(part, bench, r):
            out.append((t, r[t.metric], t.met(r[t.metric])))
    return out


def _f(x, spec=".2f"):
    return "" if x is None else format(x, spec)


_METRIC_LABEL = {"speedup": "built-in/ours", "ours_over_cloop": "ours/C loop",
                 "ours_many_over_one": "ours 1000x16K/1x16M"}


def _table_rows(results):
    """(cells, verdict text) per row: part, bench, shape, rule, config, ours, built-in, C loop, built-in/ours,
    ours/C loop, targets."""
    out = []
    for part, bench, r in rows_of(results):
        ts = targets_of(part, bench, r)
        verdict = "; ".join(f"{_METRIC_LABEL[t.metric]} {r[t.metric]:.2f} {t.text()}: "
                            f"{'yes' if t.met(r[t.metric]) else 'NO'}" for t in ts)
        builtin = r.get("builtin_ms") if part != "core" else None
        cells = [part, bench, r["shape"], _rule(part, r), r.get("config", ""), _f(r["ours_ms"]), _f(builtin),
                 _f(r.get("cloop_ms")), _f(r.get("speedup")), _f(r.get("ours_over_cloop"))]
        out.append((cells, verdict))
    return out


HEADER = ["part", "bench", "shape", "rule", "config", "ours ms", "built-in ms", "C loop ms", "built-in/ours",
          "ours/C loop", "targets (met?)"]


def text_table(results):
    rows = _table_rows(results)
    widths = [max(len(h), *(len(c[i]) for c, _ in rows)) if rows else len(h) for i, h in enumerate(HEADER[:-1])]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = [line(HEADER[:-1]) + "  " + HEADER[-1], "-" * (sum(widths) + 2 * len(widths) + 16)]
    out += [line(c) + "  " + v for c, v in rows]
    met = verdicts(results)
    out.append(f"targets met: {sum(m for _, _, m in met)} of {len(met)}")
    out.append(f"measured on: {caption(results)}")
    return "\n".join(out)


def markdown_table(results):
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * 5 + "---:|" * 5 + "---|"]
    for cells, verdict in _table_rows(results):
        out.append("| " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(out) + "\n"


def caption(results):
    """Machine (CPU, ISA flags, caches), threads, compilers, date, repetitions and load of the run, from the
    first part's record."""
    for part in PARTS:
        if part in results and "machine" in results[part]:
            res = results[part]
            m = res["machine"]
            core = results.get("core", {}).get("core", {})
            loops = core.get("cpu_loops")
            cloop = next((results[p]["cloop"] for p in PARTS if p in results and "cloop" in results[p]), {})
            built = []
            if core.get("compiler"):
                built.append(f"core built with {core['compiler']}")
            if cloop.get("compiler_version") or cloop.get("compiler"):
                built.append(f"C loop: {cloop.get('compiler_version') or cloop.get('compiler')} {cloop.get('flags', '')}".rstrip())
            return (f"{m['cpu']} ({m.get('vendor')}, family {m.get('family')} model {m.get('model')}; "
                    f"{' '.join(m.get('isa', []))}), {m['cores']} logical CPUs, L3 {m.get('llc_bytes', 0) >> 20} MiB; "
                    f"{res.get('threads')} threads{f', core loops {loops}' if loops else ''}; "
                    + "".join(f"{b}; " for b in built)
                    + f"{m.get('date', '')}; medians of {res.get('reps')} interleaved repetitions from cold caches; "
                    f"load average {m['load'][0]:.1f} at the start")
    return ""


def chart(results, path):
    """Two panels of the rows that have targets: speedup over each framework's RMSProp (higher is better),
    and time against the plain fused C loop (lower is better); bars grouped by framework, each target a
    black line with its value, bars that miss their target hatched."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed in this interpreter: no chart", flush=True)
        return False
    short = {"centered+momentum": "centered\n+mom", "momentum": "mom"}
    speed, vs_c = [], []  # (group, label, value, target)
    for part, bench, r in rows_of(results):
        for t in targets_of(part, bench, r):
            if t.metric == "ours_many_over_one":
                continue
            rule = short.get(_rule(part, r), _rule(part, r))
            label = f"{r['shape']}\n{rule}" if part == "core" else f"{bench}\n{r['shape']}\n{rule}"
            (speed if t.metric == "speedup" else vs_c).append((part, label, r[t.metric], t))
    panels = [(speed, "built-in RMSProp time / rmsprop_ops time (higher is better)",
               "Speedup over the framework's own RMSProp, default arguments"),
              (vs_c, "rmsprop_ops time / plain fused C loop time (lower is better)",
               "Against a plain fused C loop moving the same bytes")]
    panels = [p for p in panels if p[0]]
    if not panels:
        return False
    colors = {"core": "#3a9a5b", "paddle": "#2f6db3", "mindspore": "#d0602a"}
    fig, axes = plt.subplots(1, len(panels), figsize=(6 + 0.75 * sum(len(p[0]) for p in panels), 6.5),
                             gridspec_kw=dict(width_ratios=[max(3, len(p[0])) for p in panels]), squeeze=False)
    for ax, (items, ylabel, title) in zip(axes[0], panels):
        x = list(range(len(items)))
        bars = ax.bar(x, [v for _, _, v, _ in items], color=[colors[g] for g, _, _, _ in items], edgecolor="white")
        top = max(max(v for _, _, v, _ in items), max(t.bound for *_, t in items))
        for i, (bar, (_, _, v, t)) in enumerate(zip(bars, items)):
            if not t.met(v):
                bar.set_hatch("//")
            if abs(v - t.bound) < top * 0.06:  # next to its target line: inside the bar's top
                ax.text(i, v - top * 0.01, f"{v:.2f}", ha="center", va="top", fontsize=8, color="white",
                        weight="bold")
            else:
                ax.text(i, v + top * 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
            ax.plot([i - 0.42, i + 0.42], [t.bound, t.bound], color="black", lw=2)
            ax.text(i, t.bound + top * 0.01, t.text(), ha="center", va="bottom", fontsize=7, weight="bold")
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(x, [lbl for _, lbl, _, _ in items], fontsize=7)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, top * 1.18)
        ax.set_title(title, fontsize=10, pad=22)
        groups = []
        for i, (g, _, _, _) in enumerate(items):
            if not groups or groups[-1][0] != g:
                groups.append([g, i, i])
            groups[-1][2] = i
        for g, a, b in groups:
            ax.annotate(g, xy=((a + b) / 2, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 4),
                        textcoords="offset points", ha="center", fontsize=9, color=colors[g], weight="bold")
            if a > 0:
                ax.axvline(a - 0.5, color="#cccccc", lw=0.8)
    fig.text(0.01, 0.005, "Black lines: targets (hatched bars miss theirs). " + caption(results), fontsize=7,
             wrap=True)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def other_table(results):
    """torch's foreach RMSprop and the NumPy reference next to the core, where the core run timed them."""
    core = results.get("core")
    if not core or not any(r.get("torch_ms") or r.get("numpy_ms") for r in core["rows"]):
        return ""
    out = ["| shape | rule | ours ms | probe ms | host ms | torch foreach ms | torch / ours | NumPy float64 ms |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in core["rows"]:
        out.append(f"| {r['shape']} | {r['variant']} | {r['ours_ms']:.2f} | {r['probe_ms']:.2f} | {r['host_ms']:.2f} | "
                   f"{_f(r.get('torch_ms'), '.1f')} | {_f(r.get('torch_over_ours'), '.1f')} | "
                   f"{_f(r.get('numpy_ms'), '.0f')} |")
    return "\n".join(out) + "\n"


BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def docs_section(results, chart_rel):
    met = verdicts(results)
    parts = [f"Measured on: {caption(results)}.", "",
             f"Targets met: **{sum(m for _, _, m in met)} of {len(met)}**.", "", markdown_table(results)]
    if chart_rel:
        parts += [f"![Speedups and ratios against the targets]({chart_rel})", ""]
    extra = other_table(results)
    if extra:
        parts += ["The core run also timed `torch.optim.RMSprop(foreach=True)` over the same arrays and the float64 "
                  "NumPy reference, and the host share of a call (the same call with `skip_update=True`):", "", extra]
    return "\n".join(parts)


def update_docs(results, md_path, chart_path):
    with open(md_path) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{md_path}: no {BEGIN} ... {END} section to replace")
    rel = os.path.relpath(chart_path, os.path.dirname(md_path)) if chart(results, chart_path) else None
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(md_path, "w") as f:
        f.write(head + BEGIN + "\n" + docs_section(results, rel) + END + tail)


def write_outputs(results, out_dir):
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(f"Measured on: {caption(results)}.\n\n" + markdown_table(results))
    png = os.path.join(out_dir, "ratios.png")
    return png if chart(results, png) else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="bench_out", help="directory with the run's JSON")
    ap.add_argument("--docs", default=None, help="Markdown file whose results section to replace")
    ap.add_argument("--chart", default="docs/img/perf_ratios.png", help="chart written with --docs")
    args = ap.parse_args()
    results = load(args.out)
    if not results:
        print(f"{args.out}: no benchmark JSON", file=sys.stderr)
        return 1
    print(text_table(results))
    png = write_outputs(results, args.out)
    print(f"Markdown: {args.out}/table.md" + (f", chart: {png}" if png else ""))
    if args.docs:
        update_docs(results, args.docs, args.chart)
        print(f"updated {args.docs} and {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
