"""``rmsprop_ops.mindspore.experimental.RMSprop``: ``mindspore.experimental.optim.RMSprop`` on the rmsprop_ops
kernel.

MindSpore's torch-style optimizer (``mindspore.experimental.optim``, driven by
``mindspore.experimental.optim.lr_scheduler``) ports torch's ``RMSprop``: eps outside the square root, the
learning rate outside the momentum buffer, mean square from zeros, coupled weight decay, ``maximize``; one
``ApplyRMSProp``-free chain of MindSpore ops per parameter. This class *is* that optimizer (a subclass:
same constructor, checks, defaults, ``param_groups``, ``lrs`` Parameters the schedulers assign, state
Parameters ``mean_grad.*``, ``mean_square.*``, ``moment.*``), with the update replaced by one launch of the
rmsprop_ops kernel per parameter group and dtype, computing the ``torch`` convention of
:data:`rmsprop_ops.CONVENTIONS`. Where the kernel is not available (Ascend) MindSpore's own update runs.

Example:
    >>> import numpy as np, mindspore as ms
    >>> from mindspore.experimental.optim.lr_scheduler import StepLR
    >>> from rmsprop_ops.mindspore.experimental import RMSprop
    >>> w = ms.Parameter(ms.Tensor(np.ones(3, np.float32)), name="w")
    >>> opt = RMSprop([w], lr=0.01, momentum=0.9)
    >>> scheduler = StepLR(opt, step_size=2, gamma=0.5)
    >>> _ = opt((ms.Tensor(np.full(3, 0.5, np.float32)),))
    >>> _ = scheduler.step()
    >>> round(float(w.asnumpy()[0]), 5)
    0.9
"""

from __future__ import annotations

import dataclasses
import numbers

from mindspore import dtype as mstype
from mindspore import ops
from mindspore.experimental.optim import RMSprop as _MindSporeRMSprop

from .._conventions import resolve
from .._toolkit import grouping
from ._op import kernel_available, make_op
from ._rule import launch_config

__all__ = ["RMSprop"]

_HYPER = ("alpha", "eps", "momentum", "centered", "weight_decay", "maximize")


@dataclasses.dataclass(frozen=True)
class GroupLaunch:
    """One launch of the kernel for a parameter group: the positions it updates in the optimizer's
    parameter tuple, its config (the group's rule, ``maximize`` included: the kernel negates the gradients
    first, as MindSpore's class does before its weight decay) and primitive; ``centered`` (it takes the
    mean gradients) is the group's."""

    index: tuple
    config: object
    op: object
    centered: bool


def _check(cls_name, group) -> dict:
    """The group's hyper-parameters, checked where MindSpore does not check them (MindSpore's own checks,
    for negative values, ran in its constructor): types, NaN, ``alpha > 1``."""
    out = {}
    for name in _HYPER:
        value = group[name]
        if name in ("centered", "maximize"):
            if not isinstance(value, bool):
                raise TypeError(f"For {cls_name}, the {name} must be a bool, but got {type(value).__name__}.")
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"For {cls_name}, the {name} must be a float, but got {type(value).__name__}.")
        out[name] = value
    try:
        resolve("torch", rho=out["alpha"], epsilon=out["eps"], momentum=out["momentum"],
                weight_decay=out["weight_decay"])
    except ValueError as e:
        name, _, detail = str(e).partition(": ")
        name = {"rho": "alpha", "epsilon": "eps"}.get(name, name)
        raise ValueError(f"For {cls_name}, the {name} is out of range: {detail}.") from None
    return out


