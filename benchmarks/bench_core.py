"""The core kernel against a plain fused C loop, the memory-bandwidth probe and torch, from cold caches.

For one 16M-element float32 tensor and 1000 of 16K (the same bytes), and three rules (plain: no momentum;
momentum 0.9; centered with momentum 0.9), one interleaved group per rule times, over the same arrays:

- **ours**: one ``rmsprop_multi_`` call (one parallel region over all tensors);
- **C loop**: the plain fused OpenMP loop of ``cloop.c``, built now with this machine's C compiler
  (``-O3 -march=native -fno-math-errno -fopenmp``), same threads, same buffers, same bytes: the bar
  (targets: ours <= 1.10x it, and 1000 tensors <= 1.10x one tensor of the same size);
- **probe**: the core's bandwidth probe, which reads and read-modify-writes the same buffers with one add
  per element through the kernel's partition and threads: the memory roofline;
- **torch**: ``torch.optim.RMSprop(foreach=True)`` over the same memory, when torch is installed (not in
  ``--quick``); **numpy**: the float64 NumPy reference, one call per tensor (not in ``--quick``);
- **host**: the same call with ``skip_update=True`` (argument conversion and validation, no update), warm;
- **ours, other prefetch** (not in ``--quick``): ours with the kernel's software prefetch set the other
  way (off where it is on by default, on where it is off), to show what it does on this machine.

Every candidate's process CPU time per call is recorded too (``*_cpu_ms``): on a machine other programs
also use, its ratios move far less between runs than wall-time ratios do.

Every timed call starts from cold caches (``_common.interleaved``; ``--warm`` times back to back instead).
OMP_WAIT_POLICY defaults to PASSIVE (``_common``): idle OpenMP workers (the C loop's, torch's) would
otherwise spin on the cores the next candidate runs on.

    python benchmarks/bench_core.py [--reps 15] [--json bench_out/core.json] [--quick] [--warm]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from _common import (Progress, add_progress_args, core_build, interleaved, machine, machine_line, print_plan,
                     write_json)

SHAPES = {"1x16M": [1 << 24], "1000x16K": [1 << 14] * 1000}
VARIANTS = {
    "plain": dict(momentum=0.0, centered=False, moment=False),
    "momentum": dict(momentum=0.9, centered=False, moment=True),
    "centered+momentum": dict(momentum=0.9, centered=True, moment=True),
}
LR = 1e-9
TARGET_OURS_OVER_CLOOP = 1.10  # ours / the C loop over the same buffers, every row
TARGET_MANY_OVER_ONE = 1.10    # ours over 1000 x 16K / ours over 1 x 16M, every rule


def make(sizes, v, seed=0):
    rng = np.random.default_rng(seed)
    p = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    # |g|: the probe adds g to every buffer, and mean_square must stay non-negative for the next update.
    g = [np.abs(rng.standard_normal(n, dtype=np.float32)) for n in sizes]
    ms = [np.zeros(n, np.float32) for n in sizes]
    mom = [np.zeros(n, np.float32) for n in sizes] if v["moment"] else None
    mg = [np.zeros(n, np.float32) for n in sizes] if v["centered"] else None
    return p, g, ms, mom, mg


def ours(bufs, v, skip=False):
    import rmsprop_ops

    p, g, ms, mom, mg = bufs
    rmsprop_ops.rmsprop_multi_(p, g, ms, moments=mom, mean_grads=mg, lr=LR, rho=0.9, epsilon=1e-6,
                               momentum=v["momentum"], centered=v["centered"], skip_update=skip)


def probe(bufs, v):
    from rmsprop_ops import _core

    p, g, ms, mom, mg = bufs
    _core.update(p, g, ms, mom, mg, None, lr=0.0, lr_mults=None, rho=0.9, epsilon=1e-6, momentum=v["momentum"],
                 centered=v["centered"], eps_in_sqrt=True, lr_in_momentum=True, weight_decay=0.0,
                 weight_decay_mode=0, rescale_grad=1.0, clip_gradient=-1.0, clip_weights=-1.0,
                 clip_after_weight_decay=True, skip_update=False, list_names=True, bandwidth_probe=True)


def numpy_reference(bufs, v):
    from rmsprop_ops.reference import rmsprop_step

    p, g, ms, mom, mg = bufs
    for i in range(len(p)):
        rmsprop_step(p[i], g[i], ms[i], moment=None if mom is None else mom[i],
                     mean_grad=None if mg is None else mg[i], lr=LR, rho=0.9, epsilon=1e-6,
                     momentum=v["momentum"], centered=v["centered"])


def torch_step_factory(bufs, v, threads):
    """torch.optim.RMSprop(foreach=True) over the same arrays (shared memory), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    p, g, *_ = bufs
    params = [torch.from_numpy(x).requires_grad_() for x in p]
    for t, x in zip(params, g):
        t.grad = torch.from_numpy(x)
    opt = torch.optim.RMSprop(params, lr=LR, alpha=0.9, eps=1e-6, momentum=v["momentum"],
                              centered=v["centered"], foreach=True)
    opt.step()  # creates torch's state
    return opt.step


