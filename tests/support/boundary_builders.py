"""Builders of the hostile calls of tests/scripts/boundary_cases.py: each returns a Trial (the call, the
arrays a refused call must leave untouched, and for a call that must succeed a check of its result)."""

from __future__ import annotations

import gc
import threading
import time
from typing import Callable, NamedTuple

import numpy as np

import c_abi
import rmsprop_ops
from dlpack_craft import READ_ONLY, Producer, capsule

OK = dict(lr=0.1, rho=0.9, epsilon=1e-6)


class Trial(NamedTuple):
    call: Callable
    watched: list                 # arrays a failed call must leave bitwise unchanged
    check: Callable | None = None  # after success: returns "" when right, else what is wrong


class Case(NamedTuple):
    id: str
    exc: str | None               # exception type name, None when the call must succeed
    prefix: str
    build: Callable[[], Trial]
    requires: str | None = None   # a module the case needs (skipped without it)


def f32(n=5, fill=1.0, dtype=np.float32):
    return np.full(n, fill, dtype)


def trio(n=5):
    return f32(n), f32(n, 0.5), f32(n, 0.0)


def expect_update(pairs):
    """A check that each (array, reference array) pair holds the reference's values."""
    def check():
        bad = [i for i, (a, b) in enumerate(pairs) if not np.array_equal(np.asarray(a), b)]
        return f"arrays {bad} differ from the reference" if bad else ""
    return check


def reference_params(n_params, n=5, steps=1):
    """Params after `steps` steps of trio() with OK, computed on plain arrays."""
    out = []
    for _ in range(n_params):
        p, g, ms = trio(n)
        for _ in range(steps):
            rmsprop_ops.rmsprop_(p, g, ms, **OK)
        out.append(p)
    return out


def single(p, g, ms, **kw):
    return lambda: rmsprop_ops.rmsprop_(p, g, ms, **{**OK, **kw})


def multi(ps, gs, mss, **kw):
    return lambda: rmsprop_ops.rmsprop_multi_(ps, gs, mss, **{**OK, **kw})


# ---- lists changed while the call reads them -------------------------------------------------------------

_bystanders = []


def _churn_memory():
    """Drops what the caller's callback freed and fills the heap with new arrays (kept alive): a handle the
    call kept without owning it now points at one of these."""
    gc.collect()
    _bystanders.extend(f32(fill=9.0) for _ in range(300))


def _bystanders_untouched():
    bad = sum(not np.array_equal(a, f32(fill=9.0)) for a in _bystanders)
    return f"{bad} arrays that were never passed in changed" if bad else ""


def _producer_clears_grads():
    ps = [f32(), f32(), f32()]
    mss = [f32(fill=0.0) for _ in ps]
    g0 = f32(fill=0.5)
    grads = [Producer(lambda: g0.__dlpack__()), f32(fill=0.5), f32(fill=0.5)]
    grads[0]._on_export = lambda: (grads.clear(), _churn_memory())  # drops the only references to grads[1:]
    check = expect_update(list(zip(ps, reference_params(3))))
    return Trial(multi(ps, grads, mss), [], lambda: check() or _bystanders_untouched())


def _producer_replaces_param():
    ps, mss = [f32(), f32()], [f32(fill=0.0), f32(fill=0.0)]
    stranger = f32(fill=7.0)
    gs = [Producer(lambda: f32(fill=0.5).__dlpack__(), on_export=lambda: (ps.__setitem__(1, stranger),
                                                                          _churn_memory())), f32(fill=0.5)]
    check = expect_update([(ps[0], reference_params(1)[0]), (stranger, f32(fill=7.0))])
    return Trial(multi(ps, gs, mss), [], lambda: check() or _bystanders_untouched())


def _producer_shrinks_lists():
    ps, gs, mss = [f32(), f32()], [f32(fill=0.5), f32(fill=0.5)], [f32(fill=0.0), f32(fill=0.0)]
    gs[0] = Producer(lambda: f32(fill=0.5).__dlpack__(), on_export=lambda: (ps.pop(), gs.pop(), mss.pop(),
                                                                           _churn_memory()))
    check = expect_update([(ps[0], reference_params(1)[0])])
    return Trial(multi(ps, gs, mss), [], lambda: check() or _bystanders_untouched())


