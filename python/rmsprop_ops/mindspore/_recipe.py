"""``rmsprop_ops.mindspore.RMSProp.from_recipe``: a recipe of :mod:`rmsprop_ops.recipes` (the data the
neutral optimizer's ``from_recipe`` reads) as the MindSpore constructor's arguments."""

from __future__ import annotations

from .._conventions import get_convention
from .._toolkit.grouping import without_1d_decay
from ..recipes import get_recipe
from ._rule import ARGUMENT_OF

__all__ = ["recipe_arguments"]


def recipe_arguments(params, recipe, steps_per_epoch, batch_size, overrides: dict) -> tuple[list, dict]:
    """``(params, keyword arguments)`` of the MindSpore optimizer following ``recipe``; ``overrides`` (any
    constructor argument, in our names or the convention's) win over the recipe's values."""
    r = get_recipe(recipe)
    recipe_kw = r.optimizer_kwargs(steps_per_epoch, batch_size)
    kw = {ARGUMENT_OF.get(k, k): v for k, v in recipe_kw.items()}   # rho -> decay, loss_scale_factor -> loss_scale
    conv = get_convention(overrides.get("convention", kw["convention"]))
    for key in overrides:
        field = conv.aliases.get(key, key)
        kw.pop(ARGUMENT_OF.get(field, field), None)
        kw.pop(key, None)
    kw.update(overrides)
    return (without_1d_decay(params) if r.no_decay_1d else list(params)), kw
