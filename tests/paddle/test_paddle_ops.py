"""The registered Paddle custom ops: generated from the registry, cached build, results equal to the core."""

import os
import subprocess
import shutil
import sys

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import rmsprop_ops
from rmsprop_ops import registry
from rmsprop_ops.paddle import _build, load_ops, paddle_op_name
from rmsprop_ops.paddle._launch import invoke as _invoke

pytestmark = pytest.mark.paddle

CORE_OPS = ["rmsprop", "rmsprop_centered", "rmsprop_multi", "rmsprop_centered_multi"]


@pytest.fixture(scope="module", autouse=True)
def dynamic_mode():
    paddle.disable_static()
    load_ops()


@pytest.mark.parametrize("twin", ["", "_dygraph", "_static"], ids=["public", "dygraph_twin", "static_twin"])
@pytest.mark.parametrize("op", CORE_OPS)
def test_registration_matches_registry(op, twin):
    from paddle.utils.cpp_extension.extension_utils import parse_op_info

    ins, attrs, outs = parse_op_info(paddle_op_name(op, twin=twin))
    sc = registry.schema(op)
    strip = lambda names: [n.split("@")[0] for n in names]
    assert strip(ins) == [i["name"].removesuffix("[]") for i in sc["inputs"]]
    # The public op declares every write in place; the dygraph twin nothing (everything is written through
    # its inputs), the static twin only the parameters.
    expected_outs = {"": [o.removesuffix("[]") for o in sc["outputs"]], "_dygraph": [], "_static": ["ParamOut"]}
    assert strip(outs) == expected_outs[twin]
    assert attrs == [a["name"] for a in sc["attrs"]]


@pytest.mark.parametrize("twin", ["_dygraph", "_static"])
@pytest.mark.parametrize("op", CORE_OPS)
def test_twins_update_what_they_take_as_inputs(op, twin):
    """The twins the optimizer calls write Param, MeanSquare, Moment, MeanGrad and the master weight where
    they are plain inputs, exactly as the public op does through its in-place outputs."""
    sc = registry.schema(op)
    multi, centered = sc["multi_tensor"], sc["centered"]
    shapes = [(5, 3), (7,)] if multi else [(5, 3)]

    def fresh():
        rng = np.random.default_rng(3)
        mk = lambda shape, lo=-1.0: paddle.to_tensor(rng.uniform(lo, 1.0, shape).astype("float32"))
        t = {"Param": [mk(s).astype("float16") for s in shapes], "Grad": [mk(s).astype("float16") for s in shapes],
             "MeanSquare": [mk(s, 0.1) for s in shapes], "Moment": [mk(s) for s in shapes],
             "MasterParam": [mk(s) for s in shapes], "LearningRate": paddle.to_tensor(0.05)}
        if centered:
            t["MeanGrad"] = [mk(s, -0.01) for s in shapes]
        return t if multi else {k: (v[0] if isinstance(v, list) else v) for k, v in t.items()}

    a, b = fresh(), fresh()
    attrs = {"rho": 0.9, "epsilon": 1e-6, "momentum": 0.5}
    _invoke(op, a, attrs, checked=False, dygraph=False)
    before = {k: [x.numpy().copy() for x in (v if isinstance(v, list) else [v])] for k, v in b.items()}
    _invoke(op, b, attrs, checked=False, twin=twin)
    for k in ("Param", "MeanSquare", "Moment", "MasterParam") + (("MeanGrad",) if centered else ()):
        got = [x.numpy() for x in (b[k] if multi else [b[k]])]
        want = [x.numpy() for x in (a[k] if multi else [a[k]])]
        for g, w, old in zip(got, want, before[k]):
            assert not np.array_equal(g, old), k
            np.testing.assert_array_equal(g, w, err_msg=k)


def test_second_process_loads_the_cache_without_compiling():
    load_ops()
    so = os.path.join(_build.cache_dir(), _build._MODULE_NAME, _build._MODULE_NAME + ".so")
    mtime = os.stat(so).st_mtime_ns
    code = "from rmsprop_ops.paddle import load_ops; load_ops(); print('loaded')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "loaded" in out.stdout
    assert "compiling the Paddle custom ops" not in out.stderr
    assert os.stat(so).st_mtime_ns == mtime


def test_compile_into_fresh_cache_announces_itself(tmp_path):
    env = dict(os.environ, RMSPROP_OPS_CACHE_DIR=str(tmp_path))
    code = "from rmsprop_ops.paddle import load_ops, cache_dir; load_ops(); print(cache_dir())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr
    assert "rmsprop_ops.paddle: compiling the Paddle custom ops" in out.stderr
    assert out.stdout.strip().startswith(str(tmp_path))
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and "compiling the Paddle custom ops" not in again.stderr


def test_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(_build.CompilerNotFoundError, match="needs a C\\+\\+ compiler"):
        _build._find_compiler()


def _rand(shape, seed, dtype="float32", positive=False):
    rs = np.random.RandomState(seed)
    a = rs.rand(*shape) if positive else rs.randn(*shape)
    return a.astype(dtype)


