"""Runs a table of CPU updates with whatever CPU loops this process chose, and saves every output's bits.

    RMSPROP_OPS_CPU_ISA=avx2 python tests/scripts/cpu_loops_cases.py OUT.npz

The CPU loops are picked once per process (RMSPROP_OPS_CPU_ISA or cpuid), so tests/core/test_cpu_loops.py
runs this once per instruction set and compares the files bit for bit. Prints the loops that ran.
The table covers every dtype (with and without master weights), every combination of state buffers, every
arithmetic option (each on its own and together, in the plain loop's variants and in the general loop,
also mixed within one call; the reference runs the general loop for all), odd sizes and misaligned starts, thread counts, and non-finite, signed-zero
and subnormal inputs.
"""

from __future__ import annotations

import ctypes
import itertools
import sys

import ml_dtypes
import numpy as np

import rmsprop_ops

DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
RULES = {"plain": dict(momentum=0.0, centered=False, moment=False),
         "moment0": dict(momentum=0.0, centered=False, moment=True),  # moment buffer present, momentum 0
         "momentum": dict(momentum=0.9, centered=False, moment=True),
         "centered": dict(momentum=0.0, centered=True, moment=False),
         "centered+momentum": dict(momentum=0.9, centered=True, moment=True)}
# Each entry alone (the general loop) or none (the plain loop); "mixed" gives some sets weight decay and
# others none within one call.
OPTIONS = {
    "off": {},
    "rescale": dict(rescale_grad=0.5),
    "clip_gradient": dict(clip_gradient=0.3),
    "clip_gradient_before_decay": dict(clip_gradient=0.3, weight_decay=0.1, clip_after_weight_decay=False),
    "clip_weights": dict(clip_weights=0.8),
    "l2": dict(weight_decay=0.05),
    "l1": dict(weight_decay=0.05, weight_decay_mode="l1"),
    "decoupled": dict(weight_decay=0.05, weight_decay_mode="decoupled"),
    "eps_outside": dict(eps_in_sqrt=False),
    "lr_outside_momentum": dict(lr_in_momentum=False),
    "maximize": dict(maximize=True),
    "nesterov": dict(nesterov=True),
    "bias_correction": dict(bias_correction=True, step=3),
    # The plain loop's choices together (rescale, maximize, Nesterov, bias correction), and with an option
    # that sends the same choices through the general loop.
    "choices": dict(rescale_grad=0.5, maximize=True, nesterov=True, bias_correction=True, step=7),
    "choices_clipped": dict(nesterov=True, bias_correction=True, step=2, maximize=True, clip_gradient=0.3),
    "mixed": dict(weight_decay="mixed"),
}
SIZES = {
    "odd": [1, 7, 15, 16, 17, 63, 64, 65, 0, 1000, 4099],
    "large": [70001, 33],  # several threads' ranges, one boundary inside the first set
}
SPECIAL = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-40, -1e-40, 1e30, -1e30, 65504.0, 1e-8], np.float64)


def cpu_loops():
    lib = ctypes.CDLL(rmsprop_ops.get_library())
    lib.rmsprop_ops_cpu_isa.restype = ctypes.c_char_p
    return lib.rmsprop_ops_cpu_isa().decode()


def inputs(sizes, dtype, master, rule, seed):
    rng = np.random.default_rng(seed)
    out = dict(p=[], g=[], ms=[], mom=[], mg=[], master=[])
    for n in sizes:
        # One element more, updated from the second on: every buffer starts off its allocation's alignment.
        p = rng.standard_normal(n + 1) * 2
        g = rng.standard_normal(n + 1)
        if n > 4:
            g[1:1 + min(n, len(SPECIAL))] = SPECIAL[:min(n, len(SPECIAL))]
            p[-3:] = [-0.0, np.inf, 1e-41]
        out["p"].append(p.astype(dtype)[1:])
        out["g"].append(g.astype(dtype)[1:])
        state = DTYPES["float64"] if dtype == np.float64 else np.float32
        out["ms"].append(np.abs(rng.standard_normal(n + 1)).astype(state)[1:])
        if rule["moment"]:
            out["mom"].append(rng.standard_normal(n + 1).astype(state)[1:])
        if rule["centered"]:
            out["mg"].append((rng.standard_normal(n + 1) * 0.1).astype(state)[1:])
        if master:
            out["master"].append(out["p"][-1].astype(np.float32) + np.float32(1e-3))
    return out


def run_case(dtype_name, master, rule_name, option_name, size_name, threads, seed):
    dtype, rule = DTYPES[dtype_name], RULES[rule_name]
    sizes = SIZES[size_name]
    x = inputs(sizes, dtype, master, rule, seed)
    kw = dict(OPTIONS[option_name])
    if kw.get("weight_decay") == "mixed":
        kw["weight_decay"] = [0.05 * (i % 2) for i in range(len(sizes))]
    rmsprop_ops.set_num_threads(threads)
    rmsprop_ops.rmsprop_multi_(
        x["p"], x["g"], x["ms"], moments=x["mom"] or None, mean_grads=x["mg"] or None,
        master_params=x["master"] or None, lr=[0.01 * (1 + i % 3) for i in range(len(sizes))], rho=0.9,
        epsilon=1e-6, momentum=rule["momentum"], centered=rule["centered"], **kw)
    return {k: np.concatenate([a.reshape(-1).view(np.uint8) for a in v]) for k, v in x.items() if v}


def probe_case(rule_name, size_name, threads, seed):
    from rmsprop_ops import _core

    rule = RULES[rule_name]
    x = inputs(SIZES[size_name], np.float32, False, rule, seed)
    rmsprop_ops.set_num_threads(threads)
    _core.update(x["p"], x["g"], x["ms"], x["mom"] or None, x["mg"] or None, None, lr=0.0, lr_mults=None, rho=0.9,
                 epsilon=1e-6, momentum=rule["momentum"], centered=rule["centered"], eps_in_sqrt=True,
                 lr_in_momentum=True, weight_decay=0.0, weight_decay_mode=0, rescale_grad=1.0, clip_gradient=-1.0,
                 clip_weights=-1.0, clip_after_weight_decay=True, skip_update=False, list_names=True,
                 bandwidth_probe=True)
    return {k: np.concatenate([a.reshape(-1).view(np.uint8) for a in v]) for k, v in x.items() if v}


def all_cases():
    """(name, thunk) for every case of the table."""
    seed = itertools.count()
    for dtype_name in DTYPES:
        for master in ((False, True) if dtype_name in ("float16", "bfloat16") else (False,)):
            for rule_name in RULES:
                for option_name in OPTIONS:
                    # Threads and set boundaries inside a thread's range do not depend on the option: the
                    # large sizes run with the plain loop, one general option and a mixed call.
                    large = option_name in ("off", "l1", "choices", "mixed")
                    for size_name, threads in (("odd", 1), ("large", 3))[:2 if large else 1]:
                        s = next(seed)
                        name = f"{dtype_name}{'+master' if master else ''}/{rule_name}/{option_name}/{size_name}/t{threads}"
                        yield name, (lambda a=(dtype_name, master, rule_name, option_name, size_name, threads, s):
                                     run_case(*a))
    for rule_name in RULES:
        s = next(seed)
        yield f"probe/{rule_name}", (lambda a=(rule_name, "large", 2, s): probe_case(*a))


def main():
    out = {}
    for name, thunk in all_cases():
        for key, bits in thunk().items():
            out[f"{name}/{key}"] = bits
    np.savez(sys.argv[1], **out)
    print(cpu_loops())


if __name__ == "__main__":
    main()
