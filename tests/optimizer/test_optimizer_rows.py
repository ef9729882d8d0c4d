"""The neutral optimizer with row-sparse gradients (RowGrad / (indices, values)): the dense run's
parameters at every step, checkpoints that continue bit for bit, the fallbacks and their reasons."""

from __future__ import annotations

import io

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops import RowGrad

from rows_cases import dense_grad, grad_stream

NROWS, DIM = 50, 4
BOUND = 2e-6  # relative to the table's scale


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((NROWS, DIM)).astype(np.float32), rng.standard_normal(7).astype(np.float32)]


def stream(steps, seed=1):
    """Per step: the table's row-sparse gradient and a dense gradient of the second parameter."""
    rng = np.random.default_rng(seed + 100)
    return [(g, rng.standard_normal(7).astype(np.float32))
            for g in grad_stream(seed, NROWS, (DIM,), steps, cold=(47, 48, 49))]


def run(steps, as_rows=True, params=None, opt=None, **kw):
    params = params or make_params()
    opt = opt or rmsprop_ops.RMSProp(params, **kw)
    history = []
    for g, dense in steps:
        table_grad = RowGrad(g.indices, g.values) if as_rows else dense_grad(g, params[0].shape, np.float32)
        opt.step([table_grad, dense])
        history.append(params[0].copy())
    return params, opt, history


def assert_close(a, b, scale, what=""):
    assert np.all(np.abs(a - b) <= BOUND * np.maximum(np.abs(b), scale)), what


CONFIGS = {
    "keras": dict(convention="keras", learning_rate=0.01),
    "torch": dict(convention="torch", learning_rate=0.01),
    "mindspore-ms-at-ones": dict(convention="mindspore", learning_rate=0.01),
    "centered": dict(convention="keras", learning_rate=0.01, centered=True),
    "schedule": dict(convention="keras", learning_rate=rmsprop_ops.ExponentialDecay(0.02, 10, 0.5)),
    "clip_gradient+loss-scale": dict(convention="keras", learning_rate=0.01, clip_gradient=0.5, loss_scale_factor=4.0),
}


@pytest.mark.parametrize("config", CONFIGS)
def test_auto_mode_gives_the_dense_run_at_every_step(config):
    steps = stream(200)
    _, opt, sparse = run(steps, **CONFIGS[config])
    _, dense_opt, dense = run(steps, as_rows=False, **CONFIGS[config])
    scale = np.abs(make_params()[0]).max()
    for t, (a, b) in enumerate(zip(sparse, dense)):
        assert_close(a, b, scale, f"step {t}")
    assert "last_step.0" in opt.state_dict() and "last_step.1" not in opt.state_dict()
    opt.catch_up()
    for name in ("mean_square.0", "mean_grad.0"):
        if name in dense_opt.state_dict():
            np.testing.assert_allclose(opt.state_dict()[name], dense_opt.state_dict()[name], rtol=2e-5,
                                       atol=1e-6 * np.abs(dense_opt.state_dict()[name]).max(), err_msg=name)


