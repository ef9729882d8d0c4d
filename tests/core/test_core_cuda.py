"""The CUDA kernel against the CPU kernel, bit for bit (both evaluate rule.h with every operation separately
rounded). Runs only where the core was built with CUDA and a device is usable (torch provides the device
arrays through DLPack); skipped elsewhere, as on the CPU-only CI machines."""

from __future__ import annotations

import numpy as np
import pytest

import rmsprop_ops

from cases import BF16, DLPackOnly, make_case

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not (rmsprop_ops.cuda_available() and torch.cuda.is_available()),
                                reason="needs a CUDA build of rmsprop_ops and a CUDA device")

RULES = [
    dict(),
    dict(momentum=0.9),
    dict(centered=True, momentum=0.9),
    dict(eps_in_sqrt=False, lr_in_momentum=False, momentum=0.5, weight_decay=0.1),
    dict(weight_decay=0.05, weight_decay_mode="l1", clip_gradient=0.5, clip_weights=1.0),
    dict(weight_decay=0.2, weight_decay_mode="decoupled", rescale_grad=0.5),
]
DTYPES = [(np.float32, False), (np.float64, False), (np.float16, False), (np.float16, True)]
if BF16 is not None:
    DTYPES += [(BF16, False), (BF16, True)]
# Sizes across the kernel's 65536-element chunks and its 4-element packs.
SIZES = [1, 3, 4097, 65536, 65537, 200_003]


def to_cuda(a):
    if a is None:
        return None
    if a.dtype == BF16:
        return torch.from_numpy(a.view(np.uint16)).cuda().view(torch.bfloat16)
    return torch.from_numpy(a).cuda()


def to_numpy(t, dtype):
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).cpu().numpy().view(np.uint16).view(dtype)
    return t.cpu().numpy()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: ",".join(f"{k}={v}" for k, v in r.items()) or "plain")
@pytest.mark.parametrize("dtype,master", DTYPES, ids=lambda d: str(d))
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "misaligned"])
def test_cuda_equals_cpu_bitwise(rule, dtype, master, offset):
    rng = np.random.default_rng(0)
    dtype = np.dtype(dtype)
    centered = rule.get("centered", False)
    cases = [make_case(rng, (n + offset,), dtype, momentum=0.0, centered=centered, master=master) for n in SIZES]
    # offset=1 views start one element in, so the kernel's 16-byte pack path cannot be used.
    cases = [{k: (v[offset:] if v is not None else None) for k, v in c.items()} for c in cases]
    dev = [{k: to_cuda(np.ascontiguousarray(v)) if v is not None else None for k, v in c.items()} for c in cases]
    if offset:
        dev = [{k: (torch.cat([v[:1], v])[1:] if v is not None else None) for k, v in d.items()} for d in dev]
    hyper = dict(lr=0.01, rho=0.9, epsilon=1e-6, centered=centered, **{k: v for k, v in rule.items() if k != "centered"})
    names = ["param", "grad", "mean_square", "moment", "mean_grad", "master_param"]
    for _ in range(3):
        for args, lr in ((cases, 0.01), (dev, to_cuda(np.array([0.01])))):
            rmsprop_ops.rmsprop_multi_([c["param"] for c in args], [c["grad"] for c in args],
                                       [c["mean_square"] for c in args], moments=[c["moment"] for c in args],
                                       mean_grads=[c["mean_grad"] for c in args] if centered else None,
                                       master_params=[c["master_param"] for c in args] if master else None,
                                       **{**hyper, "lr": lr})
        torch.cuda.synchronize()
    for c, d in zip(cases, dev):
        for k in names:
            if c[k] is None:
                continue
            got = to_numpy(d[k], c[k].dtype)
            np.testing.assert_array_equal(got.view(np.uint8), np.ascontiguousarray(c[k]).view(np.uint8), err_msg=k)


def test_cuda_skip_flag_on_device_leaves_everything_untouched():
    p = torch.ones(70_000, device="cuda")
    ms = torch.zeros_like(p)
    rmsprop_ops.rmsprop_(p, torch.ones_like(p), ms, lr=0.1, rho=0.9, epsilon=1e-6,
                         skip_update=torch.tensor([True], device="cuda"))
    assert bool((p == 1).all()) and bool((ms == 0).all())


@pytest.mark.parametrize("where", ["cpu-lr-cuda-params", "cuda-lr-cpu-params"])
def test_a_scalar_array_on_another_device_is_refused_and_nothing_changes(where):
    # The kernel reads an array lr where the params live (and the CPU core range-checks it there): an lr on
    # the other device is refused by name before anything runs.
    dev = "cuda" if where.startswith("cpu") else "cpu"
    p, ms = torch.ones(5, device=dev), torch.zeros(5, device=dev)
    lr = torch.tensor([0.1], device="cpu" if dev == "cuda" else "cuda")
    with pytest.raises(ValueError, match=rf"lr: expected an array on the params' device \({dev}\)"):
        rmsprop_ops.rmsprop_(p, torch.ones_like(p), ms, lr=lr, rho=0.9, epsilon=1e-6)
    assert bool((p == 1).all()) and bool((ms == 0).all())


@pytest.mark.parametrize("path", ["torch", "protocol"])
def test_update_runs_behind_the_work_queued_on_the_current_stream(path):
    # Everything is queued on a side stream behind a 25 ms sleep: an update not ordered behind it would run
    # before the gradients are written. torch tensors are updated on torch's current stream (the side
    # stream); protocol arrays on the legacy default stream, made to wait by __dlpack__(stream=1).
    sizes = [70_000, 5, 4096]
    rng = np.random.default_rng(3)
    host = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    want_p = [np.ones(n, np.float32) for n in sizes]
    want_ms = [np.zeros(n, np.float32) for n in sizes]
    rmsprop_ops.rmsprop_multi_(want_p, host, want_ms, lr=0.1, rho=0.9, epsilon=1e-6)
    src = [torch.from_numpy(h).cuda() for h in host]
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        p = [torch.nn.Parameter(torch.ones(n, device="cuda")) for n in sizes]  # requires grad, as in training
        ms = [torch.zeros(n, device="cuda") for n in sizes]
        torch.cuda._sleep(50_000_000)
        g = [x.clone() for x in src]  # device to device, queued behind the sleep
        args = (p, g, ms) if path == "torch" else ([DLPackOnly(x.detach()) for x in p], [DLPackOnly(x) for x in g],
                                                     [DLPackOnly(x) for x in ms])
        rmsprop_ops.rmsprop_multi_(*args, lr=0.1, rho=0.9, epsilon=1e-6)
        if path == "protocol":
            # The protocol orders the producer's work before the update (on the legacy default stream),
            # not the update before the producer's later work: that is the caller's to order.
            side.wait_stream(torch.cuda.default_stream())
        got_p = [x.detach().clone() for x in p]
        got_ms = [x.clone() for x in ms]
    side.synchronize()
    for a, b in zip(got_p + got_ms, want_p + want_ms):
        np.testing.assert_array_equal(a.cpu().numpy(), b)
