"""Bad input to the rows API: a TypeError or ValueError naming the argument, and nothing written.

Each case changes one argument of a valid call whose gradient is otherwise fine; the bad entry sits last
where order matters (an index after good ones), so a kernel that wrote as it checked would be caught."""

from __future__ import annotations

import numpy as np
import pytest

import rmsprop_ops

NROWS, WIDTH = 6, 3


def valid_call():
    """Keyword arguments of a valid exact-mode call at step 5, and every array in it."""
    rng = np.random.default_rng(0)
    kw = dict(
        param=rng.standard_normal((NROWS, WIDTH)).astype(np.float32),
        indices=np.array([1, 4, 1], np.int64),
        values=rng.standard_normal((3, WIDTH)).astype(np.float32),
        mean_square=rng.uniform(0, 1, (NROWS, WIDTH)).astype(np.float32),
        last_step=np.array([5, 3, 0, 5, 2, 1], np.int64),
        step=np.array([5], np.int64),
        mode="exact", lr=0.01, rho=0.9, epsilon=1e-6,
    )
    return kw


def call(kw):
    kw = dict(kw)
    args = [kw.pop(k) for k in ("param", "indices", "values", "mean_square")]
    rmsprop_ops.rmsprop_rows_(*args, **kw)


def with_(**changes):
    return lambda kw: kw.update(changes)


def _set_index(value, dtype=np.int64):
    return lambda kw: kw.update(indices=np.array([1, 4, value], dtype))


def _readonly(name):
    def change(kw):
        a = kw[name].copy()
        a.flags.writeable = False
        kw[name] = a
    return change


def _strided(name):
    def change(kw):
        a = np.zeros((kw[name].shape[0], kw[name].shape[1] * 2), kw[name].dtype)[:, ::2]
        a[...] = kw[name]
        kw[name] = a
    return change