def _launches(opt, group_id, hyper) -> tuple:
    """The group's launches, one per dtype of its parameters."""
    rule = resolve("torch", rho=hyper["alpha"], epsilon=hyper["eps"], momentum=hyper["momentum"],
                   centered=hyper["centered"], maximize=hyper["maximize"])
    start, end = opt.group_start_id[group_id], opt.group_start_id[group_id + 1]
    params = opt.parameters[start:end]
    out = []
    for launch in grouping.plan_launches([str(p.dtype) for p in params]):
        index = tuple(start + i for i in launch.members)
        config = launch_config(rule, [float(hyper["weight_decay"])] * len(index), 1.0)
        out.append(GroupLaunch(index=index, config=config, op=make_op(len(index), hyper["centered"]),
                               centered=hyper["centered"]))
    return tuple(out)


def _pick(items, index):
    out = ()
    for i in index:
        out = out + (items[i],)
    return out


class RMSprop(_MindSporeRMSprop):
    """``mindspore.experimental.optim.RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
    momentum=0.0, centered=False, maximize=False)`` with its contract, updating each parameter group with
    one launch of the rmsprop_ops kernel per dtype (see the module docstring).

    Differences from MindSpore's class, all on inputs it accepts without checking: ``alpha > 1``, a NaN,
    a non-number hyper-parameter or a non-bool ``centered`` / ``maximize`` is a TypeError / ValueError naming
    it. With ``momentum=0`` the ``moment`` buffer holds the last step's ``g / denominator`` (MindSpore's stays
    zero; neither reads it, and a momentum turned on later starts from zero in both). A group's
    hyper-parameters changed in ``param_groups`` take effect at the next call in PYNATIVE_MODE (GRAPH_MODE
    compiles them into the step, as MindSpore's does).
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                         centered=centered, maximize=maximize)
        self.use_kernel = kernel_available()
        self._keys = [None] * len(self.param_groups)
        self._plans = ()
        self._refresh()

    def _refresh(self) -> None:
        """Rebuilds the launches of every group whose hyper-parameters changed (or that was added). A group
        whose momentum turns on starts from a zero buffer, as MindSpore's does: ours held ``g / d`` while
        the momentum was 0."""
        keys = [tuple(_check(self.cls_name, g).items()) for g in self.param_groups]
        if keys == self._keys and len(self._plans) == len(keys):
            return
        for group_id, (old, new) in enumerate(zip(self._keys, keys)):
            if old is not None and dict(old)["momentum"] == 0 and dict(new)["momentum"] > 0:
                for i in range(self.group_start_id[group_id], self.group_start_id[group_id + 1]):
                    ops.assign(self.moment[i], ops.zeros_like(self.moment[i]))
        self._plans = tuple(_launches(self, i, dict(k)) for i, k in enumerate(keys))
        self._keys = keys

    def add_param_group(self, param_group):
        """MindSpore's ``add_param_group``, and the new parameters' state (MindSpore's class makes state only
        in its constructor, so it cannot step a group added later)."""
        super().add_param_group(param_group)
        if hasattr(self, "mean_square"):
            from mindspore.common.parameter import ParameterTuple

            new = ParameterTuple(self.param_groups[-1]["params"])
            for attr in ("mean_grad", "mean_square", "moment"):
                setattr(self, attr, ParameterTuple(tuple(getattr(self, attr)) + tuple(new.clone(prefix=attr,
                                                                                              init="zeros"))))
            self._refresh()

    def __call__(self, *args, **kwargs):
        if self.use_kernel:
            self._refresh()
        return super().__call__(*args, **kwargs)

    def construct(self, gradients):
        if not self.use_kernel:
            return super().construct(gradients)
        for group_id in range(len(self._plans)):
            group = self.param_groups[group_id]
            lr = self.lrs[group_id]
            if isinstance(group.get("lr"), float):
                lr = self.op_cast(group.get("lr"), mstype.float32)
            for launch in self._plans[group_id]:
                grads = _pick(gradients, launch.index)
                state = _pick(self.mean_square, launch.index) + _pick(self.moment, launch.index)
                if launch.centered:
                    state = state + _pick(self.mean_grad, launch.index)
                launch.op(lr, launch.config, *_pick(self.parameters, launch.index), *grads, *state)
        return True