def bytes_moved(sizes, v):
    """Bytes an update must move once: grad read, every other buffer read and written."""
    return sum(sizes) * 4 * (1 + 2 * (2 + v["moment"] + v["centered"]))


def settings(args):
    return dict(reps=3 if args.quick else args.reps, torch=not (args.quick or args.no_torch),
                numpy=not (args.quick or args.no_numpy), numpy_reps=args.numpy_reps, prefetch_ab=not args.quick)


class Prefetch:
    """The kernel's software prefetch distance (rmsprop_ops_cpu_prefetch / _set_prefetch through ctypes)."""

    def __init__(self):
        import ctypes

        import rmsprop_ops

        lib = ctypes.CDLL(rmsprop_ops.get_library())
        self.get = getattr(lib, "rmsprop_ops_cpu_prefetch", None)
        self.set = getattr(lib, "rmsprop_ops_cpu_set_prefetch", None)
        if self.get is not None:
            self.get.restype = ctypes.c_int64
            self.set.argtypes = [ctypes.c_int64]
        self.default = self.get() if self.get is not None else None
        # The other setting: off where the kernel prefetches by default, its distance where it does not.
        self.other = None if self.default is None else (0 if self.default else self.DISTANCE)

    DISTANCE = 4 * 4096  # the kernel's distance where it prefetches by default (cpu_kernel.cpp)

    def flipped(self, fn):
        """fn with the prefetch set the other way for its call (restored after)."""
        def call():
            self.set(self.other)
            try:
                fn()
            finally:
                self.set(self.default)
        return call


def cases(args):
    """(label, weight) of each interleaved group, in order; weight ~ timed calls, setup included."""
    s = settings(args)
    per_shape = 3 + s["prefetch_ab"] + s["torch"] * 4  # ours, probe, C loop; torch's step: about four of ours
    out = [(f"core {vname}", 60 + len(SHAPES) * ((s["reps"] + 2) * per_shape + s["numpy"] * 15 * s["numpy_reps"]))
           for vname in VARIANTS]
    out[0] = (out[0][0], out[0][1] + 100)  # building the C loop, a process start
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--numpy-reps", type=int, default=3)
    ap.add_argument("--json", default="bench_out/core.json")
    ap.add_argument("--quick", action="store_true", help="3 repetitions, no torch or NumPy rows (smoke run)")
    ap.add_argument("--warm", action="store_true", help="time back to back instead of from cold caches")
    ap.add_argument("--no-torch", action="store_true", help="skip torch.optim.RMSprop(foreach=True)")
    ap.add_argument("--no-numpy", action="store_true", help="skip the float64 NumPy reference")
    add_progress_args(ap)
    args = ap.parse_args()
    if args.plan:
        print_plan(cases(args))
        return 0
    import rmsprop_ops
    from _cloop import CLoop

    s = settings(args)
    threads = rmsprop_ops.get_num_threads()
    mach, build = machine(), core_build()
    loop = CLoop.build()
    prefetch = Prefetch()
    build["prefetch_bytes"], build["alt_prefetch_bytes"] = prefetch.default, prefetch.other
    print(f"core: {machine_line(mach)}\n      {threads} threads, CPU loops {build.get('cpu_loops')} "
          f"({build.get('compiler')}, prefetch {prefetch.default} B), C loop "
          f"{loop.info['compiler_version'] if loop else 'unavailable'}, {'warm' if args.warm else 'cold'} caches, "
          f"{s['reps']} reps", flush=True)
    progress = Progress(cases(args), args.progress)
    rows = []
    for vname, v in VARIANTS.items():
        fns, bufs_of = {}, {}
        for shape, sizes in SHAPES.items():
            bufs = bufs_of[shape] = make(sizes, v)
            fns[f"ours {shape}"] = lambda b=bufs: ours(b, v)
            if s["prefetch_ab"] and prefetch.other is not None:
                fns[f"ours_altpf {shape}"] = prefetch.flipped(lambda b=bufs: ours(b, v))
            fns[f"probe {shape}"] = lambda b=bufs: probe(b, v)
            if loop is not None:
                fns[f"cloop {shape}"] = loop.bind(vname, *bufs, threads=threads, momentum=v["momentum"], lr=LR)
            if s["torch"]:
                step = torch_step_factory(bufs, v, threads)
                if step is not None:
                    fns[f"torch {shape}"] = step
        cpu = {}
        med, _ = interleaved(fns, s["reps"], evict=not args.warm, cpu=cpu)
        for shape, sizes in SHAPES.items():
            bufs = bufs_of[shape]
            host, _ = interleaved({"host": lambda b=bufs: ours(b, v, skip=True)}, 11, evict=False)
            np_ms = None
            if s["numpy"]:
                np_ms = interleaved({"numpy": lambda b=bufs: numpy_reference(b, v)}, s["numpy_reps"], warmup=1,
                                    evict=not args.warm)[0]["numpy"]
            row = dict(shape=shape, variant=vname, ours_ms=med[f"ours {shape}"], probe_ms=med[f"probe {shape}"],
                       cloop_ms=med.get(f"cloop {shape}"), torch_ms=med.get(f"torch {shape}"), numpy_ms=np_ms,
                       host_ms=host["host"], gbytes=bytes_moved(sizes, v) / 1e9,
                       ours_altpf_ms=med.get(f"ours_altpf {shape}"))
            for who in ("ours", "ours_altpf", "probe", "cloop"):
                row[f"{who}_cpu_ms"] = cpu.get(f"{who} {shape}")
            row["ours_over_cloop_cpu"] = (row["ours_cpu_ms"] / row["cloop_cpu_ms"] if row["cloop_cpu_ms"]
                                          else None)
            row["ours_over_probe"] = row["ours_ms"] / row["probe_ms"]
            row["ours_over_cloop"] = row["ours_ms"] / row["cloop_ms"] if row["cloop_ms"] else None
            row["ours_gbps"] = row["gbytes"] / row["ours_ms"] * 1e3
            row["torch_over_ours"] = row["torch_ms"] / row["ours_ms"] if row["torch_ms"] else None
            row["numpy_over_ours"] = np_ms / row["ours_ms"] if np_ms else None
            rows.append(row)
        one, many = rows[-2], rows[-1]
        many["ours_many_over_one"] = many["ours_ms"] / one["ours_ms"]
        many["ours_many_over_one_cpu"] = many["ours_cpu_ms"] / one["ours_cpu_ms"]
        if one["cloop_ms"]:
            many["cloop_many_over_one"] = many["cloop_ms"] / one["cloop_ms"]
            many["cloop_many_over_one_cpu"] = many["cloop_cpu_ms"] / one["cloop_cpu_ms"]
        del fns, bufs_of
        progress.done(f"core {vname}", "  " + "  ".join(_row_note(r) for r in rows[-2:]))
    payload = dict(part="core", machine=mach, core=build, cloop=loop.info if loop else None, threads=threads,
                   cache="warm" if args.warm else "cold", reps=s["reps"], rows=rows,
                   targets=dict(ours_over_cloop=TARGET_OURS_OVER_CLOOP, many_over_one=TARGET_MANY_OVER_ONE),
                   load_end=os.getloadavg())
    write_json(args.json, payload)
    print(table(payload))
    return 0


