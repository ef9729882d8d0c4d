"""Shared pieces of the benchmarks: cases, interleaved timing from cold caches, progress, the machine record."""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time

# Idle OpenMP workers (the C loop's; Paddle loads both libgomp and Intel's libiomp5, whose workers spin for
# 200 ms after a parallel region by default) would otherwise spin on the cores the next candidate runs on.
# Read when an OpenMP runtime loads: import this module before torch or a framework.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SHAPES = {"1x16M": [1 << 24], "1000x16K": [1 << 14] * 1000}
# Both variants use momentum 0.9 (the setting); "centered" adds the mean-gradient state.
VARIANTS = {"plain": dict(momentum=0.9, centered=False), "centered": dict(momentum=0.9, centered=True)}
HPARAMS = dict(lr=1e-6, rho=0.9, epsilon=1e-6)


class _Evictor:
    """Writes a scratch buffer twice the size of the last-level cache, so that the next timed call starts
    with none of its buffers cached, as after a forward/backward pass in training. Without it, whichever
    candidate runs right after another one touching the same arrays finds up to an L3 of them still cached
    and looks faster than it is."""

    def __init__(self):
        import numpy as np

        self.buf = np.zeros(max(llc_bytes(), 32 << 20) * 2 // 8, dtype=np.float64)

    def __call__(self):
        self.buf += 1.0


def llc_bytes():
    """Size of the largest CPU cache (sysfs), 0 when unknown."""
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


def interleaved(fns, reps, warmup=2, evict=True, cpu=None):
    """Median milliseconds of each callable in ``fns`` (name -> fn), and every time taken.

    Candidates run round-robin, so that drift in the machine's load hits every candidate alike, and the
    order rotates every repetition, so that no candidate always follows the same other one. Before each
    timed call the last-level cache is evicted (untimed, see ``_Evictor``): every candidate starts from
    memory. Python's garbage collector is paused while timing (as timeit does): with a framework's many
    live objects a collection costs milliseconds and lands on whichever candidate happens to allocate the
    triggering object.

    With ``cpu`` (a dict), also fills it with each candidate's median process CPU time per call (all
    threads): on a machine other programs also use, wall time includes the time the candidate's threads
    waited for a core, CPU time does not, so its ratios move far less from run to run. Meaningful only for
    candidates whose idle threads sleep (the core's pool; OpenMP with OMP_WAIT_POLICY=PASSIVE)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    evictor = _Evictor() if evict else (lambda: None)
    names = list(fns)
    times = {k: [] for k in fns}
    cpu_times = {k: [] for k in fns}
    gc.collect()
    gc.disable()
    try:
        for r in range(reps):
            shift = r % len(names)
            for k in names[shift:] + names[:shift]:
                evictor()
                c = time.process_time()
                t = time.perf_counter()
                fns[k]()
                times[k].append((time.perf_counter() - t) * 1e3)
                cpu_times[k].append((time.process_time() - c) * 1e3)
    finally:
        gc.enable()
    if cpu is not None:
        cpu.update({k: statistics.median(v) for k, v in cpu_times.items()})
    return {k: statistics.median(v) for k, v in times.items()}, times


def rss_bytes():
    """Resident set size of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---- Progress ----------------------------------------------------------------------------------------------


class Progress:
    """One line per finished case: ``[k/n] label: its seconds | elapsed, about how long is left``.

    ``cases`` lists (label, weight) in the order they run; a weight is the case's expected cost in units of
    one cold-cache call of the core over 64 MiB of parameters (setup, process start and framework import
    included), so the estimate is elapsed time / weight done * weight left. Under run.py the
    line covers the whole run: ``--progress`` passes the weight done by earlier parts, the run's total
    weight and its start time (see ``add_progress_args``)."""

    def __init__(self, cases, spec=None, stream=sys.stdout):
        self.weights = dict(cases)
        self.n = len(cases)
        own = sum(self.weights.values())
        if spec:
            base, total, start, first, count = spec.split(",")
            self.base, self.total, self.start = float(base), float(total), float(start)
            self.first, self.count = int(first), int(count)
        else:
            self.base, self.total, self.start, self.first, self.count = 0.0, own, time.time(), 0, self.n
        self.done_weight = 0.0
        self.k = 0
        self.last = time.time()
        self.stream = stream

    def done(self, label, note=""):
        now = time.time()
        self.k += 1
        self.done_weight += self.weights.get(label, 0.0)
        finished = self.base + self.done_weight
        elapsed = now - self.start
        left = elapsed / finished * (self.total - finished) if finished > 0 else float("nan")
        line = (f"[{self.first + self.k}/{self.count}] {label}: {now - self.last:.1f} s{note} | "
                f"elapsed {_clock(elapsed)}, about {_clock(left)} left")
        print(line, file=self.stream, flush=True)
        self.last = now

    def child_spec(self):
        """``--progress`` for a child process that runs the next cases and prints their lines."""
        return f"{self.base + self.done_weight},{self.total},{self.start},{self.first + self.k},{self.count}"

    def advance(self, labels):
        """Counts cases a child process ran (and printed) as done."""
        for label in labels:
            self.k += 1
            self.done_weight += self.weights.get(label, 0.0)
        self.last = time.time()


def _clock(seconds):
    if seconds != seconds:  # NaN
        return "?"
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def add_progress_args(ap):
    ap.add_argument("--plan", action="store_true", help="print this run's cases and weights as JSON and exit")
    ap.add_argument("--progress", default=None, help=argparse.SUPPRESS)


def print_plan(cases):
    print(json.dumps([[label, weight] for label, weight in cases]))


# ---- The machine ---------------------------------------------------------------------------------------

# The x86 features that decide which loops the core and the C loop's compiler can use.
_ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512dq", "avx512bw", "avx512vl",
              "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile")


def _cpuinfo():
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def core_build():
    """The core's CPU loops in this process and the compiler that built them (rmsprop_ops_cpu_isa /
    rmsprop_ops_cpu_compiler through ctypes); None for a core without them."""
    import ctypes

    import rmsprop_ops

    lib = ctypes.CDLL(rmsprop_ops.get_library())
    out = {"threads": rmsprop_ops.get_num_threads()}
    for key, name in (("cpu_loops", "rmsprop_ops_cpu_isa"), ("compiler", "rmsprop_ops_cpu_compiler")):
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = ctypes.c_char_p
            out[key] = fn().decode()
    return out


def machine():
    """What a reader needs to compare runs: CPU model and vendor, the ISA features that matter, caches,
    cores, huge-page policy, load, versions and the date."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    thp = _read("/sys/kernel/mm/transparent_hugepage/enabled")
    return dict(
        cpu=info.get("model name") or platform.processor() or platform.machine(),
        vendor=info.get("vendor_id"),
        family=info.get("cpu family"),
        model=info.get("model"),
        isa=[f for f in _ISA_FLAGS if f in flags],
        hypervisor="hypervisor" in flags,
        cores=os.cpu_count(),
        affinity=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        llc_bytes=llc_bytes(),
        transparent_hugepages=thp.split("[")[1].split("]")[0] if thp and "[" in thp else thp,
        kernel=platform.release(),
        python=platform.python_version(),
        numpy=__import__("numpy").__version__,
        load=os.getloadavg(),
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )


def machine_line(m):
    return (f"{m['cpu']} ({m['vendor']}, family {m['family']} model {m['model']}), {m['cores']} logical CPUs, "
            f"L3 {m['llc_bytes'] >> 20} MiB, {' '.join(m['isa'])}, THP {m['transparent_hugepages']}, "
            f"load {m['load'][0]:.1f}")


def write_json(path, payload):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
