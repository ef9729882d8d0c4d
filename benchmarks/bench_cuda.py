"""The CUDA kernel on one GPU: achieved bandwidth against the device's copy bandwidth, and side by side with
torch.optim.RMSprop(foreach=True), in one run. Needs a CUDA build of rmsprop_ops and CUDA torch (torch
allocates the device arrays; they reach the core through DLPack).

Two times per candidate, medians over interleaved repetitions (each after a 256 MB write that evicts L2):
- ``gpu_ms``: device time of one step alone. The step is queued behind a ``torch.cuda._sleep`` longer than
  the host needs to queue it, between two CUDA events, so the host's launch cost overlaps the sleep and the
  events time the kernels back to back, as in a training step whose host runs ahead of the device.
- ``wall_ms``: one step called from Python until the device is done, the host's argument handling included
  (for 1000 tensors mostly the hand-over of 4000-5000 tensors to the core, not the kernel).

Achieved bandwidth counts every byte the rule must move once (fp32, momentum: param, grad, mean square and
moment read, param, mean square and moment written: 28 bytes per element; centered adds the mean gradient:
36) over ``gpu_ms``, and is compared with a device-to-device copy of 1 GiB (bytes read + written).

    python benchmarks/bench_cuda.py [--reps 25] [--json bench_out/cuda.json] [--shapes 1x16M,1000x16K]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import rmsprop_ops

from _common import HPARAMS, SHAPES, VARIANTS, write_json

# (parameter dtype, master weight): the fp32, and bf16 params with fp32 state and master weights
# (storage type vs math type; 2-byte loads travel in 8-byte packs).
DTYPES = {"float32": (torch.float32, False), "bfloat16+master": (torch.bfloat16, True)}
# The shapes; 10000 tiny tensors of the same total size, where the 256 sets a launch can carry
# make it 40 launches; and one tiny tensor, where the launch itself is the cost.
CUDA_SHAPES = {**SHAPES, "10000x1.6K": [1600] * 10000, "1x4K": [4096]}


def bytes_per_element(dtype, master, centered):
    p = torch.finfo(dtype).bits // 8
    state = 2 + (1 if centered else 0) + (1 if master else 0)  # ms, moment, [mean_grad], [master]: r + w
    return p * 3 + 4 * 2 * state  # param r + w, grad r; fp32 state read and written


class Timer:
    def __init__(self):
        self.scratch = torch.empty(64 << 20, dtype=torch.float32, device="cuda")  # 256 MB > any L2
        self.sleep_cycles = 10_000_000

    MAX_SLEEP_CYCLES = 4_000_000_000

    def gpu(self, fn):
        """Device milliseconds of fn's work, queued behind a sleep that hides the host's queuing time."""
        self.scratch.fill_(1.0)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(self.sleep_cycles)
        start.record()
        t = time.perf_counter()
        fn()
        host = time.perf_counter() - t
        end.record()
        end.synchronize()
        # The sleep must outlast the host's queuing, or the gap would be timed as device time. A step that
        # waits for the device itself (torch's allocator may, with thousands of tensors) outlasts any sleep:
        # past ~2 s of sleep its time between the events is taken as it is, an upper bound.
        if host * 2.5e9 > self.sleep_cycles and self.sleep_cycles < self.MAX_SLEEP_CYCLES:
            self.sleep_cycles = min(int(host * 2.5e9 * 2), self.MAX_SLEEP_CYCLES)
            return None
        return start.elapsed_time(end)

    def wall(self, fn):
        self.scratch.fill_(1.0)
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - t) * 1e3


def interleaved(fns, reps, timer):
    for fn in fns.values():  # warm-up: kernels loaded, caches of the Python side filled
        fn()
        fn()
    gpu = {k: [] for k in fns}
    wall = {k: [] for k in fns}
    names = list(fns)
    for r in range(reps):
        shift = r % len(names)
        for k in names[shift:] + names[:shift]:
            g = timer.gpu(fns[k])
            while g is None:  # the sleep was too short; it has been lengthened
                g = timer.gpu(fns[k])
            gpu[k].append(g)
            wall[k].append(timer.wall(fns[k]))
    return {k: dict(gpu_ms=statistics.median(gpu[k]), wall_ms=statistics.median(wall[k])) for k in fns}


def copy_bandwidth(reps):
    a = torch.ones(1 << 28, dtype=torch.float32, device="cuda")  # 1 GiB
    b = torch.empty_like(a)
    times = []
    for _ in range(reps + 2):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        b.copy_(a)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    ms = statistics.median(times[2:])
    return 2 * a.numel() * 4 / (ms * 1e-3) / 1e9


def make(sizes, dtype, master, centered, seed=0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    p = [torch.randn(n, device="cuda", generator=gen).to(dtype) for n in sizes]
    g = [torch.randn(n, device="cuda", generator=gen).to(dtype) for n in sizes]
    ms = [torch.zeros(n, device="cuda") for n in sizes]
    mom = [torch.zeros(n, device="cuda") for n in sizes]
    mg = [torch.zeros(n, device="cuda") for n in sizes] if centered else None
    mp = [x.float() for x in p] if master else None
    return p, g, ms, mom, mg, mp


def candidates(sizes, dtype, master, variant):
    centered = variant["centered"]
    p, g, ms, mom, mg, mp = make(sizes, dtype, master, centered)
    lr = torch.full((1,), HPARAMS["lr"], device="cuda")  # a device scalar, as a scheduler would keep it

    def ours():
        rmsprop_ops.rmsprop_multi_(p, g, ms, moments=mom, mean_grads=mg, master_params=mp, lr=lr,
                                   rho=HPARAMS["rho"], epsilon=HPARAMS["epsilon"], eps_in_sqrt=False,
                                   momentum=variant["momentum"], centered=centered)

    fns = {"ours": ours}
    if not master:  # torch's RMSprop has no master weights
        tp = [x.clone().requires_grad_() for x in p]
        for x, y in zip(tp, g):
            x.grad = y.clone()
        opt = torch.optim.RMSprop(tp, lr=HPARAMS["lr"], alpha=HPARAMS["rho"], eps=HPARAMS["epsilon"],
                                  momentum=variant["momentum"], centered=centered, foreach=True)
        fns["torch_foreach"] = opt.step
    return fns


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--json", default="bench_out/cuda.json")
    ap.add_argument("--shapes", default=",".join(CUDA_SHAPES), help="comma-separated subset of "
                    + ", ".join(CUDA_SHAPES))
    args = ap.parse_args()
    shapes = args.shapes.split(",")
    unknown = [s for s in shapes if s not in CUDA_SHAPES]
    if unknown:
        ap.error(f"--shapes: expected names from {', '.join(CUDA_SHAPES)}, got {', '.join(unknown)}")
    if not (rmsprop_ops.cuda_available() and torch.cuda.is_available()):
        print("needs a CUDA build of rmsprop_ops (built_with_cuda=%s) and a CUDA device" % rmsprop_ops.built_with_cuda())
        return 1
    prop = torch.cuda.get_device_properties(0)
    copy_gbs = copy_bandwidth(args.reps)
    print(f"{prop.name}: {prop.multi_processor_count} SMs, {prop.total_memory / 2**30:.0f} GiB; "
          f"device-to-device copy {copy_gbs:.0f} GB/s (read + write)", flush=True)
    timer = Timer()
    rows = []
    for dname, (dtype, master) in DTYPES.items():
        for shape in shapes:
            sizes = CUDA_SHAPES[shape]
            for vname, variant in VARIANTS.items():
                res = interleaved(candidates(sizes, dtype, master, variant), args.reps, timer)
                nbytes = sum(sizes) * bytes_per_element(dtype, master, variant["centered"])
                for cand, t in res.items():
                    gbs = nbytes / (t["gpu_ms"] * 1e-3) / 1e9
                    rows.append(dict(dtype=dname, shape=shape, variant=vname, candidate=cand, **t,
                                     bytes=nbytes, gbs=gbs, of_copy=gbs / copy_gbs))
                line = f"{dname:16s} {shape:9s} {vname:9s}"
                for cand, t in res.items():
                    line += f" | {cand}: gpu {t['gpu_ms']:.3f} ms wall {t['wall_ms']:.3f} ms"
                ours = res["ours"]
                line += f" | ours {nbytes / (ours['gpu_ms'] * 1e-3) / 1e9:.0f} GB/s = " \
                        f"{nbytes / (ours['gpu_ms'] * 1e-3) / 1e9 / copy_gbs:.2f} of copy"
                if "torch_foreach" in res:
                    tf = res["torch_foreach"]
                    line += f" | torch/ours gpu {tf['gpu_ms'] / ours['gpu_ms']:.2f}x wall {tf['wall_ms'] / ours['wall_ms']:.2f}x"
                print(line, flush=True)
    write_json(args.json, dict(device=prop.name, sms=prop.multi_processor_count, copy_gbs=copy_gbs,
                               torch=torch.__version__, reps=args.reps, rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
