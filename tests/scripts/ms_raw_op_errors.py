"""Bad input straight into the raw ``ops.Custom`` op (no Python checks in front of the kernel), run by
test_ms_errors.py in a subprocess so that a crash fails one case instead of killing pytest.

Each case is launched twice: eagerly (PYNATIVE_MODE, the aot failure converted by ``raise_from_kernel``) and
inside a compiled Cell (GRAPH_MODE, where MindSpore raises its own RuntimeError and the core's message is
kept in ``last_error()``). Prints one JSON line per case and launch; "begin" lines locate a crash.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from rmsprop_ops._toolkit.checks import registry_document

# (id, change, exception the core reports, message prefix). `change` edits the launch arguments: "lr",
# "config" (a float64 NumPy copy of a valid config for one float32 tensor of 3 elements), "blocks" (params,
# grads, mean_squares, moments; lists of NumPy arrays that become Parameters / Tensors); "flat" launches
# with flat state (the config's flag and offset [0]), its dict changing the offset or the state buffers.
# The config's layout comes from the core's registry; entries are addressed by name.
_LAYOUT = registry_document()["config_layout"]
_AT = {name: i for i, name in enumerate([*_LAYOUT["header"], *_LAYOUT["values"]])}
_HEAD = len(_AT)  # header and values: the config of 0 tensors
_N1 = _HEAD + len(_LAYOUT["lists"])  # the config of one tensor without flat state
_WD0 = _HEAD + _LAYOUT["lists"].index("weight_decays")  # weight_decays[0] with one tensor

RAW_CASES = [
    ("config-float32", "cfg_f32", TypeError, f"config: expected a float64 vector of at least {_HEAD} values"),
    ("config-short", "cfg_short", TypeError, f"config: expected a float64 vector of at least {_HEAD} values"),
    ("config-count-nan", ("cfg", _AT["count"], np.nan), ValueError, "config: expected a tensor count in [0, 7]"),
    ("config-count-negative", ("cfg", _AT["count"], -1.0), ValueError, "config: expected a tensor count in [0, 7]"),
    ("config-count-fraction", ("cfg", _AT["count"], 0.5), ValueError, "config: expected a tensor count in [0, 7]"),
    ("config-count-too-big", ("cfg", _AT["count"], 7.0), ValueError,
     f"config: expected {_HEAD + 7 * len(_LAYOUT['lists'])} values for 7 tensors, got {_N1}"),
    ("config-extra-value", "cfg_long", ValueError, f"config: expected {_N1} values for 1 tensors, got {_N1 + 1}"),
    ("config-centered-without-mean-grads", ("cfg", _AT["centered"], 1.0), ValueError,
     "expected 8 arguments for 1 tensors, got 7"),
    ("config-rho-nan", ("cfg", _AT["rho"], np.nan), ValueError, "rho: expected a finite number"),
    ("config-rho-above-one", ("cfg", _AT["rho"], 1.5), ValueError, "rho: expected a value in [0, 1]"),
    ("config-epsilon-zero", ("cfg", _AT["epsilon"], 0.0), ValueError, "epsilon: expected a value > 0"),
    ("config-epsilon-inf", ("cfg", _AT["epsilon"], np.inf), ValueError, "epsilon: expected a finite number"),
    ("config-momentum-negative", ("cfg", _AT["momentum"], -1.0), ValueError, "momentum: expected a value >= 0"),
    ("config-rescale-inf", ("cfg", _AT["rescale_grad"], -np.inf), ValueError, "rescale_grad: expected a finite number"),
    ("config-weight-decay-nan", ("cfg", _WD0, np.nan), ValueError,
     "weight_decay[0]: expected a finite value >= 0"),
    ("config-flat-without-offsets", ("cfg", _AT["flat_state"], 1.0), ValueError,
     f"config: expected {_N1 + 1} values for 1 tensors with flat state, got {_N1}"),
    ("flat-offset-negative", ("flat", {"offset": -1.0}), ValueError,
     "config: offset[0]: expected an integer in [0, 0] so that params[0]'s 3 elements fit in mean_squares (3 "
     "elements), got -1"),
    ("flat-offset-fraction", ("flat", {"offset": 0.5}), ValueError, "config: offset[0]: expected an integer in [0, 0]"),
    ("flat-offset-past-the-end", ("flat", {"offset": 1.0}), ValueError,
     "config: offset[0]: expected an integer in [0, 0]"),
    ("flat-offset-nan", ("flat", {"offset": np.nan}), ValueError, "config: offset[0]: expected an integer in [0, 0]"),
    # 2^63 - 1024 is exact in a double; offset + 3 elements would wrap around as int64.
    ("flat-offset-huge", ("flat", {"offset": 2.0 ** 63 - 1024}), ValueError,
     "config: offset[0]: expected an integer in [0, 0]"),
    ("flat-offset-past-int64", ("flat", {"offset": 2.0 ** 64}), ValueError,
     "config: offset[0]: expected an integer in [0, 0]"),
    ("flat-buffer-short", ("flat", {"moments": np.zeros(2, np.float32)}), ValueError,
     "moments: expected a flat buffer of at least 3 elements for params[0], got 2"),
    ("flat-buffer-2d", ("flat", {"mean_squares": np.ones((3, 1), np.float32)}), ValueError,
     "mean_squares: expected a 1-D flat buffer, got 2 dims"),
    ("flat-buffer-dtype", ("flat", {"moments": np.zeros(3, np.float64)}), TypeError,
     "moments[0]: expected dtype float32"),
    ("flat-buffers-alias", ("flat", {"alias": True}), ValueError, "moments[0]: memory overlaps mean_squares[0]"),
    ("flat-extra-input", ("flat", {"extra": True}), ValueError,
     "expected 7 arguments for 1 tensors with flat state, got 8"),
    ("lr-nan", ("lr", np.float32(np.nan)), ValueError, "lr: expected a finite number, got nan"),
    ("lr-inf-float64", ("lr", np.float64(np.inf)), ValueError, "lr: expected a finite number, got inf"),
    ("lr-negative", ("lr", np.float32(-0.5)), ValueError, "lr: expected a value >= 0, got -0.5"),
    ("lr-float16-nan", ("lr", np.float16(np.nan)), ValueError, "lr: expected a finite number, got nan"),
    ("lr-float16-negative", ("lr", np.float16(-2.0)), ValueError, "lr: expected a value >= 0, got -2"),
    ("lr-float16-inf", ("lr", np.float16(np.inf)), ValueError, "lr: expected a finite number, got inf"),
    ("lr-int32", ("lr", np.int32(1)), TypeError, "lr: expected a floating-point scalar, got dtype int32"),
    ("lr-two-values", ("lr", np.array([0.1, 0.1], np.float32)), ValueError,
     "lr: expected a scalar tensor, got 2 elements"),
    ("no-config", "lr_only", ValueError, "expected at least 3 arguments, got 2"),
    ("grad-shape", ("block", 1, np.ones(4, np.float32)), ValueError, "grads[0]: expected shape (3,) like params[0]"),
    ("grad-dtype", ("block", 1, np.ones(3, np.float64)), TypeError, "grads[0]: expected dtype float32"),
    ("mean-square-shape", ("block", 2, np.ones((3, 1), np.float32)), ValueError, "mean_squares[0]: expected shape"),
    ("moment-dtype", ("block", 3, np.ones(3, np.float16)), TypeError, "moments[0]: expected dtype float32"),
    ("params-int32", "int_params", TypeError, "params[0]: expected a floating-point dtype"),
    ("param-is-its-mean-square", "alias", ValueError, "mean_squares[0]: memory overlaps params[0]"),
]


def _launch(case, graph):
    import mindspore as ms
    from mindspore import Parameter, Tensor, nn

    import rmsprop_ops.mindspore as rms
    from rmsprop_ops.mindspore._build import kernel_handle
    from rmsprop_ops.mindspore._op import raise_from_kernel

    _, change, _, _ = case
    cfg = rms.make_config(1, rho=0.9, epsilon=1e-10, momentum=0.5, centered=False,
                          weight_decays=[0.0]).asnumpy().copy()
    lr = np.float32(0.1)
    blocks = [np.linspace(-1, 1, 3).astype(np.float32), np.full(3, 0.5, np.float32), np.ones(3, np.float32),
              np.zeros(3, np.float32)]
    tag = change if isinstance(change, str) else change[0]
    if tag == "cfg":
        cfg[change[1]] = change[2]
    elif tag == "cfg_f32":
        cfg = cfg.astype(np.float32)
    elif tag == "cfg_short":
        cfg = cfg[:_HEAD - 1]
    elif tag == "cfg_long":
        cfg = np.append(cfg, 0.0)
    elif tag == "lr":
        lr = change[1]
    elif tag == "block":
        blocks[change[1]] = change[2]
    elif tag == "flat":
        edit = change[1]
        cfg = rms.make_config(1, rho=0.9, epsilon=1e-10, momentum=0.5, centered=False, weight_decays=[0.0],
                              offsets=[edit.get("offset", 0.0)]).asnumpy().copy()
        if "extra" in edit:
            blocks.append(np.zeros(3, np.float32))
        blocks[2] = edit.get("mean_squares", blocks[2])
        blocks[3] = edit.get("moments", blocks[3])
    elif tag == "int_params":
        blocks = [np.arange(3, dtype=np.int32), np.ones(3, np.int32), np.ones(3, np.float32), np.zeros(3, np.float32)]
    params = [Parameter(Tensor(b), name=f"{n}_{case[0]}_{graph}") for n, b in zip(("p", "s", "m"), (blocks[0],
                                                                                                blocks[2], blocks[3]))]
    grads = Tensor(blocks[1])
    inputs = [Tensor(np.asarray(lr)), Tensor(cfg), params[0], grads, params[1], params[2]]
    if tag == "alias":
        inputs[4] = params[0]
    elif tag == "flat" and change[1].get("alias"):
        inputs[5] = params[1]
    elif tag == "flat" and change[1].get("extra"):
        inputs.append(Parameter(Tensor(blocks[4]), name=f"x_{case[0]}_{graph}"))
    elif tag == "lr_only":
        inputs = inputs[:1]
    before = [p.asnumpy().tobytes() for p in params]
    kernel_handle().rmsprop_ops_ms_clear_error()
    launches = rms.kernel_stats()["launches"]
    op = rms.make_op()

    class Step(nn.Cell):
        def __init__(self):
            super().__init__()
            self.op = op

        def construct(self, *args):
            return self.op(*args)

    result = {}
    try:
        if graph:
            ms.set_context(mode=ms.GRAPH_MODE)
            Step()(*inputs).asnumpy()
        else:
            ms.set_context(mode=ms.PYNATIVE_MODE)
            try:
                op(*inputs).asnumpy()
            except (RuntimeError, TypeError, ValueError) as e:
                raise_from_kernel(e)
        result["raised"] = None
    except Exception as e:  # noqa: BLE001 - the test compares the type
        result["raised"] = type(e).__name__
        result["message"] = str(e)
    result["last_error"] = rms.last_error()
    result["unchanged"] = [p.asnumpy().tobytes() == b for p, b in zip(params, before)]
    result["launched"] = rms.kernel_stats()["launches"] - launches
    return result


def main(ids):
    import rmsprop_ops.mindspore as rms

    rms.kernel_library()
    for case in RAW_CASES:
        if ids and case[0] not in ids:
            continue
        for graph in (False, True):
            print(json.dumps({"begin": case[0], "graph": graph}), flush=True)
            print(json.dumps({"case": case[0], "graph": graph, **_launch(case, graph)}), flush=True)
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main(set(sys.argv[1:]))
