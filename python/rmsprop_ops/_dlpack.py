"""torch tensors at the core's boundary: the fast hand-over, views the core must not read as their
storage, and autograd's record of the in-place update.

``Tensor.__dlpack__(stream=...)``, the protocol's way, does its stream bookkeeping in Python, per tensor, so
a step over many CUDA tensors spent far longer on the host than in its kernel (docs/core.md).
``torch.utils.dlpack.to_dlpack`` is one C++ call but orders nothing, so the update then runs on torch's
current stream, behind the work that produced the tensors, instead of on the legacy default stream.

Both exports hand over a tensor's storage as it is: a view with the negative bit set (``z.conj().imag``)
would be read as the values it negates, so such views are refused. And neither tells autograd that the
tensor changed: ``bump_versions`` does, so a backward pass that saved a tensor before the update raises
as it would after any in-place torch op, instead of using the stale value.

torch is never imported here: a caller holding torch tensors has imported it already.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np

# isinstance(x, numpy.ndarray) as a C callable: a list of NumPy arrays is recognised in one C-level pass
# (all(map(...))), where torch.Tensor's isinstance runs its metaclass's Python __instancecheck__ per entry.
_is_ndarray = np.ndarray.__instancecheck__


class Handover(NamedTuple):
    lists: dict      # name -> tuple of arrays (torch tensors replaced by capsules on the fast path) or None
    stream: int      # the cudaStream_t to run on (0: the default stream, or CPU tensors)
    written: list    # torch tensors the call writes, for bump_versions


def _negative_view_error(name, xs, list_names, tensor):
    i = next(i for i, x in enumerate(xs) if isinstance(x, tensor) and x.is_neg())
    where = f"{name}[{i}]" if list_names else name
    return ValueError(f"{where}: expected a tensor whose memory holds its values, got a view with the negative "
                      "bit set (e.g. z.conj().imag), whose memory holds their negation; pass x.resolve_neg()")


def prepare(lists: dict, scalars: dict, written: tuple, single_names: dict, list_names: bool) -> Handover:
    """Checks the torch tensors among ``lists`` (name -> tuple of arrays, or None) and ``scalars`` (name ->
    value) and, when the first param is a torch tensor, replaces every torch tensor of the lists by a
    DLPack capsule (the fast path). ``written`` names the lists the call updates."""
    torch = sys.modules.get("torch")
    if torch is None:
        return Handover(lists, 0, ())
    tensor = torch.Tensor
    is_neg = tensor.is_neg
    changed = []
    for name, xs in lists.items():
        if not xs or all(map(_is_ndarray, xs)):  # NumPy arrays only: nothing of torch's to check
            continue
        try:  # a list of tensors only, the common case, is checked without filtering it first
            ts, neg = xs, any(map(is_neg, xs))
        except TypeError:  # something else in the list (None, a NumPy array)
            ts = [x for x in xs if isinstance(x, tensor)]
            neg = any(map(is_neg, ts))
        if not ts:
            continue
        if neg:
            raise _negative_view_error(name if list_names else single_names[name], xs, list_names, tensor)
        if name in written:
            changed += ts
    for name, x in scalars.items():
        if isinstance(x, tensor) and x.is_neg():
            raise _negative_view_error(name, [x], False, tensor)
    params = lists["params"]
    if not params or not isinstance(params[0], tensor):
        return Handover(lists, 0, changed)
    from torch.utils.dlpack import to_dlpack

    try:
        out = {name: xs if not xs else [to_dlpack(x) if isinstance(x, tensor) else x for x in xs]
               for name, xs in lists.items()}
    except (BufferError, RuntimeError, TypeError, ValueError):  # sparse, meta, ...: to the protocol path
        return Handover(lists, 0, changed)
    device = params[0].device
    stream = torch.cuda.current_stream(device).cuda_stream if device.type == "cuda" else 0
    return Handover(out, stream, changed)


def bump_versions(tensors) -> None:
    """Tells autograd that ``tensors`` were modified in place (torch's public increment_version)."""
    if tensors:
        from torch.autograd.graph import increment_version

        increment_version(tensors)  # one call for all (it takes a list)
