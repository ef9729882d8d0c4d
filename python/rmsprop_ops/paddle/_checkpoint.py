"""``set_state_dict``: a checkpoint is paired with the parameters, checked whole, then written.

Entries are ``paddle.optimizer.RMSProp``'s: ``<param>_<kind>_<n>`` accumulators (``<param>_fp32_master_<n>``
for a master weight's), ``master_weights`` (parameter name -> float32 tensor) and ``LR_Scheduler``; with
``use_ema`` also the averages (``<param>_ema_<n>``, kind ``ema``, kept for the parameter itself), and with
``use_ema`` or ``bias_correction`` ``iterations`` (the updates so far, which the averages' decay and the
bias correction depend on). Each is
paired with a parameter by name (``_names.match``), and checked (a floating-point value, the parameter's full
shape, no value that overflows the state's dtype, a master weight only for a parameter that has one)
before anything is written. State for parameters whose accumulators do not exist yet (a checkpoint loaded
before the first step) waits in ``Pending`` and is written when they are created.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import paddle
from paddle.optimizer.lr import LRScheduler

from . import _ema, _names
from ._state import KINDS, state_dtype

__all__ = ["Pending", "load", "parse", "base_param_name", "to_state"]

_MASTER_SUFFIX = re.compile(r"_fp32_master_\d+$")
_NUMPY = {paddle.float32: np.float32, paddle.float64: np.float64, paddle.float16: np.float16}


class Entry(NamedTuple):
    """One saved accumulator: its key, the saved parameter's name, the kind and the value (a copy)."""

    key: str
    param: str
    kind: str
    value: object


class Pending:
    """Checked state for parameters whose accumulators do not exist yet: (parameter name, kind) -> value
    already in the state's dtype and shape."""

    def __init__(self):
        self.values = {}

    def apply(self, opt, targets, kinds=KINDS):
        """Write the pending state of ``kinds`` of the just-created ``targets`` (parameters or master weights;
        parameters for the averages)."""
        if not self.values:
            return
        for target in targets:
            pname = base_param_name(target.name)
            for kind in kinds:
                value = self.values.pop((pname, kind), None)
                if value is not None:
                    var = opt._accumulators[opt._acc_name(kind)][target.name]
                    what = f"state_dict: {opt._acc_name(kind)!r} accumulator for parameter {pname!r}"
                    var.set_value(to_state(value, var.dtype, var.shape, what))


def base_param_name(name):
    """A float32 master weight's accumulators are keyed by the master's generated name; map it back to its
    parameter's name."""
    return _MASTER_SUFFIX.sub("", name)


def _check_value(value, what):
    """A floating-point Paddle tensor or NumPy array (a bfloat16 tensor's NumPy form, uint16 bits, is taken
    only as a Paddle tensor, where its dtype says what the bits are)."""
    if isinstance(value, paddle.Tensor):
        if not value.is_floating_point():
            raise TypeError(f"{what}: expected a floating-point tensor, got {value.dtype}")
        return
    if not hasattr(value, "shape") or np.asarray(value).dtype.kind != "f":
        raise TypeError(f"{what}: expected a floating-point paddle.Tensor or NumPy array, got "
                        f"{type(value).__name__} ({getattr(value, 'dtype', None)})")


def _floats(value):
    """``value``'s numbers as a NumPy float array (a copy: the caller's tensor may change later)."""
    if isinstance(value, paddle.Tensor):
        return (value.astype("float32") if value.dtype == paddle.bfloat16 else value).numpy().copy()
    return np.array(value)


def to_state(value, dtype, shape, what):
    """``value`` (checked by _check_value) as a NumPy array of ``dtype`` (Paddle's NumPy form: uint16 bits
    for bfloat16) and exactly ``shape``, for ``set_value``. Float16 state from ``paddle.optimizer.RMSProp``
    loads into our float32 state and the other way; a finite value the target dtype cannot hold (1e300 into
    float32) raises ValueError instead of becoming inf."""
    shape = [int(d) for d in shape]
    if [int(d) for d in value.shape] != shape:
        raise ValueError(f"{what}: expected shape {shape} ({int(np.prod(shape))} elements), got "
                         f"{list(value.shape)}")
    src = _floats(value)
    if dtype in _NUMPY:
        out = src.astype(_NUMPY[dtype])
        back = out
    else:
        cast = paddle.to_tensor(src.astype(np.float32)).astype(dtype)
        out, back = cast.numpy(), cast.astype("float32").numpy()
    overflow = np.isfinite(src) & ~np.isfinite(back)
    if overflow.any():
        bad = src[overflow].flat[0]
        raise ValueError(f"{what}: expected values that {str(dtype).replace('paddle.', '')} can hold, got "
                         f"{float(bad)!r} (it would become {'inf' if bad > 0 else '-inf'})")
    return out.reshape(shape)


def kinds_of(opt):
    """The accumulator kinds ``opt`` keeps: Paddle's three, and the averages with ``use_ema``."""
    return KINDS + ((_ema.KIND,) if opt._use_ema else ())


