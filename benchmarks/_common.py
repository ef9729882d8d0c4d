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


def interleaved(fns, reps, warmup=2):
    """Median milliseconds of each callable in ``fns`` (name -> fn), run round-robin so that drift in the
    machine's load hits every candidate alike. Python's garbage collector is paused while timing (as
    timeit does): with a framework's many live objects a collection costs milliseconds and lands on
    whichever candidate happens to allocate the triggering object."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    gc.collect()
    gc.disable()
    try:
        for _ in range(reps):
            for k, fn in fns.items():
                t = time.perf_counter()
                fn()
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