def _row_note(r):
    c = f" ours/C {r['ours_over_cloop']:.2f}" if r["ours_over_cloop"] else ""
    return f"{r['shape']}: ours {r['ours_ms']:.2f} ms{c}"


def _fmt(x, spec=".2f", none="-"):
    return none if x is None else format(x, spec)


def table(payload):
    """The core rows as text, with each row's verdict against the targets."""
    out = [f"{'variant':<18} {'shape':<9} {'ours':>7} {'C loop':>7} {'probe':>7} {'host':>6} {'ours/C':>7} "
           f"{'ours/probe':>10} {'1000/1':>7} {'cpu:ours/C':>10} {'cpu:1000/1':>10} {'alt pf':>7} {'GB/s':>6} "
           f"{'torch':>7} {'numpy':>7}  met"]
    for r in payload["rows"]:
        checks = []
        if r["ours_over_cloop"] is not None:
            checks.append(r["ours_over_cloop"] <= TARGET_OURS_OVER_CLOOP)
        if "ours_many_over_one" in r:
            checks.append(r["ours_many_over_one"] <= TARGET_MANY_OVER_ONE)
        out.append(f"{r['variant']:<18} {r['shape']:<9} {r['ours_ms']:7.2f} {_fmt(r['cloop_ms']):>7} "
                   f"{r['probe_ms']:7.2f} {r['host_ms']:6.2f} {_fmt(r['ours_over_cloop']):>7} "
                   f"{r['ours_over_probe']:10.2f} {_fmt(r.get('ours_many_over_one')):>7} "
                   f"{_fmt(r.get('ours_over_cloop_cpu')):>10} {_fmt(r.get('ours_many_over_one_cpu')):>10} "
                   f"{_fmt(r.get('ours_altpf_ms')):>7} {r['ours_gbps']:6.1f} "
                   f"{_fmt(r['torch_ms'], '.1f'):>7} {_fmt(r['numpy_ms'], '.0f'):>7}  "
                   f"{'' if not checks else ('yes' if all(checks) else 'NO')}")
    out.append(f"ms, medians of {payload['reps']} interleaved reps from {payload['cache']} caches, "
               f"{payload['threads']} threads. Targets: ours/C <= {TARGET_OURS_OVER_CLOOP} (every row), "
               f"1000/1 = ours 1000x16K / ours 1x16M <= {TARGET_MANY_OVER_ONE}. cpu: the same ratios in process CPU "
               f"time. alt pf: ours with the software prefetch the other way (prefetch_bytes vs alt_prefetch_bytes in the JSON). host: the call with skip_update (no update), "
               f"warm.")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
