"""MindSpore GRAPH_MODE optimizer step: ``rmsprop_ops.mindspore.RMSProp`` vs ``mindspore.nn.RMSProp``.

The gradients live inside the graph, as non-trainable Parameters of the stepping Cell: handing 1000
gradient tensors in from Python costs ~110 ms of input transfer per call and would hide the optimizer.
The step's only output is a scalar that depends on the update, read back with ``asnumpy()`` so each
timing includes the whole (possibly asynchronous) launch. A/B interleaved, medians.

Each shape and rule also times ``RMSProp(flat_state=True)`` (variant "<rule>+flat"), interleaved with the
other two: one state buffer per launch instead of per parameter, so 1000 parameters' launch takes ~2000
fewer inputs. Both rows share the same built-in timings.

Memory: bytes of each optimizer's state Parameters and the RSS growth of its compile + first steps.

    python benchmarks/bench_mindspore.py [--reps 15] [--json bench_out/mindspore.json] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import sys

import numpy as np
import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn
from mindspore import dtype as mstype
from mindspore.ops import functional as F

from _common import HPARAMS, SHAPES, VARIANTS, interleaved, machine, rss_bytes, write_json

import rmsprop_ops
import rmsprop_ops.mindspore as rms


class OptimizerStep(nn.Cell):
    """One optimizer step over gradients held as Parameters; returns a scalar ordered after the update."""

    def __init__(self, opt, grads):
        super().__init__()
        self.opt = opt
        self.grads = ParameterTuple(grads)
        self.done = Tensor(1.0, mstype.float32)

    def construct(self):
        return F.depend(self.done, self.opt(self.grads))


def setup(kind, sizes, v, rng, tag):
    params = [Parameter(Tensor(rng.standard_normal(n, dtype=np.float32)), name=f"{tag}.w{i}")
              for i, n in enumerate(sizes)]
    grads = [Parameter(Tensor(rng.standard_normal(n, dtype=np.float32)), name=f"{tag}.g{i}", requires_grad=False)
             for i, n in enumerate(sizes)]
    cls = {"ours": rms.RMSProp, "ours_flat": functools.partial(rms.RMSProp, flat_state=True),
           "builtin": nn.RMSProp}[kind]
    opt = cls(params, learning_rate=HPARAMS["lr"], decay=HPARAMS["rho"], epsilon=HPARAMS["epsilon"],
              momentum=v["momentum"], centered=v["centered"])
    net = OptimizerStep(opt, grads)
    rss0 = rss_bytes()
    net().asnumpy()  # compile
    rss1 = rss_bytes()
    state = [p for name in ("ms", "moment", "mg") for p in getattr(opt, name, ())]
    nbytes = sum(int(np.prod(p.shape)) * p.itemsize for p in state)

    def step():
        net().asnumpy()

    return step, dict(state_bytes=nbytes, rss_growth=rss1 - rss0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--json", default="bench_out/mindspore.json")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    args = ap.parse_args()
    reps = 3 if args.quick else args.reps
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    rng = np.random.default_rng(0)
    rows = []
    print(f"mindspore {ms.__version__}  {machine()['cpu']}  cores={machine()['cores']}  "
          f"rmsprop_ops threads={rmsprop_ops.get_num_threads()}", flush=True)
    k = 0
    for shape, sizes in SHAPES.items():
        for vname, v in VARIANTS.items():
            steps, infos = {}, {}
            for kind, tag in (("ours", "a"), ("ours_flat", "f"), ("builtin", "b")):
                steps[kind], infos[kind] = setup(kind, sizes, v, rng, f"{tag}{k}")
            k += 1
            med, _ = interleaved(steps, reps)
            for kind, variant in (("ours", vname), ("ours_flat", f"{vname}+flat")):
                rows.append(dict(bench="optimizer", shape=shape, variant=variant, rule=vname, ours_ms=med[kind],
                                 builtin_ms=med["builtin"], speedup=med["builtin"] / med[kind],
                                 ours_state_bytes=infos[kind]["state_bytes"],
                                 builtin_state_bytes=infos["builtin"]["state_bytes"],
                                 ours_rss_growth=infos[kind]["rss_growth"],
                                 builtin_rss_growth=infos["builtin"]["rss_growth"]))
                r = rows[-1]
                print(f"optimizer  {shape:<9} {variant:<14} ours {r['ours_ms']:8.2f} ms  nn.RMSProp "
                      f"{r['builtin_ms']:8.2f} ms  x{r['speedup']:.2f}  state {r['ours_state_bytes'] / 2**20:.0f}/"
                      f"{r['builtin_state_bytes'] / 2**20:.0f} MiB  rss+ {r['ours_rss_growth'] / 2**20:.0f}/"
                      f"{r['builtin_rss_growth'] / 2**20:.0f} MiB", flush=True)
            del steps
    write_json(args.json, dict(framework="mindspore", version=ms.__version__, machine=machine(),
                               threads=rmsprop_ops.get_num_threads(), reps=reps, rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
