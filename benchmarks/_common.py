"""Shared pieces of the framework benchmarks: interleaved A/B timing with medians, RSS, machine info."""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time

SHAPES = {"1x16M": [1 << 24], "1000x16K": [1 << 14] * 1000}
# Both variants use momentum 0.9 (the setting); "centered" adds the mean-gradient state.
VARIANTS = {"plain": dict(momentum=0.9, centered=False), "centered": dict(momentum=0.9, centered=True)}
HPARAMS = dict(lr=1e-6, rho=0.9, epsilon=1e-6)


class _Evictor:
    """Writes a scratch buffer twice the size of the last-level cache, so that the next timed call starts
    with none of its buffers cached, as after a forward/backward pass in training. Without it, whichever
    candidate runs right after another one touching the same arrays (the bandwidth probe after the core
    update, in bench_core) finds up to an L3 of them still cached and looks ~10-30% faster."""

    def __init__(self):
        import numpy as np

        self.buf = np.zeros(max(_llc_bytes(), 32 << 20) * 2 // 8, dtype=np.float64)

    def __call__(self):
        self.buf += 1.0


def _llc_bytes():
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for name in os.listdir(base):
            try:
                with open(os.path.join(base, name, "size")) as f:
                    text = f.read().strip()
            except OSError:
                continue
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            best = max(best, int(text.rstrip("KMG")) * mult)
    except (OSError, ValueError):
        pass
    return best


def interleaved(fns, reps, warmup=2, evict=True):
    """Median milliseconds of each callable in ``fns`` (name -> fn).

    Candidates run round-robin, so that drift in the machine's load hits every candidate alike, and the
    order rotates every repetition, so that no candidate always follows the same other one. Before each
    timed call the last-level cache is evicted (untimed, see ``_Evictor``). Python's garbage collector is
    paused while timing (as timeit does): with a framework's many live objects a collection costs
    milliseconds and lands on whichever candidate happens to allocate the triggering object."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    evictor = _Evictor() if evict else (lambda: None)
    names = list(fns)
    times = {k: [] for k in fns}
    gc.collect()
    gc.disable()
    try:
        for r in range(reps):
            shift = r % len(names)
            for k in names[shift:] + names[:shift]:
                evictor()
                t = time.perf_counter()
                fns[k]()
                times[k].append((time.perf_counter() - t) * 1e3)
    finally:
        gc.enable()
    return {k: statistics.median(v) for k, v in times.items()}, times


def rss_bytes():
    """Resident set size of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return dict(cpu=model, cores=os.cpu_count(), python=platform.python_version(), load=os.getloadavg())


def write_json(path, payload):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
