"""The registered MindSpore custom op: ``ops.Custom(func_type="aot")`` over the core's C ABI.

One op call updates a whole list of parameters (multi-tensor) in place: the op is marked
``side_effect_mem`` so that MindSpore's graph compiler treats its Parameter inputs as written, orders it
after the gradient computation and keeps it even though its output is unused.
"""

from __future__ import annotations

import ctypes
import numbers
import re
from typing import NamedTuple

import numpy as np

from .._runtime import built_with_cuda
from .._toolkit.checks import attr_spec, enum_code, registry_document
from .._toolkit.flat import flat_offsets
from ..registry import check_attr, schema
from ._build import FUNC_NAME, kernel_handle, kernel_library

__all__ = ["kernel_available", "device_target", "make_op", "make_config", "config_layout", "flat_offsets",
           "rmsprop_multi_", "kernel_stats", "last_error", "raise_from_kernel"]

_STATUS_EXC = {1: TypeError, 2: ValueError, 3: RuntimeError, 4: NotImplementedError}


class ConfigLayout(NamedTuple):
    """The float64 config input as the core's registry lays it out ("config_layout"; the kernel reads the
    same through rmsprop_ops_config_field): ``header`` values, one value per name of ``values``, ``n``
    values per name of ``lists``, then with flat state ``n`` offsets."""
    header: tuple
    values: tuple
    lists: tuple

    def size(self, n: int, flat: bool) -> int:
        return len(self.header) + len(self.values) + (len(self.lists) + (1 if flat else 0)) * n

    def index(self, name: str, n: int = 1, k: int = 0) -> int:
        """Where ``name`` (a header field, a value, a list's entry ``k``, or ``"offsets"``) sits."""
        if name in self.header:
            return self.header.index(name)
        if name in self.values:
            return len(self.header) + self.values.index(name)
        lists = (*self.lists, "offsets")
        return len(self.header) + len(self.values) + lists.index(name) * n + k


def config_layout() -> ConfigLayout:
    c = registry_document()["config_layout"]
    return ConfigLayout(tuple(c["header"]), tuple(c["values"]), tuple(c["lists"]))


def device_target() -> str:
    import mindspore as ms

    return ms.get_context("device_target")


def kernel_available(target: str | None = None) -> bool:
    """True when this package has a kernel for ``target`` (default: MindSpore's current device target):
    always on CPU, on GPU when the core was built with CUDA, never on Ascend."""
    target = target or device_target()
    if target == "CPU":
        return True
    if target == "GPU":
        return built_with_cuda()
    return False


def _config_value(name, value) -> float:
    """A value as the config carries it: a bool as 0/1, an enum by its choice's index, a number as it is
    (ranges are the kernel's check, through the core, so a raw op can be given any value)."""
    kind = attr_spec(name)["type"]
    if kind == "enum" and isinstance(value, str):
        return float(enum_code(name, value))
    if kind == "float" and value is None and attr_spec(name)["negative_disables"]:
        return -1.0
    return float(value)


def make_config(n: int, *, rho: float, epsilon: float, momentum: float, centered: bool, weight_decays,
                rescale_grad: float = 1.0, offsets=None, lr_mults=None, **attrs):
    """The op's float64 config tensor (:func:`config_layout`): every registry attribute, its default unless
    given (``rho``, ``epsilon``, ..., any other by name in ``attrs``), one weight-decay coefficient and one
    learning-rate multiplier per tensor, then with ``offsets`` (flat state: where tensor k's state starts in
    each state buffer, in elements) the offsets."""
    from mindspore import Tensor

    layout = config_layout()
    given = dict(attrs, rho=rho, epsilon=epsilon, momentum=momentum, rescale_grad=rescale_grad)
    unknown = set(given) - set(layout.values)
    if unknown:
        raise TypeError(f"make_config() got unexpected attributes {sorted(unknown)}; the registry's are "
                        f"{list(layout.values)}")
    values = []
    for name in layout.values:
        spec = attr_spec(name)
        default = spec["choices"].index(spec["default"]) if spec["type"] == "enum" else spec["default"]
        values.append(_config_value(name, given.get(name, default)))
    lists = {"weight_decays": weight_decays, "lr_mults": [1.0] * n if lr_mults is None else lr_mults}
    tail = []
    for name in layout.lists:
        entries = [float(w) for w in lists[name]]
        if len(entries) != n:
            raise ValueError(f"{name.removesuffix('s')}: expected {n} per-tensor values, got {len(entries)}")
        tail += entries
    if offsets is not None:
        offs = [float(o) for o in offsets]
        if len(offs) != n:
            raise ValueError(f"offsets: expected {n} per-tensor values, got {len(offs)}")
        tail += offs
    header = [float(n), 1.0 if centered else 0.0, 0.0 if offsets is None else 1.0]
    assert len(header) == len(layout.header), "make_config's header and the registry's config_layout disagree"
    return Tensor(np.array(header + values + tail, dtype=np.float64))


