"""The methods ``rmsprop_ops.paddle.RMSProp`` has beyond Paddle's optimizer: the rule it resolved, moving
averages of the weights (swap and finalize), checkpoint translation, a static program's flat state in
Paddle's names, and recipes. Each delegates to its module (``_ema``, ``_translate``, ``_static_state``,
``_recipe``); the state they read is the optimizer's own."""

from __future__ import annotations

import contextlib
import dataclasses

from paddle.base import framework
from paddle.optimizer.lr import LRScheduler

from .._toolkit import ema as ema_rules
from . import _ema, _static_state, _translate
from ._recipe import recipe_arguments

__all__ = ["ConventionMethods"]


class ConventionMethods:
    """Mixed into ``RMSProp`` (before ``paddle.optimizer.Optimizer``)."""

    @classmethod
    def from_recipe(cls, parameters, recipe, *, steps_per_epoch=None, batch_size=None, **overrides):
        """An optimizer following a published recipe of ``rmsprop_ops.recipes.RECIPES`` (its convention,
        hyper-parameters, schedule and EMA); see ``_recipe``.

        Args:
            parameters: as for the constructor; a flat list is split into a group of 1-D parameters without
                weight decay and one of the rest when the recipe exempts 1-D parameters.
            recipe: a recipe name or ``rmsprop_ops.recipes.Recipe``.
            steps_per_epoch: optimizer steps per epoch (the schedules are defined in epochs).
            batch_size: the batch the run uses, for recipes whose rate scales with it.
            **overrides: any constructor argument; explicit values win over the recipe's.

        The learning rate is ``opt.lr_scheduler`` (a ``ScheduleLR``): call its ``step()`` after every
        optimizer step.
        """
        parameters, kw = recipe_arguments(parameters, recipe, steps_per_epoch, batch_size, overrides)
        return cls(parameters=parameters, **kw)


    eps_in_sqrt = property(lambda self: self._rule.eps_in_sqrt, doc="eps inside the root (rule field).")
    lr_in_momentum = property(lambda self: self._rule.lr_in_momentum, doc="lr inside the momentum buffer.")
    initial_accumulator_value = property(lambda self: self._rule.initial_accumulator_value,
                                         doc="The value the mean square starts at.")
    weight_decay_mode = property(lambda self: self._rule.resolved.weight_decay_mode,
                                 doc="What a float weight_decay means: 'l2', 'l1' or 'decoupled'.")
    use_ema = property(lambda self: self._use_ema, doc="Whether moving averages of the weights are kept.")
    ema_momentum = property(lambda self: self._ema.decay)
    ema_overwrite_frequency = property(lambda self: self._ema.overwrite_frequency)
    ema_schedule = property(lambda self: self._ema.schedule)

    @property
    def rule(self):
        """The resolved rule (``rmsprop_ops._conventions.Rule``): every field and hyper-parameter default."""
        return dataclasses.replace(self._rule.resolved, learning_rate=self._learning_rate)

    @property
    def lr_scheduler(self):
        """The ``LRScheduler`` the learning rate follows (step it after every step), or None."""
        return self._learning_rate if isinstance(self._learning_rate, LRScheduler) else None

    @property
    def iterations(self) -> int:
        """Updates applied in dynamic mode. Under ``paddle.amp.GradScaler`` a skipped update is counted unless
        ``use_ema`` or ``bias_correction`` (only then does the optimizer read the overflow flag on the host:
        the averages' decay and the bias correction follow the count)."""
        return self._iterations

    def swap_ema_weights(self, scope=None):
        """Evaluate with the moving averages: inside the ``with`` block the parameters hold their averages,
        outside they hold their own values again, bit for bit. Dynamic mode refuses ``step()`` inside;
        for a static program the values are exchanged in ``scope`` (default the global scope), where the
        training program must not run inside the block."""
        if not self._use_ema:
            raise ValueError("swap_ema_weights: expected an optimizer with use_ema=True, got use_ema=False")
        return self._swapped(scope)

    @contextlib.contextmanager
    def _swapped(self, scope):
        self._swap = ema_rules.begin_swap(self._swap)
        try:
            with _ema.swap(self, scope):
                yield self
        finally:
            self._swap = ema_rules.end_swap(self._swap)

    def finalize_variable_values(self, scope=None):
        """Overwrite the parameters (and master weights) with their moving averages, as Keras does at the end
        of training; a no-op without ``use_ema``. ``scope``: as for :meth:`swap_ema_weights`."""
        ema_rules.check_not_swapped(self._swap, "finalize_variable_values")
        if not self._use_ema:
            return
        if self._static_averages:
            _ema.overwrite_static(self, scope)
        else:
            _ema.overwrite(self)

    @framework.dygraph_only
    def state_dict(self):
        """``paddle.optimizer.Optimizer.state_dict``; with ``use_ema`` also the averages, and with ``use_ema``
        or ``bias_correction`` the update count ``iterations``."""
        sd = super().state_dict()
        if self._use_ema or self._rule.resolved.bias_correction:
            sd["iterations"] = self._iterations
        return sd

    @framework.dygraph_only
    def export_state(self, *, transpose=()):
        """The state as a framework-free ``rmsprop_ops.translate.RMSPropState`` (for torch, timm, Keras, MXNet
        or the other front ends); see ``_translate``."""
        return _translate.export_state(self, transpose)

    @framework.dygraph_only
    def import_state(self, state, *, learning_rate=None, transpose=()):
        """Load a ``rmsprop_ops.translate.RMSPropState``: exact, or a ValueError naming what cannot map
        (nothing is written then); see ``_translate``."""
        ema_rules.check_not_swapped(self._swap, "import_state")
        _translate.import_state(self, state, learning_rate, transpose)

    @framework.static_only
    def state_per_parameter(self, scope=None):
        """A static program's state in ``paddle.optimizer.RMSProp``'s names (``<param>_mean_square_0``, ...),
        one NumPy array per parameter and kind, read from ``scope`` (default: the global scope). With
        ``flat_state=True`` the program's variables are flat buffers, which Paddle's RMSProp cannot load;
        this is what a program built with it would hold. Without flat buffers: empty (the program's
        variables already have those names)."""
        return _static_state.per_parameter(self, scope)

    @framework.static_only
    def load_state_per_parameter(self, state, scope=None):
        """Write ``state`` (``state_per_parameter``'s names, e.g. ``paddle.static.load_program_state`` of a
        checkpoint taken with ``paddle.optimizer.RMSProp``; other keys ignored) into a static program's flat
        buffers in ``scope``, paired and checked as ``set_state_dict`` does before anything is written.
        Returns the keys loaded."""
        return _static_state.load_per_parameter(self, state, scope)