@pytest.mark.parametrize("kw", [dict(momentum=0.9), dict(weight_decay=0.01), dict(clip_weights=1.5),
                                dict(clipnorm=1.0), dict(global_clipnorm=1.0), dict(clipvalue=0.5),
                                dict(gradient_accumulation_steps=2), dict(skip_nonfinite=True),
                                dict(momentum=0.9, sparse_mode="dense")],
                         ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_fallbacks_are_the_dense_run_bit_for_bit(kw):
    """Where catching up is not the dense update (momentum, decay, weight clip) or the optimizer needs the
    gradient in Python (clipping, accumulation, the finite check), every row takes every step."""
    steps = stream(40)
    params, opt, _ = run(steps, convention="keras", learning_rate=0.01, **kw)
    ref, ref_opt, _ = run(steps, as_rows=False, convention="keras", learning_rate=0.01, **kw)
    np.testing.assert_array_equal(params[0], ref[0])
    for k, v in ref_opt.state_dict().items():
        np.testing.assert_array_equal(opt.state_dict()[k], v, err_msg=k)
    assert not any(k.startswith("last_step") for k in opt.state_dict())


def test_lazy_mode_catches_up_to_the_dense_run():
    steps = stream(150)
    params, opt, _ = run(steps, convention="keras", learning_rate=0.01, momentum=0.9, sparse_mode="lazy")
    ref, ref_opt, _ = run(steps, as_rows=False, convention="keras", learning_rate=0.01, momentum=0.9)
    behind = opt.state_dict()["rows_step.0"][0] - opt.state_dict()["last_step.0"]
    assert behind.max() > 0 and np.abs(params[0] - ref[0]).max() > 1e-4  # rows not yet moved
    opt.catch_up()
    assert_close(params[0], ref[0], np.abs(make_params()[0]).max())
    np.testing.assert_allclose(opt.state_dict()["moment.0"], ref_opt.state_dict()["moment.0"], rtol=2e-5,
                               atol=1e-6 * np.abs(ref_opt.state_dict()["moment.0"]).max())


@pytest.mark.parametrize("kw", [dict(), dict(centered=True), dict(momentum=0.9, sparse_mode="lazy"),
                                dict(momentum=0.9)], ids=["exact", "exact-centered", "lazy", "dense"])
def test_a_restored_checkpoint_continues_bit_for_bit(kw):
    """state_dict() mid-way, through np.savez, into a new optimizer: the same bits as the run that never
    stopped (state_dict does not catch anything up: it saves the counters with the state)."""
    steps = stream(80)
    params, _, _ = run(steps, convention="keras", learning_rate=0.01, **kw)  # uninterrupted
    first, opt, _ = run(steps[:35], convention="keras", learning_rate=0.01, **kw)
    buf = io.BytesIO()
    np.savez(buf, **opt.state_dict())
    buf.seek(0)
    restored_params = [p.copy() for p in first]
    fresh = rmsprop_ops.RMSProp(restored_params, convention="keras", learning_rate=0.01, **kw)
    fresh.load_state_dict(dict(np.load(buf)))
    run(steps[35:], params=restored_params, opt=fresh)
    np.testing.assert_array_equal(restored_params[0], params[0])
    np.testing.assert_array_equal(restored_params[1], params[1])


def test_a_dense_gradient_after_sparse_ones_catches_up_first():
    steps = stream(60)
    params = make_params()
    opt = rmsprop_ops.RMSProp(params, convention="keras", learning_rate=0.01, centered=True)
    ref = make_params()
    ref_opt = rmsprop_ops.RMSProp(ref, convention="keras", learning_rate=0.01, centered=True)
    for t, (g, d) in enumerate(steps):
        dense = dense_grad(g, ref[0].shape, np.float32)
        opt.step([dense if t % 10 == 9 else (g.indices, g.values), d])  # a plain tuple works too
        ref_opt.step([dense, d])
        assert_close(params[0], ref[0], np.abs(make_params()[0]).max(), f"step {t}")
        if t % 10 == 9:
            sd = opt.state_dict()
            assert sd["rows_step.0"][0] == t + 1 and np.all(sd["last_step.0"] == t + 1)


def test_a_bad_row_gradient_writes_nothing():
    params = make_params()
    opt = rmsprop_ops.RMSProp(params, convention="keras", learning_rate=0.01)
    for g, d in stream(5):
        opt.step([RowGrad(g.indices, g.values), d])
    before = [p.copy() for p in params], opt.state_dict()  # state_dict() gives copies
    bad = RowGrad(np.array([3, NROWS]), np.ones((2, DIM), np.float32))
    with pytest.raises(ValueError, match=r"grads\[0\]: indices\[1\]: expected a row in \[0, 50\), got 50"):
        opt.step([bad, np.ones(7, np.float32)])
    for p, q in zip(params, before[0]):
        np.testing.assert_array_equal(p, q)
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(v, before[1][k], err_msg=k)


@pytest.mark.parametrize("kw,message", [
    (dict(sparse_mode="exact", momentum=0.9), "grads[0]: sparse_mode: 'exact' cannot follow momentum=0.9"),
    (dict(sparse_mode="lazy", weight_decay=0.1), "grads[0]: sparse_mode: 'lazy' cannot follow weight_decay=0.1"),
    (dict(sparse_mode="exact", clip_weights=1.0), "grads[0]: sparse_mode: 'exact' cannot follow clip_weights=1.0"),
])
def test_an_impossible_sparse_mode_is_refused_at_the_first_row_gradient(kw, message):
    params = make_params()
    opt = rmsprop_ops.RMSProp(params, convention="keras", learning_rate=0.01, **kw)
    opt.step([np.ones((NROWS, DIM), np.float32), np.ones(7, np.float32)])  # dense gradients are fine
    with pytest.raises(ValueError) as info:
        opt.step([(np.array([1]), np.ones((1, DIM), np.float32)), np.ones(7, np.float32)])
    assert message in str(info.value)


def test_sparse_mode_per_group():
    """A lazy embedding group next to a decayed dense group."""
    table, bias = make_params()
    opt = rmsprop_ops.RMSProp([{"params": [table], "sparse_mode": "lazy", "momentum": 0.9},
                               {"params": [bias], "weight_decay": 0.1}], convention="keras", learning_rate=0.01)
    for g, d in stream(10):
        opt.step([RowGrad(g.indices, g.values), d])
    assert "last_step.0" in opt.state_dict()
    with pytest.raises(ValueError, match=r"sparse_mode: expected one of .*, got .fast. \(group 0\)"):
        rmsprop_ops.RMSProp([{"params": [table], "sparse_mode": "fast"}])
    with pytest.raises(TypeError, match="sparse_mode: expected a str"):
        rmsprop_ops.RMSProp([table], sparse_mode=None)


def test_bad_row_gradient_shapes():
    params = make_params()
    opt = rmsprop_ops.RMSProp(params, convention="keras", learning_rate=0.01)
    with pytest.raises(ValueError, match=r"grads\[0\]: expected an array or \(indices, values\), got a tuple of 3"):
        opt.step([(np.array([1]), np.ones((1, DIM), np.float32), 0), np.ones(7, np.float32)])
    with pytest.raises(ValueError, match=r"grads\[0\]: values: expected shape \(1, 4\)"):
        opt.step([(np.array([1]), np.ones((2, DIM), np.float32)), np.ones(7, np.float32)])


def test_torch_row_gradients():
    torch = pytest.importorskip("torch")
    steps = stream(20)
    params = make_params()
    opt = rmsprop_ops.RMSProp(params, convention="torch", learning_rate=0.01)
    for g, d in steps:
        opt.step([(torch.from_numpy(g.indices), torch.from_numpy(g.values)), d])
    ref, _, _ = run(steps, convention="torch", learning_rate=0.01)
    np.testing.assert_array_equal(params[0], ref[0])


@pytest.mark.parametrize("change,message", [
    (lambda sd: sd.update({"last_step.0": sd["last_step.0"].astype(np.int32)}), "expected shape (50,) and dtype int64"),
    (lambda sd: sd.update({"last_step.0": sd["last_step.0"][:-1]}), "expected shape (50,) and dtype int64"),
    (lambda sd: sd["last_step.0"].__setitem__(3, 10**6), "expected counts in [0, rows_step.0="),
    (lambda sd: sd.pop("rows_step.0"), "expected both last_step.0 and rows_step.0"),
    (lambda sd: sd.update({"last_step.1": np.zeros(7, np.int64), "rows_step.1": np.zeros(1, np.int64)}), None),
    (lambda sd: sd.update({"last_step.2": np.zeros(3, np.int64)}), "no parameter of rows at position 2"),
])
def test_counters_in_a_checkpoint_are_checked_before_anything_is_written(change, message):
    params = make_params()
    opt = rmsprop_ops.RMSProp(params, convention="keras", learning_rate=0.01)
    for g, d in stream(6):
        opt.step([RowGrad(g.indices, g.values), d])
    sd = opt.state_dict()
    change(sd)
    fresh = rmsprop_ops.RMSProp(make_params(1), convention="keras", learning_rate=0.01)
    before = fresh.state_dict()
    if message is None:  # counters for the 1-D param load too (its rows are its elements)
        fresh.load_state_dict(sd)
        assert "last_step.1" in fresh.state_dict()
        return
    with pytest.raises(ValueError) as info:
        fresh.load_state_dict(sd)
    assert message in str(info.value)
    after = fresh.state_dict()
    assert sorted(after) == sorted(before)
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v, err_msg=k)