def _elem(dtype):
    """Tensor[Float32] and Ref[Tensor[Float32]] (a Parameter) -> Float32."""
    for _ in range(4):
        inner = getattr(dtype, "element_type", None)
        if inner is None:
            break
        dtype = inner()
    return dtype


def tensor_blocks(centered: bool) -> list[str]:
    """The op's tensor-list inputs in order, from the core's registry ("Param[]" -> "params", ...).

    MindSpore always keeps a moment buffer (updated even with momentum 0), so the registry's optional
    ``Moment[]`` is always passed; float32 master weights are not used (MindSpore has none).
    """
    op = schema("rmsprop_centered_multi" if centered else "rmsprop_multi")
    names = [i["name"][:-2] for i in op["inputs"] if i["name"].endswith("[]") and i["name"] != "MasterParam[]"]
    return [re.sub(r"(?<!^)(?=[A-Z])", "_", n).lower() + "s" for n in names]


class _Infer:
    """Shape and dtype inference for a launch over ``n`` tensors, checking what the kernel will check, so
    that in GRAPH_MODE a mismatch is a TypeError/ValueError at compile time rather than a failed launch."""

    def __init__(self, n, centered, flat_sizes=None):
        self.n = n
        self.blocks = tensor_blocks(centered)
        self.flat_sizes = flat_sizes

    def _split(self, items, what):
        """lr, config and the blocks; a flat state block is a list of one buffer."""
        per_state = 1 if self.flat_sizes is not None else self.n
        want = 2 + 2 * self.n + (len(self.blocks) - 2) * per_state
        if len(items) != want:
            kind = "flat state buffers" if self.flat_sizes is not None else f"lists of {self.n}"
            raise ValueError(f"inputs: expected {want} {what} (lr, config, params, grads and "
                             f"{len(self.blocks) - 2} {kind}), got {len(items)}")
        blocks, pos = [], 2
        for b in range(len(self.blocks)):
            step = self.n if b < 2 else per_state
            blocks.append(items[pos: pos + step])
            pos += step
        return items[0], items[1], blocks

    def shape(self, *shapes):
        lr, config, blocks = self._split(shapes, "shapes")
        if int(np.prod(lr)) != 1:
            raise ValueError(f"lr: expected a scalar tensor, got shape {tuple(lr)}")
        flat = self.flat_sizes is not None
        want_config = config_layout().size(self.n, flat)
        if tuple(config) != (want_config,):
            raise ValueError(f"config: expected shape ({want_config},), got {tuple(config)}")
        for name, block in zip(self.blocks[1:], blocks[1:]):
            if flat and name != "grads":
                if tuple(block[0]) != (self.flat_sizes,):
                    raise ValueError(f"{name}: expected a flat buffer of shape ({self.flat_sizes},), got "
                                     f"{tuple(block[0])}")
                continue
            for k, (sp, pp) in enumerate(zip(block, blocks[0])):
                if tuple(sp) != tuple(pp):
                    raise ValueError(f"{name}[{k}]: expected shape {tuple(pp)} like params[{k}], got {tuple(sp)}")
        return (1,)

    def dtype(self, *dtypes):
        from mindspore import dtype as mstype

        lr, _, blocks = self._split([_elem(d) for d in dtypes], "dtypes")
        floats = (mstype.float32, mstype.float64, mstype.float16, mstype.bfloat16)
        if lr not in (mstype.float32, mstype.float64):
            raise TypeError(f"lr: expected a float32 or float64 tensor, got {lr}")
        first = blocks[0][0] if self.n else mstype.float32
        for k, pd in enumerate(blocks[0]):
            if pd not in floats:
                raise TypeError(f"params[{k}]: expected a floating-point dtype (float32, float64, float16, "
                                f"bfloat16), got {pd}")
            if pd != first:
                raise TypeError(f"params[{k}]: expected {first} like params[0], got {pd} (one launch updates "
                                "params of one dtype)")
        for name, block in zip(self.blocks[1:], blocks[1:]):
            if self.flat_sizes is not None and name != "grads":
                want = mstype.float64 if first == mstype.float64 else mstype.float32
                if block[0] != want:
                    raise TypeError(f"{name}: expected a flat buffer of dtype {want}, got {block[0]}")
                continue
            for k, (d, pd) in enumerate(zip(block, blocks[0])):
                want = pd if name == "grads" or pd == mstype.float64 else mstype.float32
                if d != want:
                    raise TypeError(f"{name}[{k}]: expected dtype {want}, got {d}")
        return mstype.float32


