"""Moving averages of the weights (``use_ema``) for ``rmsprop_ops.paddle.RMSProp``.

The semantics are ``rmsprop_ops._toolkit.ema``'s, shared with the neutral optimizer: the decay of the
update made at ``iterations`` (updates before it) follows the schedule (``"keras"``: 0 at the first update,
which copies the weights, then ``ema_momentum``; ``"tf1"``: ``min(ema_momentum, (1 + n) / (10 + n))``;
``"constant"``), the average moves as ``avg = d * avg + (1 - d) * w`` (``avg -= (1 - d) * (avg - w)`` for
tf1), starting at the weights before the first update, and every ``ema_overwrite_frequency``-th update
copies the averages into the weights. The decay is computed in float64 and rounded once to the
average's dtype, as the neutral optimizer does, so both give the same numbers.

The averages are accumulators of kind ``"ema"`` (``<param>_ema_0``), one per trainable parameter, float32
for float16/bfloat16 parameters (a 0.9999 average cannot move in float16). Where a parameter has a float32
master weight, the master is averaged (and overwritten). Being accumulators, they are in ``state_dict()``
and are persistable variables of a static program (``paddle.static.save`` / ``load``).

* Dynamic mode: :func:`ensure` creates the averages from the weights before the first update, and
  :func:`update` moves them after every applied step (the optimizer counts ``iterations``).
* A static program: :func:`append` adds the update to the program after the optimizer's ops, with a
  persistable step counter (``<name>ema_iterations_0``) computing the decay on the device; each average is
  initialised from its parameter by the startup program (the pattern of Paddle's master weights). An
  overflow flag from ``paddle.static.amp`` leaves the averages and the counter as they were.
* Evaluation: :func:`swap` puts the averages in the weights' place (from the scope, in a static program)
  and the weights back afterwards, bit for bit; the masters are not touched.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np
import paddle
from paddle.base import unique_name
from paddle.framework import in_pir_mode

from .._toolkit import ema as ema_rules
from ._step_count import persistable_counter

__all__ = ["KIND", "average_dtype", "ensure", "update", "overwrite", "swap", "append", "StaticAverages"]

KIND = "ema"


def average_dtype(param):
    return paddle.float32 if param.dtype in (paddle.float16, paddle.bfloat16) else param.dtype


def _params(opt):
    groups = opt._param_groups or []
    params = [p for g in groups for p in g["params"]] if groups and isinstance(groups[0], dict) else list(groups)
    return [p for p in params if not p.stop_gradient]


def _averages(opt):
    return opt._accumulators.get(opt._acc_name(KIND), {})


def _source(opt, param):
    """What is averaged: the float32 master weight where there is one, else the parameter."""
    return opt._master_weights.get(param.name, param)


# ------------------------------------------------------------------------------------------- dynamic mode
def ensure(opt):
    """Create the averages of the parameters that have none, from their current values; returns the
    parameters that got one (a checkpoint loaded before the first step then fills them)."""
    have = _averages(opt)
    new = [p for p in _params(opt) if p.name not in have]
    with paddle.no_grad():
        for p in new:
            var = opt._add_accumulator(KIND, p, dtype=average_dtype(p), fill_value=0.0)
            var.set_value(_source(opt, p).astype(var.dtype))
    return new


def update(opt, ema, iterations):
    """One update of every average (the step made at ``iterations`` has been applied)."""
    d = ema_rules.decay_at(ema, iterations)
    factors = {}
    averages = _averages(opt)
    with paddle.no_grad():
        for p in _params(opt):
            avg = averages[p.name]
            src = _source(opt, p)
            if avg.dtype not in factors:
                factors[avg.dtype] = (paddle.to_tensor(d, dtype=avg.dtype), paddle.to_tensor(1.0 - d, dtype=avg.dtype))
            keep, take = factors[avg.dtype]
            w = src if src.dtype == avg.dtype else src.astype(avg.dtype)
            # in place, the neutral optimizer's operations in its order (three Paddle ops per parameter)
            if ema_rules.subtracts(ema):
                avg.subtract_((avg - w) * take)
            else:
                avg.multiply_(keep)
                avg.add_(w * take)
    if ema_rules.should_overwrite(ema, iterations):
        overwrite(opt)


def overwrite(opt):
    """Copy the averages into the weights (and their master weights)."""
    averages = _averages(opt)
    with paddle.no_grad():
        for p in _params(opt):
            avg = averages.get(p.name)
            if avg is None:
                continue
            master = opt._master_weights.get(p.name)
            if master is not None:
                master.set_value(avg.astype(master.dtype))
            p.set_value(avg.astype(p.dtype))


# ------------------------------------------------------------------------------------------- evaluation
@contextlib.contextmanager
def swap(opt, scope=None):
    """The averages in the weights' place inside the ``with`` block (see the module docstring): in ``scope``
    for an optimizer that built a static program."""
    if not opt._static_averages:
        averages = _averages(opt)
        pairs = [(p, averages[p.name]) for p in _params(opt) if p.name in averages]
        with paddle.no_grad():
            held = [p.detach().clone() for p, _ in pairs]
            for p, avg in pairs:
                p.set_value(avg.astype(p.dtype))
        try:
            yield
        finally:
            with paddle.no_grad():
                for (p, _), value in zip(pairs, held):
                    p.set_value(value)
        return
    scope = scope or paddle.static.global_scope()
    pairs = [(_tensor(scope, s.param), _tensor(scope, s.average)) for s in opt._static_averages]
    held = [np.array(t) for t, _ in pairs]
    for t, avg in pairs:
        _set(t, np.array(avg))
    try:
        yield
    finally:
        for (t, _), value in zip(pairs, held):
            _set(t, value)


def overwrite_static(opt, scope=None):
    """The static-program form of :func:`overwrite`: the averages into the weights, in ``scope``."""
    scope = scope or paddle.static.global_scope()
    for s in opt._static_averages:
        avg = np.array(_tensor(scope, s.average))
        for name in (s.param, s.master):
            if name is not None:
                _set(_tensor(scope, name), avg)


def _tensor(scope, name):
    var = scope.find_var(name)
    if var is None:
        raise ValueError(f"swap_ema_weights: the scope holds no variable {name!r}; run the startup program (and "
                         f"the program) in this scope first, or pass scope=")
    return var.get_tensor()


def _set(tensor, value):
    """Write ``value`` into ``tensor``, in the tensor's dtype (Paddle's NumPy form of bfloat16 is uint16 bits,
    which only Paddle can round to)."""
    dtype = np.array(tensor).dtype
    if value.dtype != dtype:
        if dtype == np.uint16:
            value = paddle.to_tensor(value.astype(np.float32)).astype("bfloat16").numpy()
        else:
            value = value.astype(dtype)
    place = tensor._place()
    if place.is_gpu_place():
        place = paddle.CUDAPlace(place.gpu_device_id())
    elif place.is_cpu_place():
        place = paddle.CPUPlace()
    tensor.set(value, place)


# ------------------------------------------------------------------------------------------- static programs
class StaticAverages(NamedTuple):
    """The variables of one parameter's average in a static program, by name."""

    param: str
    average: str
    master: str | None


