"""Fuzzes rmsprop_ops' Python/C++ boundary with arbitrary arguments (run by test_core_hypothesis.py in a
subprocess). Every call must either succeed or raise TypeError/ValueError/NotImplementedError, and a
failed call must leave every array untouched. A crash shows up as the subprocess dying."""

from __future__ import annotations

import sys

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rmsprop_ops

DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.bool_, np.complex64, np.uint8]


@st.composite
def arrays(draw):
    kind = draw(st.sampled_from(["array", "array", "array", "noncontig", "readonly", "misaligned", "none",
                                 "list", "scalar", "string", "zerod"]))
    dtype = draw(st.sampled_from(DTYPES))
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
    a = np.arange(n * 2 if kind == "noncontig" else n).astype(dtype)
    if kind == "noncontig":
        a = a[::2]
    if kind == "readonly":
        a.setflags(write=False)
    return a


hyper_value = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3), st.none(),
                        st.text(max_size=2), st.booleans())


@settings(max_examples=int(sys.argv[2]) if len(sys.argv) > 2 else 200, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(p=arrays(), g=arrays(), ms=arrays(), mom=arrays(), mg=arrays(), master=arrays(),
       lr=hyper_value, rho=hyper_value, eps=hyper_value, momentum=hyper_value, centered=st.booleans(),
       multi=st.booleans(), alias=st.booleans())
def fuzz(p, g, ms, mom, mg, master, lr, rho, eps, momentum, centered, multi, alias):
    if alias and isinstance(p, np.ndarray):
        ms = p
    arrays_in = [a for a in (p, g, ms, mom, mg, master) if isinstance(a, np.ndarray)]
    before = [a.copy() for a in arrays_in]
    kwargs = dict(lr=lr, rho=rho, epsilon=eps, momentum=0.0 if momentum is None else momentum,
                  centered=centered)
    try:
        if multi:
            rmsprop_ops.rmsprop_multi_([p], [g], [ms], moments=[mom], mean_grads=[mg], master_params=[master],
                                       **kwargs)
        else:
            rmsprop_ops.rmsprop_(p, g, ms, moment=mom, mean_grad=mg, master_param=master, **kwargs)
    except (TypeError, ValueError, NotImplementedError) as e:
        msg = str(e)
        assert ":" in msg, f"error does not name an argument: {msg!r}"
        for a, b in zip(arrays_in, before):
            assert a.tobytes() == b.tobytes(), f"array modified by a failed call: {msg}"


if __name__ == "__main__":
    from hypothesis import seed

    seed(int(sys.argv[1]) if len(sys.argv) > 1 else 0)(fuzz)()
    print("fuzz ok")