def make_op(n=None, centered=False, target: str | None = None, flat_size: int | None = None):
    """A fresh ``ops.Custom`` primitive running our kernel on ``target``.

    Inputs: ``lr, config, *params, *grads, *mean_squares, *moments[, *mean_grads]``; output: a float32
    ``(1,)`` tensor holding 1 after the update. Params and state are updated in place. With ``n`` (the
    number of tensors) the shapes and dtypes are checked at inference time, i.e. when a graph compiles;
    without it only the kernel checks them, at launch. ``flat_size`` (with ``n``) declares flat state: each
    state list is one 1-D buffer of that many elements and the config carries the offsets
    (:func:`make_config`, :func:`flat_offsets`).
    """
    from mindspore import ops
    from mindspore import dtype as mstype

    target = target or device_target()
    if n is None:
        out_shape, out_dtype = (lambda *shapes: (1,)), (lambda *dtypes: mstype.float32)
    else:
        infer = _Infer(n, centered, flat_size)
        out_shape, out_dtype = infer.shape, infer.dtype
    op = ops.Custom(f"{kernel_library(target)}:{FUNC_NAME}", out_shape=out_shape, out_dtype=out_dtype,
                    func_type="aot")
    op.add_prim_attr("side_effect_mem", True)
    # Keep the library loaded for the process: MindSpore may unload it after a failed launch, which would
    # lose last_error() and the launch counters.
    kernel_handle(target)
    return op


def last_error(target: str | None = None) -> str:
    """The core's message for the last failed launch of our kernel in this process ("" if none)."""
    buf = ctypes.create_string_buffer(1024)
    kernel_handle(target or device_target()).rmsprop_ops_ms_last_error(buf, len(buf))
    return buf.value.decode(errors="replace")


def kernel_stats(target: str | None = None) -> dict:
    """Counters kept by the kernel library: successful launches and tensors updated, process-wide.

    Waits for MindSpore's queued work first (PyNative launches asynchronously), so every op call made
    before is counted.
    """
    _wait_for_queued_ops()
    lib = kernel_handle(target or device_target())
    return {"launches": int(lib.rmsprop_ops_ms_launches()), "tensors": int(lib.rmsprop_ops_ms_tensors_updated())}


def _wait_for_queued_ops():
    """Waits for the ops PyNative has queued, on every device. ``mindspore.runtime.synchronize()`` does not
    wait on CPU (it logs "CPU device is not supported" and returns); the PyNative executor's sync, which
    MindSpore's own ``Model`` and profiler call, waits everywhere."""
    try:
        from mindspore.graph.api import _pynative_executor  # MindSpore >= 2.9
    except ImportError:
        from mindspore.common.api import _pynative_executor
    _pynative_executor.sync()


def raise_from_kernel(exc: BaseException, target: str | None = None):
    """Re-raise MindSpore's generic aot failure as the core's TypeError / ValueError with its message."""
    text = str(exc)
    if FUNC_NAME not in text:
        raise exc
    code = None
    marker = "is "
    pos = text.find(FUNC_NAME)
    tail = text[pos:pos + 120]
    if marker in tail:
        digits = tail.split(marker, 1)[1].split(".", 1)[0].strip()
        code = int(digits) if digits.isdigit() else None
    msg = last_error(target) or text
    raise _STATUS_EXC.get(code, RuntimeError)(msg) from None


def _as_list(name, value):
    if isinstance(value, (list, tuple)):
        return list(value)
    raise TypeError(f"{name}: expected a list or tuple of Parameters/Tensors, got {type(value).__name__}")


def _tensor_list(name, value, n=None):
    """The list ``value``, checked to hold ``n`` Tensors (Parameters for the lists updated in place).

    The update is in place, so the written lists must be Parameters: a plain Tensor may share memory with
    a NumPy array (``Tensor.from_numpy``), possibly read-only, while a Parameter owns its memory.
    """
    from mindspore import Parameter, Tensor

    items = _as_list(name, value)
    if n is not None and len(items) != n:
        raise ValueError(f"{name}: expected {n} tensors like params, got {len(items)}")
    kind, what = (Tensor, "a mindspore Tensor") if name == "grads" else (Parameter, "a mindspore Parameter")
    for k, t in enumerate(items):
        if not isinstance(t, kind):
            raise TypeError(f"{name}[{k}]: expected {what}, got {type(t).__name__}")
    return items


