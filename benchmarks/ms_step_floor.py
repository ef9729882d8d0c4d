"""Where a MindSpore GRAPH_MODE step of ``rmsprop_ops.mindspore.RMSProp`` spends its time, with DEFAULT
arguments, against ``mindspore.nn.RMSProp`` and the bounds that limit the ratio.

Per shape (1x16M, 1000x16K float32) and rule (plain, centered), interleaved in one group from cold caches
(``_common.interleaved``), medians of ``--reps``:

- ``builtin``: ``nn.RMSProp(params)``, one ApplyRMSProp / ApplyCenteredRMSProp per parameter;
- ``ours``: ``RMSProp(params)``, one launch of our op (per-parameter state, the default);
- ``flat``: ``RMSProp(params, flat_state=True)``, the same launch with one state buffer per kind;
- ``noop``: ``ours``' very graph with a no-op aot kernel in place of ours (same inputs, nothing computed):
  what MindSpore itself costs per step (running the graph, the launch and its inputs, reading the result);
- ``noop_flat``: the same for ``flat``;
- ``core``: the core's kernel alone on NumPy buffers of the same sizes (``rmsprop_ops.rmsprop_multi_``);
- ``probe``: the core's bandwidth probe on those buffers: reads and writes exactly the bytes the update moves
  (ApplyRMSProp moves the same ones), so it is the memory roofline of both optimizers.

The gradients live in the graph as Parameters (passing 1000 tensors in from Python costs far more than the
update). ``bound`` = builtin / (probe + noop) is the best ratio any optimizer could show against the built-in
here: one launch at the memory roofline plus what MindSpore costs around it.

    python benchmarks/ms_step_floor.py [--reps 21] [--shapes 1x16M 1000x16K] [--json bench_out/ms_floor.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile

import numpy as np
import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops
from mindspore import dtype as mstype
from mindspore.ops import functional as F

from _common import interleaved, machine, write_json
from bench_core import make, probe

import rmsprop_ops
import rmsprop_ops.mindspore as rms

RULES = {"plain": dict(centered=False, momentum=0.0, moment=True),
         "centered": dict(centered=True, momentum=0.0, moment=True)}

_NOOP = r"""
#include <stdint.h>
#include <string.h>
int noop(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream, void *extra) {
  float one = 1.0f;
  memcpy(params[nparam - 1], &one, sizeof one);
  return 0;
}
"""


def parse_shape(text):
    """"1000x16K" -> [16384] * 1000 (K = 2**10, M = 2**20)."""
    count, _, size = text.partition("x")
    scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
    return [int(size.rstrip("KM")) * scale] * int(count)


def noop_library(tmp):
    src, lib = os.path.join(tmp, "noop.c"), os.path.join(tmp, "libnoop.so")
    with open(src, "w") as f:
        f.write(_NOOP)
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC", src, "-o", lib], check=True)
    return lib


class Step(nn.Cell):
    """One optimizer step over gradients held as Parameters; returns a scalar ordered after the update."""

    def __init__(self, opt, grads):
        super().__init__()
        self.opt = opt
        self.grads = ParameterTuple(grads)
        self.done = Tensor(1.0, mstype.float32)

    def construct(self):
        return F.depend(self.done, self.opt(self.grads))


def with_noop_kernel(opt, lib):
    """``opt`` with every launch's op replaced by a no-op aot kernel taking the same inputs."""
    def noop_op():
        op = ops.Custom(f"{lib}:noop", out_shape=lambda *s: (1,), out_dtype=lambda *d: mstype.float32,
                        func_type="aot")
        op.add_prim_attr("side_effect_mem", True)
        return op

    plan = opt._plan
    opt._plan = dataclasses.replace(plan, launches=tuple(dataclasses.replace(launch, op=noop_op())
                                                         for launch in plan.launches))
    return opt


def graph_step(kind, sizes, rule, rng, tag, lib):
    params = [Parameter(Tensor(rng.standard_normal(n, dtype=np.float32)), name=f"{tag}.w{i}")
              for i, n in enumerate(sizes)]
    grads = [Parameter(Tensor(rng.standard_normal(n, dtype=np.float32)), name=f"{tag}.g{i}", requires_grad=False)
             for i, n in enumerate(sizes)]
    if kind == "builtin":
        opt = nn.RMSProp(params, centered=rule["centered"])
    else:
        opt = rms.RMSProp(params, centered=rule["centered"], flat_state=kind.endswith("flat"))
        if kind.startswith("noop"):
            with_noop_kernel(opt, lib)
    net = Step(opt, grads)
    net().asnumpy()  # compile
    return lambda: net().asnumpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--shapes", nargs="*", default=["1x16M", "1000x16K"],
                    help="COUNTxSIZE, SIZE with an optional K or M suffix")
    ap.add_argument("--rules", nargs="*", default=list(RULES))
    ap.add_argument("--json", default="bench_out/ms_floor.json")
    args = ap.parse_args()
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    rng = np.random.default_rng(0)
    info = machine()
    print(f"mindspore {ms.__version__}  {info['cpu']}  cores={info['cores']}  load={info['load']}  "
          f"rmsprop_ops threads={rmsprop_ops.get_num_threads()}  reps={args.reps}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lib = noop_library(tmp)
        for k, shape in enumerate(args.shapes):
            for rname in args.rules:
                rule, sizes = RULES[rname], parse_shape(shape)
                fns = {kind: graph_step(kind, sizes, rule, rng, f"{kind}{k}{rname}", lib)
                       for kind in ("builtin", "ours", "flat", "noop", "noop_flat")}
                bufs = make(sizes, rule)
                fns["core"] = lambda b=bufs, r=rule: rmsprop_ops.rmsprop_multi_(
                    b[0], b[1], b[2], moments=b[3], mean_grads=b[4], lr=1e-9, rho=0.9, epsilon=1e-10,
                    centered=r["centered"])
                fns["probe"] = lambda b=bufs, r=rule: probe(b, r)
                med, _ = interleaved(fns, args.reps)
                row = dict(shape=shape, rule=rname, **{f"{k}_ms": v for k, v in med.items()})
                row["builtin_over_ours"] = med["builtin"] / med["ours"]
                row["builtin_over_flat"] = med["builtin"] / med["flat"]
                row["bound"] = med["builtin"] / (med["probe"] + med["noop"])
                row["bound_flat"] = med["builtin"] / (med["probe"] + med["noop_flat"])
                rows.append(row)
                print(f"{shape:<9} {rname:<9} " + "  ".join(f"{k} {v:7.2f}" for k, v in med.items()) +
                      f"  | builtin/ours {row['builtin_over_ours']:.2f}  builtin/flat {row['builtin_over_flat']:.2f}"
                      f"  bound {row['bound']:.2f} (flat {row['bound_flat']:.2f})", flush=True)
                del fns
    write_json(args.json, dict(framework="mindspore", version=ms.__version__, machine=machine(),
                               threads=rmsprop_ops.get_num_threads(), reps=args.reps, rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
