"""One step of ``rmsprop_ops.mindspore.RMSProp`` on our kernel: graph functions called from the
optimizer's ``construct`` (compiled with it, in GRAPH_MODE and under ``@jit`` in PYNATIVE_MODE).

Every launch of a step is checked before the first one runs: shapes and dtypes of every launch when the
graph compiles (the ops' inference, ``_op._Infer``), and the learning rates, which exist only at run time,
by giving every launch a learning rate the kernel refuses as soon as one launch's would be refused
(:func:`refuse_together`). The step counter advances after the launches, so a refused step leaves every
Parameter of the optimizer as it was.
"""

from __future__ import annotations

from mindspore import dtype as mstype
from mindspore.ops import functional as F

__all__ = ["check_call", "check_gradients", "kernel_step", "refuse_together"]


def check_call(cls_name, args, kwargs):
    """A direct call from Python (a step inside a compiled cell never comes here): a graph sees NumPy arrays
    and None only as constants, so their type is checked here, where nn.RMSProp also raises TypeError (for
    None it raises AttributeError, which names nothing)."""
    from mindspore import Tensor

    grads = args[0] if len(args) == 1 and not kwargs else kwargs.get("gradients", ())
    if isinstance(grads, (tuple, list)):
        for k, g in enumerate(grads):
            if not isinstance(g, Tensor):
                raise TypeError(f"For '{cls_name}', the argument 'gradients[{k}]' must be a Tensor, but got "
                                f"{type(g).__name__}.")


def check_gradients(opt, gradients):
    """Checked while the graph compiles; the exception types are nn.RMSProp's for the same mistakes."""
    if not isinstance(gradients, tuple):
        raise RuntimeError(f"For '{opt.cls_name}', the argument 'gradients' must be a tuple of Tensors.")
    if len(gradients) != len(opt._parameters):
        raise RuntimeError(f"For '{opt.cls_name}', the argument 'gradients' must hold one Tensor per parameter: "
                           f"expected {len(opt._parameters)}, got {len(gradients)}.")


def _refused(lr):
    """True where the kernel would refuse ``lr`` (NaN, an infinity, a negative value)."""
    return F.logical_not(F.logical_and(lr >= 0.0, F.isfinite(lr)))


def refuse_together(lrs):
    """The learning rates of several launches, each replaced by the first refused value among them when
    there is one, so that the first launch refuses the step (naming the bad value) before any launch
    writes; when all are valid they come out unchanged."""
    found = _refused(lrs[0])
    bad = lrs[0]
    for lr in lrs[1:]:
        bad = F.select(found, bad, lr)
        found = F.logical_or(found, _refused(lr))
    out = ()
    for lr in lrs:
        out = out + (F.select(found, bad, lr),)
    return out


def _group_lr(opt, position):
    """The learning rate of the group holding parameter ``position``, for this step."""
    if opt.is_group_lr:
        if opt.dynamic_lr:
            return opt.learning_rate[position](opt.global_step).reshape(())
        return opt.learning_rate[position]
    if opt.dynamic_lr:
        return opt.learning_rate(opt.global_step).reshape(())
    return opt.learning_rate


def _launch_lrs(opt):
    lrs = ()
    for launch in opt._plan.launches:
        lrs = lrs + (_group_lr(opt, launch.lr_index),)
    # Without groups every launch reads the one learning rate, so the first launch refuses a bad one.
    if opt.is_group_lr and len(lrs) > 1:
        return refuse_together(lrs)
    return lrs


def _pick(items, index):
    out = ()
    for i in index:
        out = out + (items[i],)
    return out


def _launch_state(opt, c, index):
    """The state inputs of launch ``c`` in the op's order (mean squares, moments, mean gradients): its one
    buffer of each kind with flat state, else the buffers of its parameters."""
    if opt._plan.flat:
        state = (opt.ms[c], opt.moment[c])
        return state + (opt.mg[c],) if opt._rule.centered else state
    state = _pick(opt.ms, index) + _pick(opt.moment, index)
    return state + _pick(opt.mg, index) if opt._rule.centered else state


def _config(opt, launch):
    """The launch's config for this step: with bias correction its ``step`` entry (1 in the constant
    config) plus the global step, the update's number counted from 1."""
    if opt._rule.bias_correction:
        return launch.config + launch.step_mask * F.cast(opt.global_step, mstype.float64).reshape(())
    return launch.config


def kernel_step(opt, gradients):
    plan = opt._plan
    if plan.ms_decay:
        gradients = opt.decay_weight(gradients)
    gradients = opt.gradients_centralization(gradients)
    params = opt._parameters
    if plan.single:
        # With flat state the tuples hold one buffer each: launch 0's.
        launch = plan.launches[0]
        state = opt.ms + opt.moment + opt.mg if opt._rule.centered else opt.ms + opt.moment
        out = launch.op(opt.get_lr(), _config(opt, launch), *params, *gradients, *state)
        opt.assignadd(opt.global_step, opt.global_step_increase_tensor)
        return out
    lrs = _launch_lrs(opt)
    outs = ()
    for c in range(len(plan.launches)):
        launch = plan.launches[c]
        index = launch.index
        state = _launch_state(opt, c, index)
        outs = outs + (launch.op(lrs[c], _config(opt, launch), *_pick(params, index), *_pick(gradients, index), *state),)
    opt.assignadd(opt.global_step, opt.global_step_increase_tensor)
    return outs
