"""What the convention features of ``rmsprop_ops.mindspore`` cost per GRAPH_MODE step, against the default
rule and against MindSpore's own optimizers.

One compiled step per candidate (a Cell whose construct calls the optimizer on gradients held as
Parameters, as ``ms_step_floor.py`` does), interleaved (``_common.interleaved``), medians of ``--reps``:

- ``nn.RMSProp``: MindSpore's optimizer; ``default``: ``RMSProp(params)`` (MindSpore's rule);
- ``torch``: ``RMSProp(params, convention="torch")``; ``keras_wd``: Keras' convention with decoupled weight
  decay; the rule is the kernel's config, so these should cost what ``default`` costs;
- ``maximize``: the gradients negated in the graph first; ``ema``: ``use_ema=True`` (an average update per
  parameter after the launch); ``ema_overwrite``: with ``ema_overwrite_frequency`` (a select per parameter);
- ``experimental``: ``rmsprop_ops.mindspore.experimental.RMSprop`` against ``ms_experimental``,
  ``mindspore.experimental.optim.RMSprop`` (both with momentum 0.9).

    python benchmarks/ms_conventions_cost.py [--reps 15] [--shape 100x16K] [--json bench_out/ms_conv.json]
"""

from __future__ import annotations

import argparse

import numpy as np
import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn
from mindspore.experimental import optim

from _common import interleaved, machine, write_json

from rmsprop_ops.mindspore import RMSProp
from rmsprop_ops.mindspore.experimental import RMSprop as ExperimentalRMSprop


class _Step(nn.Cell):
    def __init__(self, opt, grads):
        super().__init__()
        self.opt = opt
        self.grads = ParameterTuple(grads)

    def construct(self):
        return self.opt(tuple(self.grads))


def _parse_shape(text):
    n, size = text.lower().split("x")
    return int(n), int(size.replace("k", "")) * (1024 if size.lower().endswith("k") else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--shape", default="100x16K", help="N x size: N float32 parameters of size elements")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    ms.set_context(mode=ms.GRAPH_MODE)
    n, size = _parse_shape(args.shape)
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(size).astype(np.float32) for _ in range(n)]

    def step(make, tag):
        ps = [Parameter(Tensor(v.copy()), name=f"{tag}.w{i}") for i, v in enumerate(init)]
        gs = [Parameter(Tensor(v * 0.1), name=f"{tag}.g{i}", requires_grad=False) for i, v in enumerate(init)]
        cell = _Step(make(ps), gs)

        def run():
            cell()
            ps[0].asnumpy()   # waits for the step (and reads 1 of n parameters back)
        return run

    candidates = {
        "nn.RMSProp": lambda ps: nn.RMSProp(ps, learning_rate=0.01, momentum=0.9),
        "default": lambda ps: RMSProp(ps, learning_rate=0.01, momentum=0.9),
        "torch": lambda ps: RMSProp(ps, convention="torch", lr=0.01, momentum=0.9),
        "keras_wd": lambda ps: RMSProp(ps, convention="keras", learning_rate=0.01, momentum=0.9, weight_decay=1e-4),
        "maximize": lambda ps: RMSProp(ps, learning_rate=0.01, momentum=0.9, maximize=True),
        "ema": lambda ps: RMSProp(ps, learning_rate=0.01, momentum=0.9, use_ema=True),
        "ema_overwrite": lambda ps: RMSProp(ps, learning_rate=0.01, momentum=0.9, use_ema=True,
                                            ema_overwrite_frequency=100),
        "experimental": lambda ps: ExperimentalRMSprop(ps, lr=0.01, momentum=0.9),
        "ms_experimental": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.9),
    }
    fns = {name: step(make, name) for name, make in candidates.items()}
    medians, _ = interleaved(fns, args.reps)
    info = machine()
    print(f"{n} x {size} float32, GRAPH_MODE, median of {args.reps}; {info['cpu']}, {info['cores']} cores, "
          f"load {info['load'][0]:.1f}")
    base = medians["default"]
    for name, ms_time in medians.items():
        print(f"  {name:16s} {ms_time:8.2f} ms   {ms_time / base:5.2f}x default")
    if args.json:
        write_json(args.json, {"shape": args.shape, "reps": args.reps, "median_ms": medians, "machine": info})


if __name__ == "__main__":
    main()
