"""The registered custom op: build cache, ABI flag, multi-tensor launches, in-place updates, errors."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import mindspore as ms
from mindspore import Parameter, Tensor, nn

import rmsprop_ops
from rmsprop_ops import mindspore as rms
from rmsprop_ops.mindspore import _build, _fallback

pytestmark = pytest.mark.mindspore


def _params(shapes, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    p = [Parameter(Tensor(rng.standard_normal(s).astype(dtype)), name=f"p{i}") for i, s in enumerate(shapes)]
    g = [Tensor(rng.standard_normal(s).astype(dtype)) for s in shapes]
    ms_ = [Parameter(Tensor(np.ones(s, dtype)), name=f"ms{i}") for i, s in enumerate(shapes)]
    mom = [Parameter(Tensor(np.zeros(s, dtype)), name=f"mom{i}") for i, s in enumerate(shapes)]
    return p, g, ms_, mom


@pytest.fixture
def pynative():
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=ms.GRAPH_MODE)


def test_abi_flag_matches_mindspore_and_is_passed_to_the_compiler():
    flag = rms.mindspore_cxx11_abi()
    assert flag == 0  # the PyPI wheels of MindSpore are built with the old ABI
    cmd = _build._compile_command("/tmp/x.so", "cpu")
    assert f"-D_GLIBCXX_USE_CXX11_ABI={flag}" in cmd
    assert "-lrmsprop_ops_core" in cmd and rmsprop_ops.get_include() in cmd


def test_built_once_and_reused_by_a_second_process(tmp_path):
    env = dict(os.environ, RMSPROP_OPS_CACHE_DIR=str(tmp_path))
    code = "from rmsprop_ops.mindspore import kernel_library; print(kernel_library())"
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "compiling the MindSpore cpu kernel" in first.stderr
    path = first.stdout.strip().splitlines()[-1]
    assert path.startswith(str(tmp_path)) and os.path.exists(path)
    mtime = os.stat(path).st_mtime_ns
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "compiling" not in second.stderr
    assert second.stdout.strip().splitlines()[-1] == path
    assert os.stat(path).st_mtime_ns == mtime


def test_white_list_outside_cache_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MS_CUSTOM_AOT_WHITE_LIST", str(tmp_path))
    with pytest.raises(RuntimeError, match="RMSPROP_OPS_CACHE_DIR"):
        _build._check_white_list("/somewhere/else/lib.so")
    _build._check_white_list(str(tmp_path / "sub" / "lib.so"))


@pytest.mark.parametrize("centered", [False, True])
def test_functional_op_matches_float64_reference(pynative, centered):
    shapes = [(3, 4), (7,), (2, 2, 2)]
    p, g, s, m = _params(shapes)
    mg = [Parameter(Tensor(np.zeros(sh, np.float32)), name=f"mg{i}") for i, sh in enumerate(shapes)] if centered else None
    expect = []
    for k in range(len(shapes)):
        pk, sk, mk = p[k].asnumpy().astype(np.float64), s[k].asnumpy().astype(np.float64), m[k].asnumpy().astype(np.float64)
        mgk = np.zeros_like(pk) if centered else None
        gk = g[k].asnumpy().astype(np.float64) * 0.5 + 0.01 * pk
        sk = 0.9 * sk + 0.1 * gk * gk
        v = sk
        if centered:
            mgk = 0.9 * mgk + 0.1 * gk
            v = sk - mgk * mgk
        mk = 0.8 * mk + 0.05 * gk / np.sqrt(v + 1e-6)
        expect.append((pk - mk, sk, mk))
    before = rms.kernel_stats()
    rms.rmsprop_multi_(p, g, s, m, Tensor(0.05, ms.float32), rho=0.9, epsilon=1e-6, momentum=0.8, centered=centered,
                       mean_grads=mg, weight_decay=0.01, rescale_grad=0.5)
    after = rms.kernel_stats()
    assert after["launches"] == before["launches"] + 1  # one launch for the whole list
    assert after["tensors"] == before["tensors"] + len(shapes)
    for k, (pe, se, me) in enumerate(expect):
        np.testing.assert_allclose(p[k].asnumpy(), pe, rtol=2e-6, atol=1e-7)
        np.testing.assert_allclose(s[k].asnumpy(), se, rtol=2e-6, atol=1e-7)
        np.testing.assert_allclose(m[k].asnumpy(), me, rtol=2e-6, atol=1e-7)


def test_float64_params(pynative):
    p, g, s, m = _params([(5,)], dtype=np.float64)
    p0, g0 = p[0].asnumpy().copy(), g[0].asnumpy()
    rms.rmsprop_multi_(p, g, s, m, 0.1, rho=0.9, epsilon=1e-10)
    ms_ = 0.9 + 0.1 * g0 * g0
    np.testing.assert_allclose(p[0].asnumpy(), p0 - 0.1 * g0 / np.sqrt(ms_ + 1e-10), rtol=1e-14)


def _snapshot(*lists):
    return [x.asnumpy().copy() for lst in lists for x in lst]


@pytest.mark.parametrize("bad, exc, match", [
    ("grad_shape", ValueError, r"grads\[1\]: expected shape \(4,\)"),
    ("grad_dtype", TypeError, r"grads\[0\]: expected dtype float32"),
    ("rho", ValueError, r"rho: expected a value in \[0, 1\]"),
    ("epsilon", ValueError, "epsilon"),
    ("state_dtype", TypeError, r"mean_squares\[0\]"),
])
def test_core_errors_surface_as_python_errors_and_touch_nothing(pynative, bad, exc, match):
    p, g, s, m = _params([(3,), (4,)])
    kw = dict(rho=0.9, epsilon=1e-10)
    if bad == "grad_shape":
        g[1] = Tensor(np.ones(5, np.float32))
    elif bad == "grad_dtype":
        g[0] = Tensor(np.ones(3, np.float64))
    elif bad == "rho":
        kw["rho"] = 1.5
    elif bad == "epsilon":
        kw["epsilon"] = 0.0
    elif bad == "state_dtype":
        s[0] = Parameter(Tensor(np.ones(3, np.float64)), name="bad_ms")
    before = _snapshot(p, s, m)
    with pytest.raises(exc, match=match):
        rms.rmsprop_multi_(p, g, s, m, 0.1, **kw)
    for a, b in zip(before, _snapshot(p, s, m)):
        np.testing.assert_array_equal(a, b)
    assert rms.last_error()  # the core's message is kept for the graph-mode RuntimeError too


def test_python_side_argument_errors(pynative):
    p, g, s, m = _params([(3,)])
    with pytest.raises(ValueError, match="grads: expected 1 tensors"):
        rms.rmsprop_multi_(p, g + g, s, m, 0.1)
    with pytest.raises(ValueError, match="mean_grads"):
        rms.rmsprop_multi_(p, g, s, m, 0.1, centered=True)
    with pytest.raises(TypeError, match="lr"):
        rms.rmsprop_multi_(p, g, s, m, "0.1")
    with pytest.raises(TypeError, match="params"):
        rms.rmsprop_multi_(p[0], g, s, m, 0.1)


class _Many(nn.Cell):
    def __init__(self, n):
        super().__init__()
        self.w = ms.ParameterTuple([Parameter(Tensor(np.full((2,), float(i), np.float32)), name=f"w{i}")
                                    for i in range(n)])

    def construct(self, x):
        out = x
        for w in self.w:
            out = out + w.sum()
        return out.sum()


def test_one_launch_updates_a_thousand_parameters_in_graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)
    n = 1000
    net = _Many(n)
    opt = rms.RMSProp(net.trainable_params(), learning_rate=0.01)
    grads = tuple(Tensor(np.full((2,), 0.5, np.float32)) for _ in range(n))
    before = rms.kernel_stats()
    opt(grads)
    after = rms.kernel_stats()
    assert after["launches"] - before["launches"] == 1
    assert after["tensors"] - before["tensors"] == n
    step = 0.01 * 0.5 / np.sqrt(0.9 + 0.1 * 0.25 + 1e-10)
    got = np.stack([w.asnumpy() for w in net.w])
    expect = np.broadcast_to(np.arange(n, dtype=np.float64)[:, None] - step, got.shape)
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-6)


def test_graph_ir_holds_our_custom_op_and_no_builtin_rmsprop(tmp_path):
    previous = ms.get_context("save_graphs_path")
    ms.set_context(mode=ms.GRAPH_MODE, save_graphs=1, save_graphs_path=str(tmp_path))
    try:
        net = nn.Dense(3, 2)
        opt = rms.RMSProp(net.trainable_params(), learning_rate=0.01, centered=True, momentum=0.9)
        train = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), opt)
        train(Tensor(np.ones((4, 3), np.float32)), Tensor(np.zeros((4, 2), np.float32)))
    finally:
        ms.set_context(save_graphs=0, save_graphs_path=previous)
    text = "".join(open(os.path.join(root, f), errors="replace").read()
                   for root, _, files in os.walk(tmp_path) for f in files if f.endswith(".ir"))
    assert "Custom" in text and rms.kernel_library() in text
    assert "ApplyCenteredRMSProp" not in text and "ApplyRMSProp" not in text


def test_fallback_to_builtin_ops_warns_once_and_matches(monkeypatch):
    ms.set_context(mode=ms.GRAPH_MODE)
    monkeypatch.setenv("RMSPROP_OPS_MS_FALLBACK", "1")
    monkeypatch.setattr(_fallback, "_fallback_warned", False)
    nets = []
    for cls in (nn.RMSProp, rms.RMSProp, rms.RMSProp):
        ms.set_seed(3)
        net = nn.Dense(3, 2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            opt = cls(net.trainable_params(), learning_rate=0.01, momentum=0.5, centered=True, weight_decay=0.1)
        nets.append((nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), opt), caught))
    assert [len([w for w in c if "falling back" in str(w.message)]) for _, c in nets] == [0, 1, 0]
    before = rms.kernel_stats()["launches"]
    x, y = Tensor(np.ones((4, 3), np.float32)), Tensor(np.zeros((4, 2), np.float32))
    for _ in range(3):
        for train, _ in nets:
            train(x, y)
    assert rms.kernel_stats()["launches"] == before
    ref = {p.name: p.asnumpy() for p in nets[0][0].get_parameters()}
    for train, _ in nets[1:]:
        for p in train.get_parameters():
            np.testing.assert_array_equal(p.asnumpy(), ref[p.name], err_msg=p.name)


def test_no_kernel_on_ascend():
    assert rms.kernel_available("CPU")
    assert not rms.kernel_available("Ascend")
    assert rms.kernel_available("GPU") == rmsprop_ops.built_with_cuda()


class _Mixed(nn.Cell):
    def __init__(self):
        super().__init__()
        self.a = Parameter(Tensor(np.linspace(-1, 1, 6).astype(np.float16)), name="a")
        self.b = Parameter(Tensor(np.linspace(-1, 1, 4).astype(np.float32)), name="b")
        self.c = Parameter(Tensor(np.linspace(-1, 1, 3).astype(np.float64)), name="c")


@pytest.mark.parametrize("flat", [False, True], ids=["per-param-state", "flat-state"])
def test_mixed_dtypes_one_launch_per_dtype_and_float32_state_for_float16(mode, flat):
    net = _Mixed()
    opt = rms.RMSProp(net.trainable_params(), learning_rate=0.01, momentum=0.9, flat_state=flat)
    # One state buffer per parameter, or one per launch (a launch per dtype): the same dtypes here.
    assert [p.dtype for p in opt.ms] == [ms.float32, ms.float32, ms.float64]
    assert [p.shape for p in opt.ms] == [(6,), (4,), (3,)]
    grads = tuple(Tensor(np.full(p.shape, 0.5, p.asnumpy().dtype)) for p in net.trainable_params())
    start = [p.asnumpy().astype(np.float64) for p in net.trainable_params()]
    before = rms.kernel_stats()["launches"]
    s, m, total = 1.0, 0.0, 0.0
    for _ in range(2):
        opt(grads)
        s = 0.9 * s + 0.1 * 0.25
        m = 0.9 * m + float(np.float32(0.01)) * 0.5 / np.sqrt(s + 1e-10)  # MindSpore keeps lr in float32
        total += m
    assert rms.kernel_stats()["launches"] - before == 2 * 3
    for p, p0, tol in zip(net.trainable_params(), start, (1e-3, 1e-6, 1e-12)):
        np.testing.assert_allclose(p.asnumpy().astype(np.float64), p0 - total, rtol=tol, atol=tol, err_msg=p.name)


def test_gpu_flavor_compiles_and_links_cudart(tmp_path):
    # The GPU path cannot run without a GPU build of MindSpore; check at least that it builds.
    try:
        cmd = _build._compile_command(str(tmp_path / "k.so"), "cuda")
    except RuntimeError as e:
        pytest.skip(str(e))
    assert "-DRMSPROP_OPS_MS_CUDA" in cmd and "-lcudart" in cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ldd = subprocess.run(["ldd", str(tmp_path / "k.so")], capture_output=True, text=True).stdout
    assert "libcudart" in ldd and "librmsprop_ops_core" in ldd


@pytest.mark.parametrize("bad, exc, match", [
    ("shape", ValueError, r"grads\[1\]: expected shape \(2,\) like params\[1\], got \(3,\)"),
    ("dtype", TypeError, r"grads\[0\]: expected dtype Float32, got Float64"),
])
def test_optimizer_checks_gradients_when_the_graph_compiles(mode, bad, exc, match):
    net = _Many(2)
    opt = rms.RMSProp(net.trainable_params(), learning_rate=0.01)
    grads = [Tensor(np.ones((2,), np.float32)), Tensor(np.ones((2,), np.float32))]
    if bad == "shape":
        grads[1] = Tensor(np.ones((3,), np.float32))
    else:
        grads[0] = Tensor(np.ones((2,), np.float64))
    before = rms.kernel_stats()["launches"]
    with pytest.raises(exc, match=match):
        opt(tuple(grads))
    assert rms.kernel_stats()["launches"] == before
    np.testing.assert_array_equal(np.stack([w.asnumpy() for w in net.w]), [[0.0, 0.0], [1.0, 1.0]])


def test_input_layout_follows_the_core_registry():
    from rmsprop_ops import registry
    from rmsprop_ops.mindspore._op import tensor_blocks

    assert tensor_blocks(False) == ["params", "grads", "mean_squares", "moments"]
    assert tensor_blocks(True) == ["params", "grads", "mean_squares", "moments", "mean_grads"]
    # Every block the kernel writes is one the registry declares in place.
    inplace = registry.schema("rmsprop_centered_multi")["inplace"]
    assert {"Param[]", "MeanSquare[]", "Moment[]", "MeanGrad[]"} <= set(inplace)


_LAYOUT = rms.config_layout()


@pytest.mark.parametrize("field, value, match", [
    ("rho", np.nan, "rho: expected a finite number"), ("count", np.nan, "tensor count"),
    ("count", 7.0, f"config: expected {_LAYOUT.size(7, False)} values for 7 tensors")])
def test_raw_op_rejects_a_malformed_config(pynative, field, value, match):
    from rmsprop_ops.mindspore._op import raise_from_kernel

    p, g, s, m = _params([(3,)])
    config = rms.make_config(1, rho=0.9, epsilon=1e-10, momentum=0.0, centered=False, weight_decays=[0.0])
    raw = config.asnumpy().copy()
    raw[_LAYOUT.index(field)] = value
    before = p[0].asnumpy().copy()
    with pytest.raises(ValueError, match=match):
        try:
            rms.make_op()(Tensor(0.1, ms.float32), Tensor(raw), *p, *g, *s, *m).asnumpy()
        except RuntimeError as e:
            raise_from_kernel(e)
    np.testing.assert_array_equal(p[0].asnumpy(), before)