def rmsprop_multi_(params, grads, mean_squares, moments, lr, *, rho=0.9, epsilon=1e-10, momentum=0.0,
                   centered=False, mean_grads=None, weight_decay=0.0, rescale_grad=1.0):
    r"""One in-place RMSProp step on lists of MindSpore Parameters, in one custom-op launch.

    MindSpore's convention (``ApplyRMSProp`` / ``ApplyCenteredRMSProp``)::

        g   = rescale_grad * grad + weight_decay * param
        ms  = rho * ms + (1 - rho) * g^2
        mg  = rho * mg + (1 - rho) * g                 (centered)
        mom = momentum * mom + lr * g / sqrt(ms [- mg^2] + epsilon)
        param -= mom

    Args:
        params, grads, mean_squares, moments: lists of equal length; params and state are Parameters
            (they are written in place) of one floating dtype, grads Tensors of the params' dtype and shapes.
        lr: the learning rate, a finite number >= 0 or a float32/float64 scalar Tensor (read by the kernel
            where it lives; on CPU its value is checked too).
        rho, epsilon, momentum: as in ``mindspore.nn.RMSProp`` (``decay`` is ``rho`` there).
        centered: needs ``mean_grads``.
        weight_decay: a number or one value per parameter.
        rescale_grad: multiplies the gradient first (1 / loss scale).

    Raises:
        TypeError / ValueError naming the argument (from the core's validation, before anything is
        written).

    Example (PYNATIVE_MODE):
        >>> import numpy as np, mindspore as ms
        >>> from rmsprop_ops.mindspore import rmsprop_multi_
        >>> p = ms.Parameter(ms.Tensor(np.ones(2, np.float32)), name="p")
        >>> s = ms.Parameter(ms.Tensor(np.ones(2, np.float32)), name="s")
        >>> m = ms.Parameter(ms.Tensor(np.zeros(2, np.float32)), name="m")
        >>> rmsprop_multi_([p], [ms.Tensor(np.full(2, 0.5, np.float32))], [s], [m], 0.1)
        >>> round(float(p.asnumpy()[0]), 5)
        0.94801
    """
    from mindspore import Tensor
    from mindspore import dtype as mstype

    params = _tensor_list("params", params)
    n = len(params)
    grads = _tensor_list("grads", grads, n)
    mean_squares, moments = _tensor_list("mean_squares", mean_squares, n), _tensor_list("moments", moments, n)
    if not isinstance(centered, bool):
        raise TypeError(f"centered: expected a bool, got {type(centered).__name__} ({centered!r})")
    mgs = []
    if centered:
        if mean_grads is None:
            raise ValueError("mean_grads: expected a list (centered=True needs the mean gradient), got None")
        mgs = _tensor_list("mean_grads", mean_grads, n)
    elif mean_grads is not None:
        raise ValueError("mean_grads: expected None when centered=False, got a list")
    if isinstance(weight_decay, (list, tuple)):
        wds = list(weight_decay)
        for k, w in enumerate(wds):
            _check_finite(**{f"weight_decay[{k}]": w})
    else:
        _check_finite(weight_decay=weight_decay)
        wds = [weight_decay] * n
    if isinstance(lr, Tensor):
        if lr.size != 1:
            raise ValueError(f"lr: expected a scalar Tensor, got shape {tuple(lr.shape)}")
        if lr.dtype not in (mstype.float32, mstype.float64):
            raise TypeError(f"lr: expected a float32 or float64 Tensor, got {lr.dtype}")
    else:
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise TypeError(f"lr: expected a number or a scalar Tensor, got {type(lr).__name__}")
        check_attr("rmsprop", "learning_rate", float(lr), name="lr")
        # A number is taken in the params' precision, as MindSpore casts lr to the gradient's dtype.
        wide = bool(params) and params[0].dtype == mstype.float64
        lr = Tensor(float(lr), mstype.float64 if wide else mstype.float32)
    _check_finite(rho=rho, epsilon=epsilon, momentum=momentum, rescale_grad=rescale_grad)
    config = make_config(n, rho=rho, epsilon=epsilon, momentum=momentum, centered=centered,
                         weight_decays=wds, rescale_grad=rescale_grad)
    target = device_target()
    op = make_op(target=target)
    try:
        # PyNative runs ops asynchronously: reading the output waits for the launch, so a failure is
        # raised here rather than at some later, unrelated operation.
        op(lr, config, *params, *grads, *mean_squares, *moments, *mgs).asnumpy()
    except (RuntimeError, TypeError, ValueError) as e:
        # MindSpore reports a failed launch as RuntimeError, or TypeError in GRAPH_MODE context.
        raise_from_kernel(e, target)


def _check_finite(**values):
    """Type checks of the number hyper-parameters; the core checks their range and finiteness."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name}: expected a float, got {type(v).__name__} ({v!r})")