RULES = [
    dict(momentum=0.0),
    dict(momentum=0.9, centered=True),
    dict(momentum=0.5, weight_decay=0.1, weight_decay_mode="l1", clip_gradient=0.3, clip_after_weight_decay=False),
    dict(momentum=0.7, eps_in_sqrt=False, lr_in_momentum=False, weight_decay=0.05, weight_decay_mode="decoupled",
         clip_weights=0.8, rescale_grad=0.5),
]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_single_op_equals_core(rule, dtype):
    shape = (7, 5)
    p, g = _rand(shape, 1, dtype), _rand(shape, 2, dtype)
    ms, mom, mg = _rand(shape, 3, dtype, True), _rand(shape, 4, dtype), _rand(shape, 5, dtype) * 0.1
    centered = rule.get("centered", False)
    ref = [p.copy(), ms.copy(), mom.copy(), mg.copy()]
    # Paddle custom-op attributes are float32 (as in Paddle's own rmsprop op): feed the core the same values.
    f32 = lambda v: float(np.float32(v)) if isinstance(v, float) else v
    kw = {k: f32(v) for k, v in rule.items()}
    rmsprop_ops.rmsprop_(ref[0], g, ref[1], lr=0.05, rho=f32(0.9), epsilon=f32(1e-6), moment=ref[2],
                         mean_grad=ref[3] if centered else None, **kw)
    t = [paddle.to_tensor(x) for x in (p, ms, mom, mg)]
    attrs = {k: v for k, v in rule.items() if k not in ("centered",)}
    if "weight_decay_mode" in attrs:
        attrs["weight_decay_mode"] = ["l2", "l1", "decoupled"].index(attrs["weight_decay_mode"])
    attrs.update(rho=0.9, epsilon=1e-6)
    tensors = {"Param": t[0], "Grad": paddle.to_tensor(g), "MeanSquare": t[1], "Moment": t[2],
               "LearningRate": paddle.to_tensor(np.array(0.05, dtype))}
    if centered:
        tensors["MeanGrad"] = t[3]
    _invoke("rmsprop_centered" if centered else "rmsprop", tensors, attrs)
    for got, want in zip(t, ref):
        np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("centered", [False, True])
def test_fused_op_equals_per_tensor_ops(centered):
    shapes = [(3, 4), (17,), (2, 3, 5)]
    lr_mults, wds = [1.0, 0.5, 2.0], [0.0, 0.01, 0.2]

    def state(k):
        return [[paddle.to_tensor(_rand(s, 10 * k + i, positive=(k == 2))) for i, s in enumerate(shapes)]]

    grads = [paddle.to_tensor(_rand(s, 99 + i)) for i, s in enumerate(shapes)]
    fused = [state(k)[0] for k in range(4)]
    single = [[x.clone() for x in lst] for lst in fused]
    lr = paddle.to_tensor(np.array(0.01, "float32"))
    attrs = dict(rho=0.9, momentum=0.5, weight_decay_mode=0)
    tensors = {"Param": fused[0], "Grad": grads, "MeanSquare": fused[2], "Moment": fused[1], "LearningRate": lr}
    if centered:
        tensors["MeanGrad"] = fused[3]
    _invoke("rmsprop_centered_multi" if centered else "rmsprop_multi", tensors,
            dict(attrs, lr_mults=lr_mults, weight_decays=wds))
    for i in range(len(shapes)):
        one = {"Param": single[0][i], "Grad": grads[i], "MeanSquare": single[2][i], "Moment": single[1][i],
               "LearningRate": paddle.to_tensor(np.array(0.01 * lr_mults[i], "float32"))}
        if centered:
            one["MeanGrad"] = single[3][i]
        _invoke("rmsprop_centered" if centered else "rmsprop", one, dict(attrs, weight_decay=wds[i]))
    for a, b in zip(fused, single):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.numpy(), y.numpy())


@pytest.mark.parametrize("skip,changed", [(True, False), (False, True)])
def test_skip_update_tensor(skip, changed):
    p = paddle.to_tensor(_rand((4,), 0))
    before = p.numpy().copy()
    ms = paddle.zeros([4])
    _invoke("rmsprop", {"Param": p, "Grad": paddle.ones([4]), "MeanSquare": ms,
                        "SkipUpdate": paddle.to_tensor(skip)}, dict(learning_rate=0.1, rho=0.9))
    assert (not np.array_equal(p.numpy(), before)) is changed
    assert bool(ms.numpy().any()) is changed


@pytest.mark.parametrize("bad,exc,match", [
    (dict(momentum=0.5), ValueError, "moment"),
    (dict(Grad=np.ones(4, "float32")), ValueError, "grad: expected shape"),
    (dict(Grad=np.ones(3, "float64")), TypeError, "grad: expected dtype float32"),
    (dict(rho=1.5), ValueError, "rho"),
    (dict(MeanSquare=np.zeros(3, "float16")), TypeError, "mean_square"),
])
def test_bad_input_raises_and_touches_nothing(bad, exc, match):
    p, ms = paddle.to_tensor(_rand((3,), 0)), paddle.to_tensor(_rand((3,), 1, positive=True))
    before = (p.numpy().copy(), ms.numpy().copy())
    tensors = {"Param": p, "Grad": paddle.ones([3]), "MeanSquare": ms}
    attrs = dict(learning_rate=0.1, rho=0.9)
    for k, v in bad.items():
        if isinstance(v, np.ndarray):
            tensors[k] = paddle.to_tensor(v)
        else:
            attrs[k] = v
    with pytest.raises(exc, match=match):
        _invoke("rmsprop", tensors, attrs)
    np.testing.assert_array_equal(p.numpy(), before[0])
    if "MeanSquare" not in bad:
        np.testing.assert_array_equal(ms.numpy(), before[1])