def test_row_gradients_next_to_none_and_other_launches():
    """A float64 param sits in a launch of its own; None skips a param (Keras 3)."""
    rng = np.random.default_rng(3)
    table, other = rng.standard_normal((NROWS, DIM)).astype(np.float32), rng.standard_normal(5)
    ref_table, ref_other = table.copy(), other.copy()
    opt = rmsprop_ops.RMSProp([table, other], convention="keras", learning_rate=0.01)
    ref = rmsprop_ops.RMSProp([ref_table, ref_other], convention="keras", learning_rate=0.01)
    for t, (g, _) in enumerate(stream(30)):
        d = rng.standard_normal(5)
        if t % 3 == 0:
            opt.step([None, d])
            ref.step([None, d])
        else:
            opt.step([RowGrad(g.indices, g.values), None if t % 3 == 1 else d])
            ref.step([dense_grad(g, table.shape, np.float32), None if t % 3 == 1 else d])
        assert_close(table, ref_table, np.abs(make_params(3)[0]).max(), f"step {t}")
        np.testing.assert_array_equal(other, ref_other)


def test_export_state_catches_up_first():
    params = make_params()
    opt = rmsprop_ops.RMSProp(params, convention="keras", learning_rate=0.01)
    ref_params = make_params()
    ref = rmsprop_ops.RMSProp(ref_params, convention="keras", learning_rate=0.01)
    for g, d in stream(40):
        opt.step([RowGrad(g.indices, g.values), d])
        ref.step([dense_grad(g, params[0].shape, np.float32), d])
    mine, theirs = opt.export_state(), ref.export_state()
    np.testing.assert_allclose(mine.params[0].mean_square, theirs.params[0].mean_square, rtol=2e-5)
