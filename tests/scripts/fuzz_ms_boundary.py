"""Fuzzes ``rmsprop_ops.mindspore.rmsprop_multi_`` with arbitrary arguments (run by test_ms_errors.py in a
subprocess). Every call must either succeed or raise TypeError/ValueError naming an argument, and a failed
call must leave every Parameter and every NumPy buffer shared with a Tensor untouched. A crash shows up as
the subprocess dying.

Usage: fuzz_ms_boundary.py SEED EXAMPLES
"""

from __future__ import annotations

import sys

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mindspore as ms
from mindspore import Parameter, Tensor

from rmsprop_ops.mindspore import rmsprop_multi_

DTYPES = [np.float32, np.float32, np.float64, np.float16, np.int32]
SHAPES = [(), (0,), (3,), (3,), (2, 2), (4,), (1,)]
_count = [0]
OUTCOMES: dict[str, int] = {}
EXAMPLES: dict[str, str] = {}


class Pool:
    """Everything created for one call, to check that a failed call modified nothing."""

    def __init__(self):
        self.params, self.arrays = [], []

    def snapshot(self):
        return [p.asnumpy().tobytes() for p in self.params], [a.tobytes() for a in self.arrays]


@st.composite
def element(draw, pool, shape, dtype, grad=False):
    """Mostly what the call expects (a Parameter, a Tensor for grads), sometimes something else."""
    kind = draw(st.sampled_from(["valid"] * 150 + ["param", "tensor", "shared_tensor", "ndarray", "none", "float",
                                                  "alias", "alias", "misaligned_param"]))
    if kind != "valid" and draw(st.booleans()):
        dtype = draw(st.sampled_from(DTYPES))
    if kind != "valid" and draw(st.booleans()):
        shape = draw(st.sampled_from(SHAPES))
    data = np.linspace(-1, 1, int(np.prod(shape))).reshape(shape).astype(dtype)
    if kind == "valid":
        kind = "tensor" if grad else "param"
    if kind == "param":
        _count[0] += 1
        p = Parameter(Tensor(data), name=f"f{_count[0]}")
        pool.params.append(p)
        return p
    if kind == "tensor":
        return Tensor(data)
    if kind == "shared_tensor":  # shares a (maybe read-only) NumPy buffer
        if draw(st.booleans()):
            data.setflags(write=False)
        pool.arrays.append(data)
        return Tensor.from_numpy(data)
    if kind == "ndarray":
        return data
    if kind == "none":
        return None
    if kind == "float":
        return 1.0
    if kind == "alias" and pool.params:
        return draw(st.sampled_from(pool.params))
    raw = np.zeros(data.nbytes + 1, np.uint8)
    view = raw[1:].view(np.float32) if dtype == np.float32 and data.size else data
    pool.arrays.append(raw)
    _count[0] += 1
    p = Parameter(Tensor(np.zeros(view.shape, view.dtype)), name=f"f{_count[0]}")
    p.set_data(Tensor.from_numpy(view))
    pool.params.append(p)
    return p


any_value = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.none(),
                      st.text(max_size=2), st.booleans())


@st.composite
def hyper(draw, valid):
    """A valid value 19 times in 20, else anything."""
    return draw(valid if draw(st.sampled_from([True] * 19 + [False])) else any_value)


@st.composite
def lr_value(draw):
    kind = draw(st.sampled_from(["number"] * 12 + ["tensor"] * 8 + ["other"]))
    if kind == "number":
        return draw(hyper(st.floats(0.0, 1.0)))
    if kind == "tensor":
        dtype = draw(st.sampled_from([np.float32] * 8 + [np.float64] * 2 + [np.float16, np.int32]))
        shape = draw(st.sampled_from([()] * 8 + [(1,), (2,)]))
        value = draw(hyper(st.floats(0.0, 1.0, width=16)).filter(lambda v: isinstance(v, float)))
        return Tensor(np.full(shape, value).astype(dtype))
    return draw(any_value)


@st.composite
def call(draw):
    pool = Pool()
    n = draw(st.integers(0, 3))
    dtype = draw(st.sampled_from([np.float32, np.float32, np.float64, np.float16]))
    shapes = [draw(st.sampled_from(SHAPES)) for _ in range(n)]
    state_dtype = np.float32 if dtype == np.float16 else dtype
    lists = {}
    for name in ("params", "grads", "mean_squares", "moments", "mean_grads"):
        dt = dtype if name in ("params", "grads") else state_dtype
        items = [draw(element(pool, s, dt, grad=name == "grads")) for s in shapes]
        change = draw(st.sampled_from(["keep"] * 60 + ["drop", "extra", "not_a_list"]))
        if change == "drop" and items:
            items = items[:-1]
        elif change == "extra":
            items.append(draw(element(pool, (3,), dt, grad=name == "grads")))
        elif change == "not_a_list":
            items = items[0] if items else None
        lists[name] = items
    centered = draw(st.sampled_from([False] * 8 + [True] * 8 + [None, 1]))
    kwargs = dict(rho=draw(hyper(st.floats(0.0, 1.0))), epsilon=draw(hyper(st.floats(1e-8, 1.0))),
                  momentum=draw(hyper(st.floats(0.0, 1.0))), rescale_grad=draw(hyper(st.floats(0.1, 2.0))),
                  centered=centered,
                  weight_decay=draw(st.one_of(hyper(st.floats(0.0, 1.0)), st.lists(hyper(st.floats(0.0, 1.0)),
                                                                                    min_size=n, max_size=n),
                                              st.lists(st.floats(0.0, 1.0), max_size=4))))
    if centered is True or draw(st.integers(0, 9)) == 0:
        kwargs["mean_grads"] = lists["mean_grads"]
    graph = draw(st.booleans())
    return pool, lists, draw(lr_value()), kwargs, graph


@settings(max_examples=int(sys.argv[2]) if len(sys.argv) > 2 else 100, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(args=call())
def fuzz(args):
    pool, lists, lr, kwargs, graph = args
    ms.set_context(mode=ms.GRAPH_MODE if graph else ms.PYNATIVE_MODE)
    before = pool.snapshot()
    try:
        rmsprop_multi_(lists["params"], lists["grads"], lists["mean_squares"], lists["moments"], lr, **kwargs)
        OUTCOMES["ok"] = OUTCOMES.get("ok", 0) + 1
    except (TypeError, ValueError) as e:
        msg = str(e)
        head = msg.split(":", 1)[0]
        OUTCOMES[head] = OUTCOMES.get(head, 0) + 1
        EXAMPLES.setdefault(head, msg[:100])
        assert ":" in msg and " " not in head, f"error does not name an argument: {msg!r}"
        assert pool.snapshot() == before, f"modified by a failed call: {msg}"


if __name__ == "__main__":
    from hypothesis import seed

    seed(int(sys.argv[1]) if len(sys.argv) > 1 else 0)(fuzz)()
    print("outcomes:", dict(sorted(OUTCOMES.items(), key=lambda kv: -kv[1])))
    if "-v" in sys.argv:
        print("\n".join(EXAMPLES.values()))
    print("fuzz ok")
