"""Moving averages of the weights for ``rmsprop_ops.mindspore.RMSProp(use_ema=True)``.

The semantics are ``rmsprop_ops._toolkit.ema``'s (the neutral optimizer's): the schedules (``"keras"``,
``"tf1"``, ``"constant"``), the overwrite frequency and the swap protocol. Here the averages are
Parameters ``ema.<param name>`` in the parameter's dtype, starting as copies of the parameters; the
compiled step updates them after the kernel's launches, with the decay of the update it just made (the
global step counts updates, so the update just made is number ``global_step - 1``). The decay is computed
in float64 and rounded once to the parameter's dtype, as the neutral optimizer rounds its Python floats.

For evaluation :func:`swap` exchanges parameters and averages in place (bit for bit). While they are
swapped a step is refused: a direct call by ``RMSProp.__call__``, a step inside a compiled training cell by
an assertion on the ``ema_swapped`` flag, which every launch of the step depends on.
"""

from __future__ import annotations

from mindspore import Parameter, Tensor
from mindspore import dtype as mstype
from mindspore import ops
from mindspore.ops import composite as C
from mindspore.ops import functional as F
from mindspore.ops import operations as P

from .._toolkit import ema as ema_rules
from .._toolkit.checks import flag

__all__ = ["make_averages", "guard", "update", "swap", "overwrite"]

_update_average = C.MultitypeFuncGraph("rmsprop_ops_ema_update")


@_update_average.register("Bool", "Tensor", "Tensor", "Tensor", "Tensor")
def _average(subtracts, decay, rest, average, param):
    d = F.cast(decay, average.dtype)
    r = F.cast(rest, average.dtype)
    new = average - r * (average - param) if subtracts else average * d + r * param
    return F.assign(average, new)


@_update_average.register("Bool", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _average_and_overwrite(subtracts, decay, rest, now, average, param):
    d = F.cast(decay, average.dtype)
    r = F.cast(rest, average.dtype)
    new = average - r * (average - param) if subtracts else average * d + r * param
    F.assign(average, new)
    return F.assign(param, F.select(now, new, param))


def make_averages(opt, use_ema, ema_momentum, ema_schedule, ema_overwrite_frequency):
    """Validates the EMA arguments (always, as the neutral optimizer does) and, with ``use_ema``, gives
    ``opt`` its averages, the swap flag and the graph constants. Returns the :class:`ema_rules.EMA`."""
    opt.use_ema = flag("use_ema", use_ema)
    ema = ema_rules.make_ema(ema_momentum, ema_schedule, ema_overwrite_frequency)
    opt._swap = ema_rules.Swap()
    if opt.use_ema:
        opt.ema = opt._parameters.clone(prefix="ema", init="same")
        opt.ema_swapped = Parameter(Tensor(False, mstype.bool_), name="ema_swapped", requires_grad=False)
        opt._ema_decay = Tensor(ema.decay, mstype.float64)
        opt._ema_assert = P.Assert()
    return ema


def guard(opt, gradients):
    """``gradients``, made to depend on the assertion that the averages are not swapped in: every launch of
    the step reads them, so none runs while they are."""
    ok = opt._ema_assert(F.logical_not(opt.ema_swapped), [opt.global_step])
    return F.depend(gradients, ok)


def _decay(opt, ema):
    """The decay of the update just made (``_toolkit.ema.decay_at``), and ``1 - decay``, in float64."""
    done = F.cast(opt.global_step, mstype.float64)   # updates made, this one included
    if ema.schedule == "keras":
        d = F.select(done == 1.0, opt._ema_decay * 0.0, opt._ema_decay)
    elif ema.schedule == "tf1":
        d = F.minimum(opt._ema_decay, (1.0 + done) / (10.0 + done))
    else:
        d = opt._ema_decay
    return d, 1.0 - d


def update(opt, done):
    """The averages' update after a step (``done``: the step's outputs, so that it follows the launches)."""
    ema = opt._ema
    params = F.depend(opt._parameters, done)
    d, rest = _decay(opt, ema)
    subtracts = ema_rules.subtracts(ema)
    if ema.overwrite_frequency:
        now = F.floormod(opt.global_step, ema.overwrite_frequency) == 0
        return opt.hyper_map(F.partial(_update_average, subtracts, d, rest, now), opt.ema, params)
    return opt.hyper_map(F.partial(_update_average, subtracts, d, rest), opt.ema, params)


def _exchange(opt) -> None:
    for p, a in zip(opt._parameters, opt.ema):
        held = p.value().copy()
        ops.assign(p, a)
        ops.assign(a, held)


def swap(opt):
    """Generator of ``RMSProp.swap_ema_weights``: the averages stand in the parameters until it resumes."""
    if not opt.use_ema:
        raise ValueError("swap_ema_weights: expected an optimizer with use_ema=True, got use_ema=False")
    opt._swap = ema_rules.begin_swap(opt._swap)
    _exchange(opt)
    ops.assign(opt.ema_swapped, Tensor(True, mstype.bool_))
    try:
        yield opt
    finally:
        _exchange(opt)
        ops.assign(opt.ema_swapped, Tensor(False, mstype.bool_))
        opt._swap = ema_rules.end_swap(opt._swap)


def overwrite(opt) -> None:
    """Copies the averages into the parameters (Keras' ``finalize_variable_values``)."""
    ema_rules.check_not_swapped(opt._swap, "finalize_variable_values")
    if opt.use_ema:
        for p, a in zip(opt._parameters, opt.ema):
            ops.assign(p, a)
