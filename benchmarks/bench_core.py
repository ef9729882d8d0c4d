"""Core kernel vs the memory-bandwidth probe, the NumPy reference and torch.optim.RMSprop(foreach=True) (when
torch is installed), side by side in one run.

The probe (RMSPROP_OPS_FLAG_BANDWIDTH_PROBE) streams through exactly the buffers the update touches, with
one add per element, through the same partition and threads: ours / probe is how far the kernel is from
the memory roofline. Runs are interleaved A/B/C in rotating order, each after an eviction of the
last-level cache (see _common.interleaved), and medians reported. OMP_WAIT_POLICY defaults to PASSIVE here
(torch's idle OpenMP threads would otherwise spin on the cores the next candidate runs on).

    python benchmarks/bench_core.py [--reps 15] [--json bench_out/core.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os

# torch's OpenMP workers spin for a while after each parallel region; interleaved with ours and the probe
# they would steal the cores those run on. Passive waiting keeps each candidate's time its own.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import platform

import numpy as np

import rmsprop_ops
from rmsprop_ops import _core
from rmsprop_ops.reference import rmsprop_step

from _common import interleaved

SHAPES = {"1x16M": [1 << 24], "1000x16K": [1 << 14] * 1000}
VARIANTS = {
    "plain": dict(momentum=0.0, centered=False, moment=False),
    "momentum": dict(momentum=0.9, centered=False, moment=True),
    "centered+momentum": dict(momentum=0.9, centered=True, moment=True),
}


def make(sizes, v, seed=0):
    rng = np.random.default_rng(seed)
    p = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    # |g|: the probe adds g to every buffer, and mean_square must stay non-negative for the next update.
    g = [np.abs(rng.standard_normal(n, dtype=np.float32)) for n in sizes]
    ms = [np.zeros(n, np.float32) for n in sizes]
    mom = [np.zeros(n, np.float32) for n in sizes] if v["moment"] else None
    mg = [np.zeros(n, np.float32) for n in sizes] if v["centered"] else None
    return p, g, ms, mom, mg


def ours(bufs, v):
    p, g, ms, mom, mg = bufs
    rmsprop_ops.rmsprop_multi_(p, g, ms, moments=mom, mean_grads=mg, lr=1e-9, rho=0.9, epsilon=1e-6,
                               momentum=v["momentum"], centered=v["centered"])


def probe(bufs, v):
    p, g, ms, mom, mg = bufs
    _core.update(p, g, ms, mom, mg, None, lr=0.0, lr_mults=None, rho=0.9, epsilon=1e-6, momentum=v["momentum"],
                 centered=v["centered"], eps_in_sqrt=True, lr_in_momentum=True, weight_decay=0.0,
                 weight_decay_mode=0, rescale_grad=1.0, clip_gradient=-1.0, clip_weights=-1.0,
                 clip_after_weight_decay=True, skip_update=False, list_names=True, bandwidth_probe=True)


def numpy_reference(bufs, v):
    p, g, ms, mom, mg = bufs
    for i in range(len(p)):
        rmsprop_step(p[i], g[i], ms[i], moment=None if mom is None else mom[i],
                     mean_grad=None if mg is None else mg[i], lr=1e-9, rho=0.9, epsilon=1e-6,
                     momentum=v["momentum"], centered=v["centered"])


def torch_step_factory(bufs, v):
    """torch.optim.RMSprop(foreach=True) over the same arrays (shared memory), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(rmsprop_ops.get_num_threads())
    p, g, *_ = bufs
    params = [torch.from_numpy(x).requires_grad_() for x in p]
    for t, x in zip(params, g):
        t.grad = torch.from_numpy(x)
    opt = torch.optim.RMSprop(params, lr=1e-9, alpha=0.9, eps=1e-6, momentum=v["momentum"],
                              centered=v["centered"], foreach=True)
    return opt.step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--numpy-reps", type=int, default=3)
    ap.add_argument("--json", default="bench_out/core.json")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    ap.add_argument("--no-torch", action="store_true", help="skip torch.optim.RMSprop(foreach=True)")
    args = ap.parse_args()
    reps = 3 if args.quick else args.reps
    rows = []
    print(f"threads={rmsprop_ops.get_num_threads()}  cpu={platform.processor() or platform.machine()}  "
          f"cores={os.cpu_count()}")
    print(f"{'variant':<18} {'shape':<9} {'ours ms':>8} {'probe ms':>8} {'ours/probe':>10} {'numpy ms':>9} "
          f"{'numpy/ours':>10} {'torch ms':>9} {'torch/ours':>10} {'GB/s':>6}")
    for shape, sizes in SHAPES.items():
        for vname, v in VARIANTS.items():
            bufs = make(sizes, v)
            nbytes = sum(sizes) * 4 * (3 + 2 * v["moment"] + 2 * v["centered"] + 2)  # g + 2*(rw buffers)
            torch_step = None if args.no_torch else torch_step_factory(bufs, v)
            if torch_step is not None:
                torch_step()  # creates torch's state
            fns = {"ours": lambda: ours(bufs, v), "probe": lambda: probe(bufs, v)}
            if torch_step is not None:
                fns["torch"] = torch_step
            med, _ = interleaved(fns, reps)
            np_med, _ = interleaved({"numpy": lambda: numpy_reference(bufs, v)}, args.numpy_reps, warmup=1)
            row = dict(variant=vname, shape=shape, ours_ms=med["ours"], probe_ms=med["probe"],
                       numpy_ms=np_med["numpy"], torch_ms=med.get("torch"))
            row["ours_over_probe"] = row["ours_ms"] / row["probe_ms"]
            row["numpy_over_ours"] = row["numpy_ms"] / row["ours_ms"]
            row["torch_over_ours"] = row["torch_ms"] / row["ours_ms"] if row["torch_ms"] else None
            row["ours_gbps"] = nbytes / row["ours_ms"] / 1e6
            rows.append(row)
            torch_cols = (f"{row['torch_ms']:9.2f} {row['torch_over_ours']:10.2f}" if row["torch_ms"]
                          else f"{'-':>9} {'-':>10}")
            print(f"{vname:<18} {shape:<9} {row['ours_ms']:8.2f} {row['probe_ms']:8.2f} "
                  f"{row['ours_over_probe']:10.2f} {row['numpy_ms']:9.1f} {row['numpy_over_ours']:10.1f} "
                  f"{torch_cols} {row['ours_gbps']:6.1f}")
            del bufs
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(dict(threads=rmsprop_ops.get_num_threads(), rows=rows), f, indent=2)
    worst = max(r["ours_over_probe"] for r in rows)
    print(f"worst ours/probe = {worst:.2f} (target <= 1.25)")


if __name__ == "__main__":
    main()
