"""The rule options added to the registry (nesterov, bias_correction with its step, maximize) reach the
MindSpore op with no MindSpore-specific code: make_config lays them out by the registry, the kernel hands
them to the core's filler by name, and the launch gives the bits the functional API gives."""

import numpy as np
import pytest

ms = pytest.importorskip("mindspore")

from mindspore import Parameter, Tensor

import rmsprop_ops
from rmsprop_ops import mindspore as rms

pytestmark = pytest.mark.mindspore

OPTIONS = dict(nesterov=True, bias_correction=True, maximize=True, step=3.0)


def test_options_reach_the_mindspore_op():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    rng = np.random.default_rng(1)
    sizes = (5, 17)
    p0 = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    gs = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    params = [Parameter(Tensor(p.copy()), name=f"opt_p{k}") for k, p in enumerate(p0)]
    mss = [Parameter(Tensor(np.zeros(n, np.float32)), name=f"opt_s{k}") for k, n in enumerate(sizes)]
    moms = [Parameter(Tensor(np.zeros(n, np.float32)), name=f"opt_m{k}") for k, n in enumerate(sizes)]
    config = rms.make_config(len(sizes), rho=0.9, epsilon=1e-6, momentum=0.9, centered=False,
                             weight_decays=[0.0] * len(sizes), **OPTIONS)
    layout = rms.config_layout()
    assert config.asnumpy()[layout.index("nesterov")] == 1.0
    rms.make_op(len(sizes))(Tensor(0.01, ms.float32), config, *params, *[Tensor(g) for g in gs], *mss,
                            *moms).asnumpy()
    ps, s, m = [p.copy() for p in p0], [np.zeros(n, np.float32) for n in sizes], [np.zeros(n, np.float32)
                                                                                   for n in sizes]
    rmsprop_ops.rmsprop_multi_(ps, gs, s, moments=m, lr=0.01, rho=0.9, epsilon=1e-6, momentum=0.9, **OPTIONS)
    for got, want, start in zip(params, ps, p0):
        np.testing.assert_array_equal(got.asnumpy(), want)
        assert not np.array_equal(want, start)


def test_make_config_refuses_unknown_attributes():
    with pytest.raises(TypeError, match="make_config\\(\\) got unexpected attributes \\['nesterovv'\\]"):
        rms.make_config(1, rho=0.9, epsilon=1e-6, momentum=0.0, centered=False, weight_decays=[0.0], nesterovv=True)