def append(opt, ema, params, skip):
    """Append the averages' update of ``params`` to the program being built (after the optimizer's ops);
    ``skip``: the AMP overflow flag the update op reads, or None."""
    if paddle.base.dygraph.base.in_to_static_mode():
        raise NotImplementedError("use_ema: not available under paddle.jit.to_static; use dynamic mode or a "
                                  "static program built with minimize()")
    counter = persistable_counter(opt, "ema_iterations")
    # Only ops both IRs build (the legacy IR's paddle.minimum / logical_and fail in Paddle 3.3).
    zero, one = paddle.full([1], 0.0, "float64"), paddle.full([1], 1.0, "float64")
    decay = paddle.full([1], ema.decay, "float64")
    if ema.schedule == "keras":
        d = paddle.where(counter > zero, decay, zero)
    elif ema.schedule == "tf1":
        n = counter + 1.0
        warm = (n + 1.0) / (n + 10.0)
        d = paddle.where(warm < decay, warm, decay)
    else:
        d = decay
    applied = one
    if skip is not None:
        applied = one - paddle.cast(paddle.reshape(skip, [1]), "float64")
        d = paddle.where(applied > zero, d, one)  # an overflowed step leaves the averages as they were
    take64 = one - d
    if ema.overwrite_frequency:
        period = paddle.full([1], float(ema.overwrite_frequency), "float64")
        due = paddle.cast(paddle.remainder(counter + 1.0, period) == zero, "float64") * applied > zero
    factors = {}
    for p in params:
        if p.stop_gradient:
            continue
        master = opt._master_weights.get(p.name)
        src = p if master is None else master
        avg = _static_average(opt, p, src)
        if avg.dtype not in factors:
            factors[avg.dtype] = (paddle.cast(d, avg.dtype), paddle.cast(take64, avg.dtype))
        keep, take = factors[avg.dtype]
        w = src if src.dtype == avg.dtype else paddle.cast(src, avg.dtype)
        new = avg - (avg - w) * take if ema_rules.subtracts(ema) else avg * keep + w * take
        paddle.assign(new, output=avg)
        if ema.overwrite_frequency:
            out = paddle.where(due, new, w)
            paddle.assign(out if out.dtype == src.dtype else paddle.cast(out, src.dtype), output=src)
            if master is not None:
                paddle.assign(paddle.cast(out, p.dtype), output=p)
    paddle.assign(counter + applied, output=counter)