def _producer_grows_lists():
    ps, gs, mss = [f32()], [f32(fill=0.5)], [f32(fill=0.0)]
    extra = f32(fill=3.0)
    gs[0] = Producer(lambda: f32(fill=0.5).__dlpack__(), on_export=lambda: (ps.append(extra), gs.append(f32()),
                                                                           mss.append(f32())))
    return Trial(multi(ps, gs, mss), [], expect_update([(ps[0], reference_params(1)[0]), (extra, f32(fill=3.0))]))


class FreshItems(list):
    """A list whose entries are made anew on every read: nothing else holds them."""

    def __getitem__(self, i):
        return f32(fill=0.5)

    def __iter__(self):
        return iter([f32(fill=0.5) for _ in range(len(self))])


class Raising(list):
    def __init__(self, items, where):
        super().__init__(items)
        self.where = where

    def __iter__(self):
        if self.where == "iter":
            raise RuntimeError("boom from __iter__")
        return super().__iter__()

    def __len__(self):
        if self.where == "len":
            raise RuntimeError("boom from __len__")
        return super().__len__()


def _thread_replaces_grads():
    """Another thread keeps replacing grads[i] (dropping the old entry) while calls run; the producer in
    params yields the GIL in the middle of reading the arguments."""
    n = 8
    ps, mss = [f32(64) for _ in range(n)], [f32(64, 0.0) for _ in range(n)]
    ps[0] = Producer(lambda: f32(64).__dlpack__(), on_export=lambda: time.sleep(0))
    grads = [f32(64, 0.5) for _ in range(n)]
    stop = threading.Event()

    def churn():
        i = 0
        while not stop.is_set():
            grads[i % n] = f32(64, 0.5)
            i += 1

    def run():
        t = threading.Thread(target=churn)
        t.start()
        try:
            for _ in range(300):
                rmsprop_ops.rmsprop_multi_(ps, grads, mss, **OK)
        finally:
            stop.set()
            t.join()
    want = reference_params(1, 64, steps=300)[0]
    return Trial(run, [], expect_update([(ps[1], want), (ps[n - 1], want)]))


# ---- lying DLPack producers and descriptors ------------------------------------------------------------

class BadIndex:
    def __index__(self):
        raise RuntimeError("boom from __index__")


def _param_via(make=None, answer=(1, 0), **kw):
    """param through a producer answering __dlpack_device__ with `answer` and exporting capsule(p, **kw)."""
    p, g, ms = trio()
    prod = Producer(make or (lambda: capsule(p, **kw)), answer)
    return Trial(single(prod, g, ms), [p, g, ms])


def _device_id_none():
    """Paddle's tensors answer __dlpack_device__() with (kDLCPU, None): the id is not needed, the type is."""
    p, g, ms = trio()
    return Trial(single(Producer(lambda: capsule(p), (1, None)), g, ms), [],
                 expect_update([(p, reference_params(1)[0])]))


def _multi_first_lies(**kw):
    """Set 0 (param, grad, mean square) claims kw, e.g. shape (-64,); set 1 is fine and must not be touched."""
    a, g, m = f32(64), f32(64, 0.5), f32(64, 0.0)
    ps, gs, mss = [a, f32(100)], [g, f32(100, 0.5)], [m, f32(100, 0.0)]
    lie = [[Producer(lambda x=x: capsule(x, **kw)), y] for x, y in ((a, ps[1]), (g, gs[1]), (m, mss[1]))]
    return Trial(multi(*lie), [*ps, *mss])


def _consumed_twice():
    p1, p2 = f32(), f32()
    cap = capsule(p1)
    return Trial(multi([Producer(lambda: cap), Producer(lambda: cap)], [f32(fill=0.5)] * 2, [f32(fill=0.0), f32(fill=0.0)]),
                 [p1, p2])


def _versioned(role, flags):
    p, g, ms = trio()
    args = {"param": p, "grad": g, "mean_square": ms}
    wrapped = dict(args)
    wrapped[role] = Producer(lambda: capsule(args[role], versioned=True, flags=flags))
    return Trial(single(wrapped["param"], wrapped["grad"], wrapped["mean_square"]), [p, g, ms])


