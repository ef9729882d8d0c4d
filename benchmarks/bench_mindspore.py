"""MindSpore GRAPH_MODE optimizer step: ``rmsprop_ops.mindspore.RMSProp`` with its default arguments vs
``mindspore.nn.RMSProp``, and the plain fused C loop moving the same bytes.

The gradients live inside the graph, as non-trainable Parameters of the stepping Cell: handing 1000
gradient tensors in from Python costs far more than the update and would hide the optimizer. The step's
only output is a scalar that depends on the update, read back with ``asnumpy()`` so each timing includes
the whole (possibly asynchronous) launch. A/B interleaved from cold caches, medians; the C loop over NumPy
buffers of the same sizes runs in the same rounds (targets: built-in / ours, and ours / C loop for 1x16M).

The full run also times ``RMSProp(flat_state=True)`` (config "flat": one state buffer per kind instead of
per parameter) in the same rounds. Memory: bytes of each optimizer's state Parameters and the RSS growth of
its compile and first steps.

    python benchmarks/bench_mindspore.py [--reps 15] [--json bench_out/mindspore.json] [--quick]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from _common import (HPARAMS, SHAPES, VARIANTS, Progress, add_progress_args, interleaved, machine, print_plan,
                     rss_bytes, write_json)

CONFIGS = {"ours": "defaults", "ours_flat": "flat"}  # kind -> row config


def settings(args):
    return dict(reps=3 if args.quick else args.reps,
                kinds=("ours", "builtin") if args.quick else ("ours", "ours_flat", "builtin"))


# Expected costs for the progress estimate, in units of one cold core call (see _common.Progress): a
# process start with MindSpore's import, compiling one optimizer's graph, one timed step.
_START = 200
_COMPILE = {"1x16M": 45, "1000x16K": 250}
_STEP = {"1x16M": 1.5, "1000x16K": 4}


def cases(args):
    s = settings(args)
    out = [(f"mindspore {shape} {vname}",
            len(s["kinds"]) * _COMPILE[shape] + (s["reps"] + 2) * (len(s["kinds"]) + 1) * _STEP[shape])
           for shape in SHAPES for vname in VARIANTS]
    out[0] = (out[0][0], out[0][1] + _START)
    return out


def setup(kind, sizes, v, rng, tag):
    from mindspore import Parameter, ParameterTuple, Tensor, nn
    from mindspore import dtype as mstype
    from mindspore.ops import functional as F

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

    params = [Parameter(Tensor(rng.standard_normal(n, dtype=np.float32)), name=f"{tag}.w{i}")
              for i, n in enumerate(sizes)]
    grads = [Parameter(Tensor(rng.standard_normal(n, dtype=np.float32)), name=f"{tag}.g{i}", requires_grad=False)
             for i, n in enumerate(sizes)]
    kw = dict(learning_rate=HPARAMS["lr"], decay=HPARAMS["rho"], epsilon=HPARAMS["epsilon"], momentum=v["momentum"],
              centered=v["centered"])
    if kind == "builtin":
        opt = nn.RMSProp(params, **kw)
    elif kind == "ours_flat":
        opt = rms.RMSProp(params, flat_state=True, **kw)
    else:
        opt = rms.RMSProp(params, **kw)
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
    ap.add_argument("--quick", action="store_true", help="3 repetitions, defaults only (smoke run)")
    add_progress_args(ap)
    args = ap.parse_args()
    s = settings(args)
    if args.plan:
        print_plan(cases(args))
        return 0
    import mindspore as ms

    import rmsprop_ops
    from _cloop import CLoop

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    threads = rmsprop_ops.get_num_threads()
    loop = CLoop.build()
    rng = np.random.default_rng(0)
    progress = Progress(cases(args), args.progress)
    rows = []
    print(f"mindspore {ms.__version__}: {', '.join(CONFIGS[k] for k in s['kinds'] if k != 'builtin')} vs "
          f"nn.RMSProp, {s['reps']} reps", flush=True)
    k = 0
    for shape, sizes in SHAPES.items():
        for vname, v in VARIANTS.items():
            steps, infos = {}, {}
            for kind in s["kinds"]:
                steps[kind], infos[kind] = setup(kind, sizes, v, rng, f"{kind}{k}")
            k += 1
            if loop is not None:
                steps["cloop"] = loop.for_rule(sizes, v["momentum"], v["centered"], threads=threads)
            med, _ = interleaved(steps, s["reps"])
            new = []
            for kind in s["kinds"]:
                if kind == "builtin":
                    continue
                cloop = med.get("cloop")
                new.append(dict(framework="mindspore", bench="graph", shape=shape, rule=vname, config=CONFIGS[kind],
                                ours_ms=med[kind], builtin_ms=med["builtin"], speedup=med["builtin"] / med[kind],
                                cloop_ms=cloop, ours_over_cloop=med[kind] / cloop if cloop else None,
                                ours_state_bytes=infos[kind]["state_bytes"],
                                builtin_state_bytes=infos["builtin"]["state_bytes"],
                                ours_rss_growth=infos[kind]["rss_growth"],
                                builtin_rss_growth=infos["builtin"]["rss_growth"]))
            rows += new
            del steps
            progress.done(f"mindspore {shape} {vname}", "  " + "  ".join(
                f"{r['config']}: x{r['speedup']:.2f}" + (f" ({r['ours_over_cloop']:.2f} C)" if r["ours_over_cloop"]
                                                         else "") for r in new))
    write_json(args.json, dict(part="mindspore", framework="mindspore", version=ms.__version__, machine=machine(),
                               threads=threads, cloop=loop.info if loop else None, reps=s["reps"], rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
