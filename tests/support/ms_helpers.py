"""Small networks and comparison helpers shared by the MindSpore tests."""

import numpy as np
import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops


class TinyNet(nn.Cell):
    """conv (a 4-D weight whose dim 1 is 16, so grad centralisation applies) -> dense, with a 'gamma'
    Parameter that un-grouped weight decay must skip."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(16, 4, 1, has_bias=False, weight_init="normal")
        self.gamma = Parameter(Tensor(np.linspace(0.5, 1.5, 16).astype(np.float32).reshape(16,)), name="gamma")
        self.fc = nn.Dense(16, 3, weight_init="normal")

    def construct(self, x):
        h = self.conv(x).reshape((x.shape[0], 16)) * self.gamma
        return self.fc(ops.tanh(h))


def make_net(seed=0):
    ms.set_seed(seed)
    np.random.seed(seed)
    return TinyNet()


def batches(steps, seed=1, n=8):
    rng = np.random.default_rng(seed)
    return [(Tensor(rng.standard_normal((n, 16, 2, 2)).astype(np.float32)),
             Tensor(rng.standard_normal((n, 3)).astype(np.float32))) for _ in range(steps)]


def state(cell):
    """Every Parameter of a train cell (net, optimizer state, step counters) by name, as float64."""
    return {p.name: p.asnumpy().astype(np.float64) for p in cell.get_parameters()}


def assert_states_close(ours, ref, rtol, atol):
    assert sorted(ours) == sorted(ref)
    for name in ref:
        np.testing.assert_allclose(ours[name], ref[name], rtol=rtol, atol=atol, err_msg=name)


def max_abs_diff(ours, ref):
    return max(float(np.max(np.abs(ours[k] - ref[k]))) if ref[k].size else 0.0 for k in ref)
