"""``RMSProp.from_recipe``: a published recipe of ``rmsprop_ops.recipes`` as the Paddle optimizer's arguments.

The recipe is data (convention, hyper-parameters, schedule, EMA, weight-decay exemptions, each with its
source); this module only maps it onto the Paddle constructor, as the neutral optimizer's ``from_recipe``
does: the schedule (a ``rmsprop_ops.schedules`` object) becomes the optimizer's
:class:`~rmsprop_ops.paddle.ScheduleLR`, ``opt.lr_scheduler``, stepped once per optimizer step;
1-D parameters go into a group without weight decay where the recipe exempts them, and keyword
overrides win over the recipe's values. An option the Paddle optimizer does not have (a static
``loss_scale_factor``: use ``paddle.amp.GradScaler`` in Paddle) is refused by name unless overridden
with None.
"""

from __future__ import annotations

from .. import _conventions as conventions
from ..recipes import get_recipe

__all__ = ["recipe_arguments"]

# Recipe arguments the Paddle optimizer has no argument for, and what to use in Paddle instead.
_ELSEWHERE = {"loss_scale_factor": "paddle.amp.GradScaler(init_loss_scaling=..., use_dynamic_loss_scaling=False) "
                                   "around the optimizer"}


def _without_1d_decay(parameters):
    """A flat list of parameters as two groups: 1-D parameters without weight decay, and the rest."""
    if parameters is None or not isinstance(parameters, (list, tuple)) or not parameters \
            or isinstance(parameters[0], dict):
        return parameters
    flat = [p for p in parameters if len(p.shape) <= 1]
    rest = [p for p in parameters if len(p.shape) > 1]
    groups = ([{"params": rest}] if rest else []) + ([{"params": flat, "weight_decay": 0.0}] if flat else [])
    return groups or parameters


def recipe_arguments(parameters, recipe, steps_per_epoch, batch_size, overrides):
    """(parameters, constructor keyword arguments) for ``recipe``; see the module docstring."""
    r = get_recipe(recipe)
    kw = r.optimizer_kwargs(steps_per_epoch, batch_size)
    conv = conventions.get_convention(overrides.get("convention", kw["convention"]))
    for key in overrides:
        kw.pop(conv.aliases.get(key, key), None)
    kw.update(overrides)
    for key, instead in _ELSEWHERE.items():
        if key in kw and kw.pop(key) is not None:
            raise ValueError(f"{key}: the {r.name!r} recipe sets {key}, which rmsprop_ops.paddle.RMSProp has no "
                             f"argument for; use {instead}, and pass {key}=None to from_recipe")
    if r.no_decay_1d:
        parameters = _without_1d_decay(parameters)
    return parameters, kw
