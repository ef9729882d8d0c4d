"""Run by test_paddle_legacy_ir.py with FLAGS_enable_pir_api=0: static programs in Paddle's legacy IR.

Trains the parity model (tests/support/paddle_helpers.py) for a table of cases with
``rmsprop_ops.paddle.RMSProp`` and with ``paddle.optimizer.RMSProp`` in the legacy IR, and prints one JSON
line per case: the largest parameter and accumulator differences, and the update ops each program holds.
"""

import itertools
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))

import numpy as np  # noqa: E402
import paddle  # noqa: E402

import paddle_helpers as H  # noqa: E402
from rmsprop_ops.paddle import RMSProp  # noqa: E402

STEPS = 8
# (centered, momentum, weight decay, clip, lr, fused, flat_state); Paddle's legacy IR clips by value
# itself, so ClipGradByValue compares with the built-in directly.
CASES = [c for c in itertools.product([False, True], [0.0, 0.9], [None, "l2", "paramattr"], [None, "value"],
                                      ["scheduler"], [True, False], [None, True])
         if c[2:4] != ("paramattr", "value")][::3] + [(True, 0.9, "l1", "norm", "float", True, True)]


def make(cls, **extra):
    return lambda **kw: cls(**kw, **extra)


def main():
    assert not paddle.framework.use_pir_api(), "run with FLAGS_enable_pir_api=0"
    for centered, momentum, wd, clip, lr, fused, flat in CASES:
        kw = dict(steps=STEPS, wd=wd, clip=clip, lr=lr, centered=centered, momentum=momentum)
        h_ref, a_ref, ops_ref, _, _ = H.run_static(make(paddle.optimizer.RMSProp), **kw)
        h, a, ops, _, _ = H.run_static(make(RMSProp, fused=fused, flat_state=flat), **kw)
        print(json.dumps(dict(
            case=[centered, momentum, wd, clip, lr, fused, flat],
            param_err=max(H.max_err(x, y) for x, y in zip(h, h_ref)), acc_err=H.max_err(a, a_ref),
            scale=float(max(np.max(np.abs(x)) for x in a_ref)),
            ours=[o for o in ops if o.startswith("rmsprop_ops_")], theirs=[o for o in ops_ref if "rmsprop" in o])),
            flush=True)
    print("legacy ok")


if __name__ == "__main__":
    main()
