"""Conventions through the Paddle front end's other paths (issue #21): SelectedRows gradients (the core's rows
update, ``sparse_mode``) and the dynamic-mode fast path that repeats a step's launches. Each runs next to the
neutral optimizer fed the same dense gradients, as in test_paddle_conventions.py."""

import numpy as np
import pytest

import rmsprop_ops

paddle = pytest.importorskip("paddle")
from rmsprop_ops.paddle import RMSProp  # noqa: E402

FP32 = 2e-6
ROWS, DIM, STEPS = 10, 3, 8

# (convention and options, whether the rows update visits only the gradient's rows ("exact") under
# sparse_mode="auto"): MXNet ignores momentum without centered, so its rows stay exact.
SPARSE_CASES = {
    "tf1": (dict(convention="tf1", learning_rate=0.02), True),
    "keras_legacy": (dict(convention="keras_legacy", learning_rate=0.02), True),
    "mxnet_momentum_ignored": (dict(convention="mxnet", learning_rate=0.02, momentum=0.9), True),
    "torch_momentum": (dict(convention="torch", lr=0.02, momentum=0.9), False),
    "keras_decoupled": (dict(convention="keras", learning_rate=0.02, weight_decay=0.1), False),
    "tf1_centered": (dict(convention="tf1", learning_rate=0.02, centered=True, initial_accumulator_value=0.5), True),
}


def _batches():
    rng = np.random.default_rng(5)
    # repeated ids, and rows 8, 9 never touched
    return [(rng.integers(0, 8, 6), rng.normal(size=(6, DIM)).astype("float32")) for _ in range(STEPS)]


@pytest.mark.parametrize("name", SPARSE_CASES)
def test_selected_rows_gradients_follow_the_convention(name):
    kw, exact = SPARSE_CASES[name]
    paddle.disable_static()
    table0 = np.random.default_rng(6).uniform(-1, 1, (ROWS, DIM)).astype("float32")
    emb = paddle.nn.Embedding(ROWS, DIM, sparse=True)
    emb.weight.set_value(table0)
    opt = RMSProp(parameters=emb.parameters(), **kw)
    ref_table = table0.copy()
    ref = rmsprop_ops.RMSProp([ref_table], **kw)
    for ids, w in _batches():
        (emb(paddle.to_tensor(ids)) * paddle.to_tensor(w)).sum().backward()
        assert emb.weight._grad_ivar().is_selected_rows()
        opt.step()
        opt.clear_grad()
        dense = np.zeros((ROWS, DIM), np.float32)
        np.add.at(dense, ids, w)
        ref.step([dense])
    # only the rows update that visits the gradient's rows alone keeps per-row counters
    assert (emb.weight.name in opt._sparse.counters) == exact
    sd = opt.state_dict()  # brings the rows the exact update skipped up to date
    np.testing.assert_allclose(emb.weight.numpy(), ref_table, rtol=0, atol=FP32)
    ms = [v for k, v in sd.items() if "_mean_square_" in k][0].numpy()
    np.testing.assert_allclose(ms, ref.state_dict()["mean_square.0"], rtol=0, atol=FP32)
    assert np.abs(emb.weight.numpy() - table0).max() > 1e-3


FAST = {
    "keras_decoupled": dict(convention="keras", learning_rate=0.02, momentum=0.9, weight_decay=0.1),
    "tf1": dict(convention="tf1", learning_rate=0.02, momentum=0.9, weight_decay=0.01),
    "torch_ema": dict(convention="torch", lr=0.02, momentum=0.9, use_ema=True, ema_momentum=0.5),
    "maximize": dict(convention="torch", lr=0.02, maximize=True),
    "nesterov": dict(convention="paddle", learning_rate=0.02, momentum=0.9, nesterov=True),
}


@pytest.mark.parametrize("name", FAST)
def test_the_fast_path_repeats_the_conventions_launches(name):
    """After one step through Paddle's path the optimizer replays the recorded launches (``_fastpath``);
    under a convention they carry its rule, and the core's rule options too."""
    kw = FAST[name]
    paddle.disable_static()
    rng = np.random.default_rng(7)
    init = [rng.uniform(-1, 1, s).astype("float32") for s in ((4, 3), (3,))]
    ps = [paddle.create_parameter(list(v.shape), "float32", default_initializer=paddle.nn.initializer.Assign(v))
          for v in init]
    opt = RMSProp(parameters=ps, **kw)
    ref_ps = [v.copy() for v in init]
    ref = rmsprop_ops.RMSProp(ref_ps, **kw)
    planned = []
    for t in range(6):
        g = [(rng.normal(size=v.shape) * 0.5).astype("float32") for v in init]
        sum((p * paddle.to_tensor(x)).sum() for p, x in zip(ps, g)).backward()
        opt.step()
        opt.clear_grad()
        ref.step(g)
        planned.append(opt._plan is not None)
    assert planned[1:] == [True] * 5
    for p, r in zip(ps, ref_ps):
        np.testing.assert_allclose(p.numpy(), r, rtol=0, atol=FP32)
    if kw.get("use_ema"):
        with opt.swap_ema_weights(), ref.swap_ema_weights():
            for p, r in zip(ps, ref_ps):
                np.testing.assert_allclose(p.numpy(), r, rtol=0, atol=FP32)
