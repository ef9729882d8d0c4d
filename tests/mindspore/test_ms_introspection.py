"""What a user sees of the optimizer and the kernel (issue #20): the optimizer's repr, and kernel_stats()
counting every launch without logging errors on CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, Tensor, nn

import rmsprop_ops.mindspore as rms
from rmsprop_ops.mindspore import _fallback

pytestmark = pytest.mark.mindspore


def _params(dtypes=(np.float32, np.float32)):
    return [Parameter(Tensor(np.ones(3, d)), name=f"w{i}") for i, d in enumerate(dtypes)]


REPR_CASES = [
    # (id, constructor arguments, text the repr must hold)
    ("defaults", dict(), ["learning_rate=0.1, decay=0.9, momentum=0.0, epsilon=1e-10, centered=False, "
                          "loss_scale=1.0, weight_decay=0.0, params=2, convention='mindspore', "
                          "kernel='rmsprop_ops', launches=1, flat_state=False"]),
    ("hyper-parameters", dict(learning_rate=0.01, decay=0.95, momentum=0.9, epsilon=1e-3, centered=True,
                              loss_scale=128.0, weight_decay=1e-4),
     ["learning_rate=0.01, decay=0.95, momentum=0.9, epsilon=0.001, centered=True, loss_scale=128.0, "
      "weight_decay=0.0001,"]),
    ("flat-state", dict(flat_state=True), ["flat_state=True"]),
    ("two-dtypes", dict(params=lambda: _params((np.float32, np.float64))), ["launches=2"]),
    ("schedule", dict(learning_rate=lambda: nn.ExponentialDecayLR(0.1, 0.9, 2)),
     ["learning_rate=ExponentialDecayLR,", "(learning_rate): ExponentialDecayLR()"]),
    ("per-step-tensor", dict(learning_rate=lambda: Tensor(np.full(4, 0.1, np.float32))),
     ["learning_rate=Tensor(shape=(4,)) (one value per step)"]),
    ("groups", dict(params=lambda: [{"params": _params()[:1], "lr": 0.5, "weight_decay": 0.1},
                                    {"params": [Parameter(Tensor(np.ones(2, np.float32)), name="v")]}]),
     ["learning_rate=per group", "weight_decay=per group", "launches=2"]),
]


@pytest.mark.parametrize("case", REPR_CASES, ids=[c[0] for c in REPR_CASES])
def test_repr_shows_hyper_parameters_convention_and_layout(case):
    _, kwargs, expected = case
    kwargs = {k: v() if callable(v) else v for k, v in kwargs.items()}
    params = kwargs.pop("params", None) or _params()
    text = repr(rms.RMSProp(params, **kwargs))
    assert text.startswith("RMSProp(") and " object at 0x" not in text, text
    for fragment in expected:
        assert fragment in text, text


def test_repr_of_the_fallback_names_mindspores_op(monkeypatch):
    monkeypatch.setenv(_fallback.FALLBACK_ENV, "1")
    monkeypatch.setattr(_fallback, "_fallback_warned", True)
    assert "kernel='ApplyCenteredRMSProp' (fallback), flat_state=False" in repr(
        rms.RMSProp(_params(), centered=True))


def test_repr_follows_the_learning_rate_set_later():
    opt = rms.RMSProp(_params(), learning_rate=0.1)
    opt.learning_rate.set_data(Tensor(0.25, ms.float32))
    assert "learning_rate=0.25," in repr(opt)


_STATS_SCRIPT = r"""
import numpy as np, mindspore as ms
from mindspore import Parameter, Tensor
import rmsprop_ops.mindspore as rms
ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
p = [Parameter(Tensor(np.ones(1 << 20, np.float32)), name=f"p{i}") for i in range(2)]
g = [Tensor(np.full(1 << 20, 0.5, np.float32)) for _ in p]
s = [Parameter(Tensor(np.ones(1 << 20, np.float32)), name=f"s{i}") for i in range(2)]
m = [Parameter(Tensor(np.zeros(1 << 20, np.float32)), name=f"m{i}") for i in range(2)]
before = rms.kernel_stats()
op = rms.make_op()
config = rms.make_config(2, rho=0.9, epsilon=1e-10, momentum=0.0, centered=False, weight_decays=[0.0, 0.0])
for _ in range(5):
    op(Tensor(0.1, ms.float32), config, *p, *g, *s, *m)   # outputs never read: the launches may be queued
after = rms.kernel_stats()
print("counted", after["launches"] - before["launches"], after["tensors"] - before["tensors"])
"""


def test_kernel_stats_waits_for_queued_launches_and_logs_no_error_on_cpu():
    env = dict(os.environ, GLOG_v="2")  # warnings and errors on stderr
    proc = subprocess.run([sys.executable, "-c", _STATS_SCRIPT], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "counted 5 10" in proc.stdout, proc.stdout
    assert "[ERROR]" not in proc.stderr and "not supported" not in proc.stderr, proc.stderr[-3000:]