CASES = {
    # indices
    "index == rows": (_set_index(NROWS), ValueError, "indices[2]: expected a row in [0, 6), got 6"),
    "negative index": (_set_index(-1), ValueError, "indices[2]: expected a row in [0, 6), got -1"),
    "huge index": (_set_index(2**62), ValueError, f"got {2**62}"),
    "int32 index out of range": (_set_index(7, np.int32), ValueError, "indices[2]: expected a row in [0, 6), got 7"),
    "float indices": (with_(indices=np.array([1.0, 4.0, 1.0])), TypeError,
                      "indices: expected an int64 or int32 array, got dtype float64"),
    "uint8 indices": (with_(indices=np.array([1, 4, 1], np.uint8)), TypeError, "indices: expected an int64 or int32"),
    "bool indices": (with_(indices=np.array([True, False, True])), TypeError, "indices: expected an int64 or int32"),
    "2-D indices": (with_(indices=np.array([[1, 4, 1]])), ValueError, "indices: expected a 1-D array"),
    "list indices": (with_(indices=[1, 4, 1]), TypeError, "indices: expected an int64 or int32 array, got list"),
    "no indices": (with_(indices=None), TypeError, "indices: expected an int64 or int32 array, got None"),
    # values
    "values rows": (with_(values=np.zeros((2, WIDTH), np.float32)), ValueError,
                    "values: expected shape (3, 3) (one row of param per index), got (2, 3)"),
    "values width": (with_(values=np.zeros((3, WIDTH + 1), np.float32)), ValueError, "values: expected shape (3, 3)"),
    "values flat": (with_(values=np.zeros(3 * WIDTH, np.float32)), ValueError, "values: expected shape (3, 3)"),
    "values dtype": (with_(values=np.zeros((3, WIDTH), np.float64)), TypeError,
                     "values: expected dtype float32 (the param's dtype), got float64"),
    "values int": (with_(values=np.zeros((3, WIDTH), np.int32)), TypeError, "values: expected a floating-point array"),
    "values strided": (_strided("values"), ValueError, "values: expected a C-contiguous array"),
    # counters
    "counter ahead of step": (lambda kw: kw["last_step"].__setitem__(4, 6), ValueError,
                              "last_step[4]: expected a count in [0, step=5], got 6"),
    "negative counter": (lambda kw: kw["last_step"].__setitem__(1, -1), ValueError,
                         "last_step[1]: expected a count in [0, step=5], got -1"),
    "negative step": (with_(step=np.array([-1], np.int64)), ValueError, "step: expected a count >= 0, got -1"),
    "int32 counters": (lambda kw: kw.update(last_step=kw["last_step"].astype(np.int32)), TypeError,
                       "last_step: expected dtype int64 (per-row step counters), got int32"),
    "float counters": (lambda kw: kw.update(last_step=kw["last_step"].astype(np.float64)), TypeError,
                       "last_step: expected an int64 array of per-row counters, got dtype float64"),
    "short counters": (lambda kw: kw.update(last_step=kw["last_step"][:-1].copy()), ValueError,
                       "last_step: expected shape (6,) (one counter per row of param), got (5,)"),
    "no counters": (with_(last_step=None), ValueError, "last_step: expected an int64 array of 6 per-row counters"),
    "no step": (with_(step=None), ValueError, "step: expected a one-element int64 array"),
    "two steps": (with_(step=np.array([5, 5], np.int64)), ValueError, "step: expected one element, got 2"),
    "counters in dense mode": (with_(mode="dense"), ValueError, "last_step: expected None in rows mode 'dense'"),
    "read-only counters": (_readonly("last_step"), ValueError, "last_step: expected a writable array"),
    "counters alias param": (lambda kw: kw.update(last_step=kw["param"].reshape(-1).view(np.int64)[:NROWS]),
                             ValueError, "memory overlaps"),
    # options without a closed form
    "weight decay": (with_(weight_decay=0.01), ValueError, "weight_decay: expected 0 in rows mode 'exact'"),
    "decoupled decay": (with_(weight_decay=0.01, weight_decay_mode="decoupled", mode="lazy"), ValueError,
                        "weight_decay: expected 0 in rows mode 'lazy'"),
    "clip_weights": (with_(clip_weights=1.0), ValueError, "clip_weights: expected None in rows mode 'exact'"),
    "momentum in exact mode": (with_(momentum=0.9, moment=np.zeros((NROWS, WIDTH), np.float32)), ValueError,
                               "momentum: expected 0 in rows mode 'exact'"),
    "bad mode": (with_(mode="sparse"), ValueError, "mode: expected one of ['dense', 'exact', 'lazy'], got 'sparse'"),
    "mode not a str": (with_(mode=1), TypeError, "mode: expected a str"),
    # state and rule
    "no moment with momentum": (with_(momentum=0.9, mode="lazy"), ValueError, "moment: expected an array (momentum > 0"),
    "no mean_grad when centered": (with_(centered=True), ValueError, "mean_grad: expected an array (centered=True"),
    "mean_grad not centered": (with_(mean_grad=np.zeros((NROWS, WIDTH), np.float32)), ValueError,
                               "mean_grad: expected None when centered=False"),
    "ms shape": (with_(mean_square=np.zeros((NROWS, WIDTH + 1), np.float32)), ValueError,
                 "mean_square: expected shape (6, 3) like param, got (6, 4)"),
    "ms dtype": (with_(mean_square=np.zeros((NROWS, WIDTH), np.float64)), TypeError,
                 "mean_square: expected dtype float32 (the param's math type), got float64"),
    "ms is param": (lambda kw: kw.update(mean_square=kw["param"]), ValueError, "memory overlaps"),
    "read-only param": (_readonly("param"), ValueError, "param: expected a writable array"),
    "0-d param": (with_(param=np.zeros((), np.float32), mean_square=np.zeros((), np.float32)), ValueError,
                  "param: expected an array of rows (ndim >= 1"),
    "int param": (with_(param=np.zeros((NROWS, WIDTH), np.int32)), TypeError, "param: expected a floating-point"),
    "master for float32": (with_(master_param=np.zeros((NROWS, WIDTH), np.float32)), ValueError,
                           "master_param: expected None (master weights are for float16/bfloat16 params)"),
    "negative lr": (with_(lr=-0.1), ValueError, "lr: expected a value >= 0, got -0.1"),
    "nan lr array": (with_(lr=np.array([np.nan], np.float32)), ValueError, "lr: expected a finite number"),
    "rho > 1": (with_(rho=1.5), ValueError, "rho: expected a value in [0, 1], got 1.5"),
    "lr_mult": (with_(lr_mult=-1.0), ValueError, "lr_mult: expected a finite value >= 0"),
    "int lr array": (with_(lr=np.array([1], np.int64)), TypeError, "lr: expected a floating-point scalar"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_with_nothing_written(case):
    change, exc, message = CASES[case]
    kw = valid_call()
    call(dict(kw, param=kw["param"].copy(), mean_square=kw["mean_square"].copy(),
              last_step=kw["last_step"].copy(), step=kw["step"].copy()))  # the unchanged call is valid
    change(kw)
    arrays = {k: v for k, v in kw.items() if isinstance(v, np.ndarray)}
    before = {k: v.copy() for k, v in arrays.items()}
    with pytest.raises(exc) as info:
        call(kw)
    assert message in str(info.value)
    for k, v in arrays.items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"{k} was written")


CATCH_UP_CASES = {
    "dense mode": (dict(mode="dense"), ValueError, "mode: expected 'exact' or 'lazy'"),
    "counter ahead": (dict(last_step=np.array([0, 0, 9, 0, 0, 0])), ValueError,
                      "last_step[2]: expected a count in [0, step=5], got 9"),
    "bad index": (dict(indices=np.array([0, 6])), ValueError, "indices[1]: expected a row in [0, 6), got 6"),
    "lazy lr outside without lr": (dict(mode="lazy", momentum=0.9, moment=np.zeros((NROWS, WIDTH), np.float32),
                                        lr_in_momentum=False), ValueError, "lr: expected the learning rate"),
}


@pytest.mark.parametrize("case", CATCH_UP_CASES)
def test_bad_catch_up_is_refused_with_nothing_written(case):
    changes, exc, message = CATCH_UP_CASES[case]
    kw = valid_call()
    kw = dict(param=kw["param"], mean_square=kw["mean_square"], last_step=kw["last_step"], step=kw["step"],
              rho=0.9, mode="exact")
    kw.update(changes)
    arrays = {k: v for k, v in kw.items() if isinstance(v, np.ndarray)}
    before = {k: v.copy() for k, v in arrays.items()}
    with pytest.raises(exc) as info:
        rmsprop_ops.catch_up_rows_(kw.pop("param"), kw.pop("mean_square"), **kw)
    assert message in str(info.value)
    for k, v in arrays.items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"{k} was written")


def test_torch_float_indices_are_named():
    torch = pytest.importorskip("torch")
    kw = valid_call()
    kw["indices"] = torch.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="indices: expected dtype int64 or int32, got float32"):
        call(kw)
