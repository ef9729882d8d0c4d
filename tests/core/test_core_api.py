"""Multi-tensor and threading guarantees, DLPack input, the registry, and the partition arithmetic."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import rmsprop_ops
from rmsprop_ops import _core

from cases import DLPackOnly, make_case

HYPER = dict(lr=0.01, rho=0.9, epsilon=1e-6, momentum=0.9, centered=True)


def make_sets(seed, sizes, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [make_case(rng, (n,), np.dtype(dtype), momentum=0.0, centered=True, master=False) for n in sizes]


def snapshot(sets):
    return [{k: v.copy() for k, v in s.items() if v is not None} for s in sets]


def multi(sets, **kw):
    rmsprop_ops.rmsprop_multi_([s["param"] for s in sets], [s["grad"] for s in sets],
                               [s["mean_square"] for s in sets], moments=[s["moment"] for s in sets],
                               mean_grads=[s["mean_grad"] for s in sets], **{**HYPER, **kw})


def assert_sets_equal(a, b):
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)


SIZES = [0, 1, 17, 4096, 70_001, 3, 1 << 17, 5]


def test_multi_tensor_equals_per_tensor_bitwise():
    a, b = make_sets(0, SIZES), make_sets(0, SIZES)
    for _ in range(3):
        multi(a)
        for s in b:
            rmsprop_ops.rmsprop_(s["param"], s["grad"], s["mean_square"], moment=s["moment"],
                                 mean_grad=s["mean_grad"], **HYPER)
    assert_sets_equal(snapshot(a), snapshot(b))


# Enough elements for dozens of chunks, whose boundaries then fall inside tensors at odd offsets.
MANY_CHUNKS = [(1 << 20) + 13, 333_333, 7, 65_537, 1]


@pytest.mark.parametrize("sizes", [SIZES, MANY_CHUNKS], ids=["small", "many-chunks"])
@pytest.mark.parametrize("threads", [2, 3, 7])
def test_thread_count_does_not_change_bits(threads, sizes):
    a, b = make_sets(1, sizes), make_sets(1, sizes)
    old = rmsprop_ops.get_num_threads()
    try:
        rmsprop_ops.set_num_threads(1)
        multi(a)
        rmsprop_ops.set_num_threads(threads)
        multi(b)
    finally:
        rmsprop_ops.set_num_threads(old)
    assert_sets_equal(snapshot(a), snapshot(b))


def test_per_tensor_lr_and_weight_decay_lists():
    a, b = make_sets(2, [10, 20]), make_sets(2, [10, 20])
    multi(a, lr=[0.01, 0.05], weight_decay=[0.0, 0.1])
    for s, lr, wd in zip(b, [0.01, 0.05], [0.0, 0.1]):
        rmsprop_ops.rmsprop_(s["param"], s["grad"], s["mean_square"], moment=s["moment"],
                             mean_grad=s["mean_grad"], **{**HYPER, "lr": lr, "weight_decay": wd})
    assert_sets_equal(snapshot(a), snapshot(b))


def test_four_python_threads_update_different_arrays_at_once():
    work = [make_sets(10 + t, [300_000, 7]) for t in range(4)]
    expected = [make_sets(10 + t, [300_000, 7]) for t in range(4)]
    for e in expected:
        for _ in range(5):
            multi(e)
    errors = []

    def run(sets):
        try:
            for _ in range(5):
                multi(sets)
        except Exception as exc:  # surfaced below; a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for w, e in zip(work, expected):
        assert_sets_equal(snapshot(w), snapshot(e))


def test_empty_list_is_a_no_op():
    rmsprop_ops.rmsprop_multi_([], [], [], lr=0.1, rho=0.9, epsilon=1e-6)


def test_dlpack_inputs_update_in_place():
    a, b = make_sets(3, [33]), make_sets(3, [33])
    s = a[0]
    rmsprop_ops.rmsprop_(DLPackOnly(s["param"]), DLPackOnly(s["grad"]), DLPackOnly(s["mean_square"]),
                         moment=DLPackOnly(s["moment"]), mean_grad=DLPackOnly(s["mean_grad"]), **HYPER)
    t = b[0]
    rmsprop_ops.rmsprop_(t["param"], t["grad"], t["mean_square"], moment=t["moment"], mean_grad=t["mean_grad"],
                         **HYPER)
    assert_sets_equal(snapshot(a), snapshot(b))


def test_torch_tensors_through_dlpack():
    torch = pytest.importorskip("torch")
    p = torch.ones(5)
    ms = torch.zeros(5)
    rmsprop_ops.rmsprop_(p, torch.full((5,), 2.0), ms, lr=0.1, rho=0.9, epsilon=1e-6)
    assert torch.all(p < 1) and torch.all(ms > 0)


def _torch_multi(torch, sets, wrap):
    rmsprop_ops.rmsprop_multi_(*([wrap(torch.from_numpy(s[k])) for s in sets] for k in ("param", "grad", "mean_square")),
                               moments=[wrap(torch.from_numpy(s["moment"])) for s in sets],
                               mean_grads=[wrap(torch.from_numpy(s["mean_grad"])) for s in sets], **HYPER)


@pytest.mark.parametrize("wrap", ["tensor", "parameter", "protocol"])
def test_torch_tensor_lists_update_in_place_like_numpy(wrap):
    # torch tensors take the to_dlpack fast path (_dlpack.py); "protocol" hides them behind __dlpack__
    # alone. nn.Parameters, which Tensor.__dlpack__ refuses (they require grad), are updated in place too.
    torch = pytest.importorskip("torch")
    wrap_fn = {"tensor": lambda t: t, "parameter": torch.nn.Parameter, "protocol": DLPackOnly}[wrap]
    got, want = make_sets(4, [1, 33, 4097]), make_sets(4, [1, 33, 4097])
    for _ in range(3):
        _torch_multi(torch, got, wrap_fn)
        rmsprop_ops.rmsprop_multi_([s["param"] for s in want], [s["grad"] for s in want],
                                   [s["mean_square"] for s in want], moments=[s["moment"] for s in want],
                                   mean_grads=[s["mean_grad"] for s in want], **HYPER)
    assert_sets_equal(snapshot(got), snapshot(want))


def test_torch_bad_tensors_get_the_argument_named_and_nothing_changes():
    torch = pytest.importorskip("torch")
    sets = make_sets(5, [8, 8])
    before = snapshot(sets)
    p = [torch.from_numpy(s["param"]) for s in sets]
    g = [torch.from_numpy(s["grad"]) for s in sets]
    ms = [torch.from_numpy(s["mean_square"]) for s in sets]
    with pytest.raises(ValueError, match=r"grads\[1\]: expected a C-contiguous"):
        rmsprop_ops.rmsprop_multi_(p, [g[0], torch.zeros(16)[::2]], ms, lr=0.1, rho=0.9, epsilon=1e-6)
    with pytest.raises(TypeError, match=r"mean_squares\[0\].*int32"):
        rmsprop_ops.rmsprop_multi_(p, g, [torch.zeros(8, dtype=torch.int32), ms[1]], lr=0.1, rho=0.9, epsilon=1e-6)
    with pytest.raises(TypeError, match=r"grads\[0\]: expected an array exportable through DLPack"):  # sparse
        rmsprop_ops.rmsprop_multi_(p, [g[0].to_sparse(), g[1]], ms, lr=0.1, rho=0.9, epsilon=1e-6)
    assert_sets_equal(snapshot(sets), before)


@pytest.mark.parametrize("source", ["numpy", "protocol", "torch"])
def test_shapes_beyond_eight_dims_are_read_whole(source):
    # The front end keeps up to 8 dims inline and the rest on the heap: a 10-d tensor must update like
    # its flat twin, and a difference in its last dims must still be seen.
    wrap = {"numpy": lambda a: a, "protocol": DLPackOnly}.get(source)
    if wrap is None:
        torch = pytest.importorskip("torch")
        wrap = torch.from_numpy
    shape = (1,) * 8 + (2, 3)
    got, want = make_sets(7, [6]), make_sets(7, [6])
    g = got[0]
    rmsprop_ops.rmsprop_(*(wrap(g[k].reshape(shape)) for k in ("param", "grad", "mean_square")),
                         moment=wrap(g["moment"].reshape(shape)), mean_grad=wrap(g["mean_grad"].reshape(shape)),
                         **HYPER)
    w = want[0]
    rmsprop_ops.rmsprop_(w["param"], w["grad"], w["mean_square"], moment=w["moment"], mean_grad=w["mean_grad"],
                         **HYPER)
    assert_sets_equal(snapshot(got), snapshot(want))
    before = snapshot(got)
    with pytest.raises(ValueError, match=r"grad: expected shape \(1, 1, 1, 1, 1, 1, 1, 1, 2, 3\) like param, "
                                         r"got \(1, 1, 1, 1, 1, 1, 1, 1, 3, 2\)"):
        rmsprop_ops.rmsprop_(wrap(g["param"].reshape(shape)), wrap(g["grad"].reshape((1,) * 8 + (3, 2))),
                             wrap(g["mean_square"].reshape(shape)), lr=0.1, rho=0.9, epsilon=1e-6)
    assert_sets_equal(snapshot(got), before)


def test_dlpack_capsule_inputs():
    torch = pytest.importorskip("torch")
    from torch.utils.dlpack import to_dlpack

    got, want = make_sets(6, [17]), make_sets(6, [17])
    caps = {k: to_dlpack(torch.from_numpy(got[0][k])) for k in ("param", "grad", "mean_square")}
    rmsprop_ops.rmsprop_(caps["param"], caps["grad"], caps["mean_square"], lr=0.1, rho=0.9, epsilon=1e-6)
    w = want[0]
    rmsprop_ops.rmsprop_(w["param"], w["grad"], w["mean_square"], lr=0.1, rho=0.9, epsilon=1e-6)
    assert_sets_equal(snapshot(got), snapshot(want))
    with pytest.raises(TypeError, match="param: expected an unconsumed 'dltensor' or 'dltensor_versioned' DLPack capsule, "
                                        "got one already consumed"):
        rmsprop_ops.rmsprop_(caps["param"], to_dlpack(torch.zeros(17)), to_dlpack(torch.zeros(17)), lr=0.1,
                             rho=0.9, epsilon=1e-6)


def test_registry_lists_ops_and_schema():
    from rmsprop_ops import registry

    assert registry.list_ops() == ["rmsprop", "rmsprop_centered", "rmsprop_multi", "rmsprop_centered_multi",
                                   "rmsprop_rows", "rmsprop_centered_rows"]
    s = registry.schema("rmsprop_centered")
    names = [i["name"] for i in s["inputs"]]
    assert names[:5] == ["Param", "Grad", "MeanSquare", "Moment", "MeanGrad"]
    assert s["inplace"] == {"Param": "ParamOut", "MeanSquare": "MeanSquareOut", "Moment": "MomentOut",
                            "MeanGrad": "MeanGradOut", "MasterParam": "MasterParamOut"}
    rho = next(a for a in s["attrs"] if a["name"] == "rho")
    assert (rho["min"], rho["max"], rho["min_inclusive"], rho["max_inclusive"]) == (0, 1, True, True)
    devices = [k["device"] for k in s["kernels"]]
    assert devices == (["cpu", "cuda"] if rmsprop_ops.built_with_cuda() else ["cpu"])
    assert "lr_mults" in [a["name"] for a in registry.schema("rmsprop_multi")["attrs"]]
    with pytest.raises(ValueError, match="name: expected one of"):
        registry.schema("adam")


@pytest.mark.parametrize("attr,value,ok", [
    ("rho", 0.0, True), ("rho", 1.0, True), ("rho", 1.5, False), ("rho", -0.1, False),
    ("epsilon", 0.0, False), ("epsilon", 1e-30, True), ("momentum", -1e-9, False),
    ("learning_rate", float("nan"), False), ("learning_rate", float("inf"), False),
    ("clip_gradient", -1.0, True), ("clip_gradient", 0.0, True), ("weight_decay_mode", 3, False),
    ("eps_in_sqrt", 0.5, False),
])
def test_registry_attr_validation(attr, value, ok):
    from rmsprop_ops import registry

    if ok:
        registry.check_attr("rmsprop", attr, value)
    else:
        with pytest.raises(ValueError, match=f"^{attr}: expected"):
            registry.check_attr("rmsprop", attr, value)


@pytest.mark.parametrize("total", [0, 1, 63, 64, 65, 2**31 - 1, 2**31, 2**31 + 7, 3 * 2**32 + 5, 2**62 + 12345])
@pytest.mark.parametrize("nthreads", [1, 2, 3, 16, 255])
def test_partition_covers_everything_once_in_64_bit(total, nthreads):
    align = 64
    prev_end = 0
    for tid in range(nthreads):
        b, e = _core.partition(total, nthreads, tid, align)
        assert b == prev_end and b <= e <= total
        assert b % align == 0 or b == total
        prev_end = e
    assert prev_end == total


def test_cuda_flags_are_consistent():
    assert isinstance(rmsprop_ops.built_with_cuda(), bool)
    assert rmsprop_ops.cuda_available() in (False, True)
    if not rmsprop_ops.built_with_cuda():
        assert not rmsprop_ops.cuda_available()


def test_headers_and_library_are_installed():
    import os

    assert os.path.isfile(os.path.join(rmsprop_ops.get_include(), "rmsprop_ops", "c_api.h"))
    assert os.path.isfile(os.path.join(rmsprop_ops.get_include(), "rmsprop_ops", "rule.h"))
    assert os.path.isfile(rmsprop_ops.get_library())


def _child_update(q):
    sets = make_sets(20, [1 << 18, 5])
    multi(sets)
    q.put([s["param"].copy() for s in sets])


def test_forked_child_gets_a_working_thread_pool():
    import multiprocessing as mp

    multi(make_sets(21, [1 << 18]))  # the parent's pool threads exist before the fork
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    proc = ctx.Process(target=_child_update, args=(q,))
    proc.start()
    got = q.get(timeout=60)
    proc.join(timeout=60)
    assert proc.exitcode == 0
    expected = make_sets(20, [1 << 18, 5])
    multi(expected)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e["param"])


CHUNK, MIN_CHUNK, BLOCKS_PER_SM = 1 << 16, 2048, 4
# 256 sets / 1024 blocks per launch where nvcc allowed 32 KB kernel parameters, else (and in CPU-only
# builds) 20 / 256.
MAX_SETS, MAX_BLOCKS = _core.cuda_launch_limits()


def test_cuda_launch_limits():
    assert (MAX_SETS, MAX_BLOCKS) in ((20, 256), (256, 1024))


@pytest.mark.parametrize("sm_count", [0, 1, 132, 1000])
@pytest.mark.parametrize("total", [0, 1, 2047, 2048, 2049, 1 << 20, 1 << 24, 2**31 + 17, 2**40 + 3])
def test_cuda_chunk_fills_every_sm_with_the_largest_chunk(total, sm_count):
    chunk = _core.cuda_chunk(total, 1, sm_count)
    if sm_count == 0:  # device unknown: the largest chunk
        assert chunk == CHUNK
        return
    assert MIN_CHUNK <= chunk <= CHUNK and chunk % MIN_CHUNK == 0
    want = sm_count * BLOCKS_PER_SM
    blocks = -(-total // chunk)
    # Every SM gets its blocks whenever there is work enough.
    assert blocks >= min(-(-total // MIN_CHUNK), want)
    if MIN_CHUNK < chunk < CHUNK:  # the next larger chunk would leave some SM without its blocks
        assert total < (chunk + MIN_CHUNK) * want


@pytest.mark.parametrize("sm_count", [0, 132])
@pytest.mark.parametrize("numels", [
    [],
    [0, 0],
    [1],
    [CHUNK * MAX_BLOCKS],
    [CHUNK * MAX_BLOCKS + 1, 5, 0, 7],
    [3] * (2 * MAX_SETS + 5),          # split by the sets-per-launch limit
    [1 << 14] * 1000,
    [2**31 + 17, 2**33, 1],            # beyond int32 elements: 64-bit chunk arithmetic
    [2**40 + 3],                       # 16M chunks: the block's chunk index still fits its int32
    [CHUNK + 1] * 300,
    [1 << 20],                         # small for a 132-SM device: 2048-element chunks
])
def test_cuda_launch_plan_covers_every_chunk_once_in_order(numels, sm_count):
    # Pure host arithmetic of the CUDA kernel's batching, available in every build (no GPU needed).
    plan = _core.cuda_launch_plan(numels, sm_count)
    chunk = _core.cuda_chunk(sum(numels), len(numels), sm_count)
    chunks = [(n + chunk - 1) // chunk for n in numels]
    start = np.concatenate([[0], np.cumsum(chunks, dtype=np.int64)])
    index = lambda k, ch: int(start[k]) + ch  # noqa: E731  (position of (set, chunk) in the global order)
    expected_next = 0
    for nsets, nblocks, (k0, c0), (k1, c1) in plan:
        assert 1 <= nsets <= MAX_SETS and 1 <= nblocks <= MAX_BLOCKS
        assert index(k0, c0) == expected_next
        assert index(k1, c1) - index(k0, c0) + 1 == nblocks
        assert 0 <= c0 < chunks[k0] and 0 <= c1 < chunks[k1]
        assert sum(1 for k in range(k0, k1 + 1) if chunks[k]) == nsets
        expected_next = index(k1, c1) + 1
        assert c1 < 2**31  # the kernel's per-block chunk index is an int32
    assert expected_next == int(start[-1])


@pytest.mark.parametrize("n", [1 << 12, 1 << 14, 1 << 16])
def test_cuda_each_launch_of_many_small_tensors_fills_the_device(n):
    # 1000 tensors take several launches, run one after the other: each must keep every SM busy.
    sm_count = 132
    plan = _core.cuda_launch_plan([n] * 1000, sm_count)
    chunk = _core.cuda_chunk(n * 1000, 1000, sm_count)
    assert len(plan) > 1
    for _, nblocks, *_ in plan[:-1]:
        # Short of 4 blocks per SM only when a smaller chunk is not allowed or the launch is full.
        assert nblocks >= sm_count * BLOCKS_PER_SM or nblocks == MAX_BLOCKS or chunk == MIN_CHUNK