def _static_average(opt, param, src):
    """A persistable average of ``param`` initialised by the startup program from ``src`` (its value there),
    registered as an accumulator of kind KIND."""
    acc = opt._acc_name(KIND)
    name = unique_name.generate(f"{param.name}_{acc}")
    dtype = average_dtype(param)
    startup = paddle.static.default_startup_program()
    main = paddle.static.default_main_program()
    if in_pir_mode():
        with paddle.static.program_guard(startup):
            value = _startup_value(startup, src.name)
            init = paddle.cast(value, dtype)
            init.persistable = True
            paddle._pir_ops.set_persistable_value(init, name)
        with paddle.static.program_guard(main):
            point = paddle.pir.get_current_insertion_point()
            paddle.pir.reset_insertion_point_to_start()
            var = paddle.static.data(name, init.shape, init.dtype, paddle.base.core.Place())
            var.persistable = True
            paddle.pir.set_insertion_point(point)
    else:
        var = paddle.static.create_global_var(name=name, shape=param.shape, value=0.0, dtype=dtype, persistable=True)
        startup.global_block().append_op(type="cast", inputs={"X": [src]}, outputs={"Out": [var]},
                                         attrs={"in_dtype": src.dtype, "out_dtype": var.dtype})
    opt._opti_name_list.append(name)
    opt._accumulators.setdefault(acc, {})[param.name] = var
    master = opt._master_weights.get(param.name)
    opt._static_averages.append(StaticAverages(param.name, name, None if master is None else master.name))
    return var


def _startup_value(startup, name):
    for op in startup.global_block().ops:
        if op.name() == "builtin.set_parameter" and op.attrs()["parameter_name"] == name:
            return op.operand(0).source()
        if op.name() == "builtin.shadow_output" and op.attrs().get("output_name") == name:  # a master weight
            return op.operand(0).source()
    raise ValueError(f"use_ema: the startup program does not initialise {name!r}; build the program with "
                     f"paddle.static.program_guard(main, startup) and minimize() inside it")