def _readonly_grad_ok():
    p, g, ms = trio()
    g.setflags(write=False)
    return Trial(single(p, Producer(lambda: capsule(g, versioned=True, flags=READ_ONLY)), ms), [],
                 expect_update([(p, reference_params(1)[0])]))


def _zero_size_null_data():
    return Trial(single(*(Producer(lambda: capsule(data=0, shape=(0,))) for _ in range(3))), [],
                 lambda: "")


# ---- byte order ----------------------------------------------------------------------------------------

def _big_endian(role):
    p, g, ms = trio()
    mom, master = f32(fill=0.0), None
    kw = dict(moment=mom, momentum=0.5)
    if role == "master_param":
        p, g, master = p.astype(np.float16), g.astype(np.float16), f32()
        kw["master_param"] = master.astype(">f4")
    elif role in ("lr", "rescale_grad"):
        kw[role] = np.array(0.1, ">f8")
    elif role == "skip_update":
        kw[role] = np.array(0, ">i4")
    elif role == "moment":
        kw["moment"] = mom.astype(">f4")
    swap = {"param": p.astype(">f4"), "grad": g.astype(">f4"), "mean_square": ms.astype(">f4")}
    args = [swap[r] if r == role else a for r, a in (("param", p), ("grad", g), ("mean_square", ms))]
    watched = [a for a in [*args, mom, kw.get("master_param")] if isinstance(a, np.ndarray)]
    return Trial(single(*args, **kw), watched)


def _big_endian_multi():
    ps = [f32(), f32().astype(">f4")]
    return Trial(multi(ps, [f32(fill=0.5)] * 2, [f32(fill=0.0), f32(fill=0.0)]), ps)


# ---- one memory, two exporters; scalars inside params ----------------------------------------------------

def _torch_view_of_param():
    import torch

    p, _, ms = trio()
    return Trial(single(p, torch.from_numpy(p), ms), [p, ms])


def _dlpack_view_of_param():
    p, g, _ = trio()
    return Trial(single(p, g, Producer(lambda: capsule(p))), [p, g])


def _lr_inside_param():
    p, g, ms = trio()
    return Trial(single(p, g, ms, lr=p[:1]), [p, g, ms])


# ---- torch: views the exports would misread ------------------------------------------------------------

def _neg_view(role):
    import torch

    z = torch.tensor([1 + 2j], dtype=torch.complex64)
    neg = z.conj().imag  # a float32 view with the negative bit: its memory holds +2, its value is -2
    p, g, ms = torch.ones(1), torch.full((1,), 0.5), torch.zeros(1)
    args = {"param": p, "grad": g, "mean_square": ms}
    kw = {}
    if role == "lr":
        kw["lr"] = neg[0]
    else:
        args[role] = neg
    watched = [p.numpy(), ms.numpy(), torch.view_as_real(z).numpy()]
    return Trial(single(args["param"], args["grad"], args["mean_square"], **kw), watched)


# ---- the C ABI, handed descriptors directly --------------------------------------------------------------

def _cabi(edit):
    p, g, ms = trio()
    s = c_abi.simple_set(p, g, ms)
    sets = [s]
    hp = None
    if callable(edit):
        hp = edit(s)

    def call():
        rc, msg = c_abi.update(sets, hp)
        if rc != 0:
            raise {1: TypeError, 2: ValueError, 3: RuntimeError, 4: NotImplementedError}[rc](msg)
    return Trial(call, [p, g, ms])


def _cabi_hp(**fields):
    def edit(s):
        lib = c_abi.library()
        hp = c_abi.HParams()
        lib.rmsprop_ops_default_hparams(hp)
        hp.lr.value = 0.1
        for k, v in fields.items():
            if k == "lr_ptr":
                hp.lr.ptr, hp.lr.dtype = v
            else:
                setattr(hp, k, v)
        return hp
    return edit


_LR_BYTES = np.zeros(16, np.uint8)


# The case table imports every builder, the underscored ones included.
__all__ = [n for n in dir() if not n.startswith("__") and n not in ("annotations", "gc", "threading", "time")]
