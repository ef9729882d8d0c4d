"""Fuzzes rmsprop_ops' Python/C++ boundary with arbitrary and hostile arguments (run by
test_core_hypothesis.py in a subprocess). Every call must either succeed or raise
TypeError/ValueError/NotImplementedError naming an argument, and a failed call must leave every array
untouched. A crash shows up as the subprocess dying.

Shapes of input: wrong types and dtypes, strided / read-only / misaligned / 0-d arrays, non-native byte
order, NumPy scalars and huge ints as hyper-parameters, DLPack producers that lie (negative or overflowing
shapes, NULL data, lying strides, byte offsets past the address space, read-only or copied versioned
tensors, consumed capsules, bad __dlpack_device__ answers), lists that change while the call reads them
(a producer's callback clearing, growing or replacing entries; list subclasses whose entries are new on
every read), and views overlapping across the tensor sets of one call.
"""

from __future__ import annotations

import sys

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rmsprop_ops

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0] + "/tests/support")
from dlpack_craft import IS_COPIED, READ_ONLY, Producer, capsule  # noqa: E402

DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.bool_, np.complex64, np.uint8, ">f4", ">f8",
          "<f4"]
LIES = [dict(ndim=-1), dict(shape=(-8,)), dict(shape=(2 ** 32, 2 ** 32)), dict(data=0), dict(strides=(3,)),
        dict(byte_offset=2 ** 64 - 4), dict(versioned=True, flags=READ_ONLY), dict(versioned=True, flags=IS_COPIED),
        dict(versioned=True, version=(9, 0)), dict(name="used_dltensor"), dict(dtype=(2, 32, 2)), dict(device=(9, 0)),
        dict(ndim=70), dict(null_shape=True), dict()]
DEVICE_ANSWERS = [(1, 0), "cpu", (1,), (1.5, 0), (2 ** 40, 0), ValueError("device")]


@st.composite
def arrays(draw, pool):
    kind = draw(st.sampled_from(["array", "array", "array", "noncontig", "readonly", "misaligned", "none", "list",
                                 "scalar", "string", "zerod", "dlpack", "liar", "pooled"]))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    n = draw(st.integers(0, 9))
    if kind == "none":
        return None
    if kind == "list":
        return [1.0] * n
    if kind == "scalar":
        return draw(st.floats(allow_nan=True))
    if kind == "string":
        return "x" * n
    if kind == "zerod":
        return np.array(1.5).astype(dtype)
    if kind == "misaligned":
        raw = np.zeros(n * 4 + 1, np.uint8)
        return raw[1:].view(np.float32)
    if kind == "pooled":  # a view of a buffer shared by the call: overlaps across params, grads and sets
        base = pool["buffer"]
        start = draw(st.integers(0, 8))
        return base[start:start + n]
    a = np.arange(n * 2 if kind == "noncontig" else n).astype(dtype)
    if kind == "noncontig":
        a = a[::2]
    if kind == "readonly":
        a.setflags(write=False)
    if kind == "dlpack":
        return Producer(lambda: a.__dlpack__(max_version=(1, 0)) if a.dtype.isnative else a.__dlpack__())
    if kind == "liar":
        a = a.astype(np.float32)
        pool["arrays"].append(a)
        lie = draw(st.sampled_from(LIES))
        answer = draw(st.sampled_from(DEVICE_ANSWERS))
        return Producer(lambda: capsule(a, **lie), answer)
    return a


hyper_value = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.none(),
                        st.text(max_size=2), st.booleans(),
                        st.sampled_from([np.float32(0.5), np.float16(0.9), np.int64(1), np.bool_(True), 10 ** 400,
                                         -(10 ** 400), np.array(0.1, ">f8"), np.array([0.1], np.float32)]))


class FreshItems(list):
    """Entries made anew on every read (nothing else holds them)."""

    def __iter__(self):
        return iter([None if x is None else np.array(x, copy=True) if isinstance(x, np.ndarray) else x
                     for x in list.__iter__(self)])


def _mutator(lists, how):
    """A producer callback changing the caller's lists while the call reads them."""
    def mutate():
        for xs in lists:
            if how == "clear":
                xs.clear()
            elif how == "grow":
                xs.append(np.ones(3, np.float32))
            elif how == "replace" and xs:
                xs[0] = np.full(3, 7.0, np.float32)
    return mutate


@settings(max_examples=int(sys.argv[2]) if len(sys.argv) > 2 else 200, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data(), lr=hyper_value, rho=hyper_value, eps=hyper_value, momentum=hyper_value,
       centered=st.booleans(), multi=st.booleans(), alias=st.booleans(), nsets=st.integers(1, 3),
       mutate=st.sampled_from([None, "clear", "grow", "replace"]), fresh=st.booleans())
def fuzz(data, lr, rho, eps, momentum, centered, multi, alias, nsets, mutate, fresh):
    pool = {"buffer": np.zeros(17, np.float32), "arrays": []}
    sets = [[data.draw(arrays(pool)) for _ in range(6)] for _ in range(nsets if multi else 1)]
    if alias and isinstance(sets[0][0], np.ndarray):
        sets[0][2] = sets[0][0]
    lists = [[s[i] for s in sets] for i in range(6)]
    if mutate is not None:
        victims = lists[:3]
        lists[1][0] = Producer(lambda x=lists[1][0]: (x if isinstance(x, np.ndarray) else np.ones(3, np.float32))
                               .__dlpack__(), on_export=_mutator(victims, mutate))
    if fresh:
        lists = [FreshItems(xs) for xs in lists]
    watched = [a for s in sets for a in s if isinstance(a, np.ndarray)] + [pool["buffer"]] + pool["arrays"]
    before = [a.copy() for a in watched]
    kwargs = dict(lr=lr, rho=rho, epsilon=eps, momentum=0.0 if momentum is None else momentum, centered=centered)
    try:
        if multi:
            rmsprop_ops.rmsprop_multi_(lists[0], lists[1], lists[2], moments=lists[3], mean_grads=lists[4],
                                       master_params=lists[5], **kwargs)
        else:
            p, g, ms, mom, mg, master = (xs[0] if len(xs) else None for xs in lists)
            rmsprop_ops.rmsprop_(p, g, ms, moment=mom, mean_grad=mg, master_param=master, **kwargs)
    except (TypeError, ValueError, NotImplementedError) as e:
        msg = str(e)
        assert ":" in msg.split(" ")[0] or ": " in msg, f"error does not name an argument: {msg!r}"
        for a, b in zip(watched, before):
            assert a.tobytes() == b.tobytes(), f"array modified by a failed call: {msg}"


if __name__ == "__main__":
    from hypothesis import seed

    seed(int(sys.argv[1]) if len(sys.argv) > 1 else 0)(fuzz)()
    print("fuzz ok")