def parse(opt, state, others_ok=False):
    """The accumulator entries of ``state`` (their values checked to be floating-point); another key raises
    ValueError unless ``others_ok``."""
    accs = "|".join(re.escape(opt._acc_name(kind)) for kind in kinds_of(opt))
    pattern = re.compile(rf"^(?P<target>.+)_(?P<acc>{accs})_\d+$")
    kind_of = {opt._acc_name(kind): kind for kind in kinds_of(opt)}
    entries = []
    for key, value in state.items():
        m = pattern.match(key)
        if m is None:
            if others_ok:
                continue
            raise ValueError(f"state_dict: unexpected entry {key!r} (expected accumulators named "
                             f"<param>_<{accs}>_<n>, 'master_weights', 'LR_Scheduler' and 'iterations')")
        _check_value(value, f"state_dict: {key}")
        entries.append(Entry(key, base_param_name(m["target"]), kind_of[m["acc"]], value))
    return entries


def _all_params(opt):
    groups = opt._param_groups or []
    if groups and isinstance(groups[0], dict):
        return [p for g in groups for p in g["params"]]
    return list(groups)


def load(opt, state_dict, pending):
    """Pair, check and write ``state_dict`` (see the module docstring). Nothing is written, the scheduler
    and the master weights included, unless every entry passes."""
    state = dict(state_dict)
    lr_state = state.pop("LR_Scheduler", None)
    iterations = _iterations(state.pop("iterations", None))
    masters = state.pop("master_weights", None) or {}
    if not isinstance(masters, dict):
        raise TypeError(f"state_dict: master_weights: expected a dict of parameter name -> tensor, got "
                        f"{type(masters).__name__}")
    entries = parse(opt, state)
    for name, value in masters.items():
        _check_value(value, f"state_dict: master weight of {name!r}")
    params = {p.name: p for p in _all_params(opt)}
    saved = {e.param: tuple(e.value.shape) for e in entries}
    saved.update({name: tuple(value.shape) for name, value in masters.items()})
    ours = _names.match(saved, {name: tuple(p.shape) for name, p in params.items()})

    writes, waiting, loaded = [], {}, set()
    for e in entries:
        pname = ours[e.param]
        param = params[pname]
        target = param if e.kind == _ema.KIND else opt._master_weights.get(pname, param)
        var = opt._accumulators.get(opt._acc_name(e.kind), {}).get(target.name)
        what = f"state_dict: {opt._acc_name(e.kind)!r} accumulator for parameter {pname!r}" + (
            f" (saved for {e.param!r})" if e.param != pname else "")
        if var is not None:
            writes.append((var, to_state(e.value, var.dtype, var.shape, what)))
        else:
            dtype = _ema.average_dtype(param) if e.kind == _ema.KIND else _expected_dtype(opt, param)
            waiting[(pname, e.kind)] = to_state(e.value, dtype, param.shape, what)
        loaded.add((pname, e.kind))
    if any(e.kind == _ema.KIND for e in entries) and iterations is None:
        raise ValueError("state_dict: expected an 'iterations' entry with the averages (use_ema: their decay "
                         "depends on the number of updates so far)")
    for kind in kinds_of(opt):
        for tname in opt._accumulators.get(opt._acc_name(kind), {}):
            pname = base_param_name(tname)
            if (pname, kind) not in loaded:
                raise ValueError(f"state_dict: no {opt._acc_name(kind)!r} accumulator for parameter {pname!r}")
    new_masters = []
    for name, value in masters.items():
        pname = ours[name]
        param = params[pname]
        what = f"state_dict: master weight of {pname!r}" + (f" (saved for {name!r})" if name != pname else "")
        if not (opt._multi_precision and opt._is_dtype_fp16_or_bf16(param.dtype)):
            raise ValueError(f"{what}: expected none (master weights are for float16/bfloat16 parameters with "
                             f"multi_precision=True; this one is {str(param.dtype).replace('paddle.', '')} with "
                             f"multi_precision={opt._multi_precision})")
        if pname in opt._master_weights:
            master = opt._master_weights[pname]
            writes.append((master, to_state(value, master.dtype, master.shape, what)))
        else:
            new_masters.append((pname, to_state(value, paddle.float32, param.shape, what)))

    if isinstance(opt._learning_rate, LRScheduler) and lr_state:
        opt._learning_rate.set_state_dict(lr_state)
    for var, value in writes:
        var.set_value(value)
    if iterations is not None:
        opt._iterations = iterations
    for pname, value in new_masters:
        master = paddle.to_tensor(value, dtype="float32")
        # Named like _create_master_weight's, so its accumulators map back to the parameter.
        master.name = paddle.utils.unique_name.generate(pname + "_fp32_master")
        opt._master_weights[pname] = master
    pending.values = waiting


def _iterations(value):
    """The ``iterations`` entry: None (absent) or an int >= 0 (a Python or NumPy int, or a 0-d integer tensor)."""
    if value is None:
        return None
    if isinstance(value, paddle.Tensor):
        value = value.numpy()
    array = np.asarray(value)
    if array.shape not in ((), (1,)) or array.dtype.kind not in "iu" or int(array.reshape(())) < 0:
        raise ValueError(f"state_dict: iterations: expected an int >= 0, got {value!r}")
    return int(array.reshape(()))


def _expected_dtype(opt, param):
    """The state dtype ``param``'s accumulators will have once created."""
    if opt._multi_precision and opt._is_dtype_fp16_or_bf16(param.dtype):
        return paddle.float32
    return state_dtype(opt, param)
