"""``rmsprop_ops.mindspore.RMSProp``: ``mindspore.nn.RMSProp`` running on the rmsprop_ops kernel.

The class holds MindSpore's hooks only; the pieces live in their own modules: the rule and the checks of
the arguments (``_rule``), the launches (``_plan``), the state buffers (``_state``), the compiled step
(``_step``), MindSpore's built-in ops as a fallback (``_fallback``), checkpoint conversion
(``_checkpoint``), the repr (``_describe``), the moving averages of the weights (``_ema``), translation to
and from other frameworks' state (``_translate``), recipes (``_recipe``) and rmsprop_ops schedules in the
graph (``_schedules``).
"""

from __future__ import annotations

import contextlib
import warnings

from mindspore import jit
from mindspore.nn.optim.optimizer import Optimizer, opt_init_args_register
from mindspore.ops import functional as F

from .._toolkit import ema as ema_rules
from . import _checkpoint, _ema, _translate
from ._describe import describe
from ._fallback import builtin_ops, builtin_step, fallback_reason
from ._op import kernel_available
from ._plan import plan_launches
from ._recipe import recipe_arguments
from ._rule import (MINDSPORE_DEFAULTS as _D, check_learning_rates, check_weight_decay_kind, kernel_only,
                    resolve_arguments, rule_from_arguments, state_kinds)
from ._schedules import as_mindspore_schedule
from ._sparse import dense_gradients
from ._state import flat_buffers, per_parameter_buffers
from ._step import check_call, check_gradients, kernel_step

__all__ = ["RMSProp"]


class RMSProp(Optimizer):
    r"""RMSProp with MindSpore's exact contract, updating each parameter group with one fused kernel launch.

    A drop-in replacement for :class:`mindspore.nn.RMSProp`: same signature, defaults, parameter groups,
    learning-rate and weight-decay kinds, errors, state names (``mean_square.*`` starting at ones,
    ``moment.*``, ``mean_grad.*``) and numerics. The update, per parameter (``g`` the gradient)::

        g   = (g + wd * w) / loss_scale         (wd skipped for names with 'beta'/'gamma' without groups)
        s   = decay * s + (1 - decay) * g^2
        mg  = decay * mg + (1 - decay) * g                    (centered)
        m   = momentum * m + lr * g / sqrt(s [- mg^2] + epsilon)
        w   = w - m

    On CPU (and on GPU with a CUDA build of rmsprop_ops and a GPU MindSpore) every group of parameters that
    shares a learning rate and dtype is updated by one launch of the ``rmsprop_ops`` custom op, in place.
    On a device without a kernel of ours (Ascend) the optimizer warns once and runs MindSpore's
    ``ApplyRMSProp`` / ``ApplyCenteredRMSProp`` instead (set ``RMSPROP_OPS_MS_FALLBACK=1`` to force that).

    ``flat_state=True`` keeps each launch's state in one 1-D Parameter per buffer (``mean_square.flat.<name of
    the group's first param>``, ...) instead of one per parameter, so a launch takes a few state inputs
    rather than two or three per parameter (see docs/mindspore.md). The numerics are the same; the
    checkpoint names are not nn.RMSProp's, so move state between the layouts (or to and from
    ``nn.RMSProp``) with :meth:`state_per_parameter` and :meth:`load_state_per_parameter`. Where the
    optimizer falls back to MindSpore's ops the state stays per parameter (with a warning).

    Args:
        params: list of Parameters, or of dicts with "params", "lr", "weight_decay",
            "grad_centralization", "order_params" (as in MindSpore).
        learning_rate: float, int, scalar or 1-D Tensor, Iterable, LearningRateSchedule or an
            ``rmsprop_ops.schedules`` object (computed in the graph). Default 0.1.
        decay: float in [0, 1] (MindSpore accepts any value >= 0; the core rejects > 1). Default 0.9.
        momentum: float >= 0. Default 0.0.
        epsilon: float > 0. Default 1e-10.
        use_locking: bool, only used by the fallback ops. Default False.
        centered: bool. Default False.
        loss_scale: float > 0 dividing the gradients. Default 1.0.
        weight_decay: float, int or a Cell (dynamic). Default 0.0.
        flat_state: bool, keyword only; one state buffer per launch rather than per parameter. Default False.
        convention: keyword only; a name of ``rmsprop_ops.CONVENTIONS`` (``"torch"``, ``"keras"``, ``"tf1"``,
            ...): its rule and its defaults of learning_rate, decay, momentum and epsilon; arguments passed
            keep their values, in these names or the convention's own (torch's ``lr``, ``alpha``, ``eps``).
            Default None: MindSpore's rule and defaults.
        initial_accumulator_value, eps_in_sqrt, lr_in_momentum, weight_decay_mode, maximize: keyword only;
            each rule field on its own (None: the convention's): where the mean square starts, ``sqrt(s +
            eps)`` or ``sqrt(s) + eps``, the learning rate inside or outside the momentum buffer, ``"l2"`` /
            ``"l1"`` / ``"decoupled"`` weight decay, ascending the objective (torch: the gradient negated
            before the weight decay).
        nesterov, bias_correction: keyword only; optax's options, computed by the core: Nesterov momentum,
            and the mean square (and mean gradient) divided by ``1 - decay^t``, ``t`` the update's number
            (the global step + 1, so a checkpoint with the global step resumes it). Both need the
            rmsprop_ops kernel (MindSpore's ops have neither). Default False.
        use_ema, ema_momentum, ema_overwrite_frequency, ema_schedule: keyword only; moving averages of the
            weights (``ema.<param name>``), Keras' options; ``ema_schedule`` ``"keras"``, ``"tf1"`` or
            ``"constant"`` (see :meth:`swap_ema_weights`).

    Differences from ``mindspore.nn.RMSProp`` (and from Paddle/Keras): none in behaviour by default. The
    mean square starts at ones as in MindSpore (Paddle and Keras start at zeros); ``decay > 1`` raises
    ValueError here; float16/bfloat16 params keep float32 state; epsilon is always inside the square root
    (MindSpore's CPU kernel puts it outside for all but the last ``n % 8`` elements of a plain update; see
    docs/mindspore.md).

    Example:
        >>> import mindspore as ms
        >>> from mindspore import nn
        >>> from rmsprop_ops.mindspore import RMSProp
        >>> net = nn.Dense(4, 2)
        >>> opt = RMSProp(net.trainable_params(), learning_rate=0.01, momentum=0.9)
        >>> step = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), opt)
        >>> opt  # doctest: +ELLIPSIS
        RMSProp(learning_rate=0.01, decay=0.9, momentum=0.9, ..., kernel='rmsprop_ops', launches=1, flat_state=False)
    """

    @opt_init_args_register
    def __init__(self, params, learning_rate=_D["learning_rate"], decay=_D["decay"], momentum=_D["momentum"],
                 epsilon=_D["epsilon"], use_locking=False, centered=False, loss_scale=_D["loss_scale"],
                 weight_decay=_D["weight_decay"], *, flat_state=False, convention=None,
                 initial_accumulator_value=None, eps_in_sqrt=None, lr_in_momentum=None, weight_decay_mode=None,
                 maximize=False, nesterov=False, bias_correction=False, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, ema_schedule="keras", **aliases):
        args = resolve_arguments(
            type(self).__name__,
            {"learning_rate": learning_rate, "decay": decay, "momentum": momentum, "epsilon": epsilon,
             "centered": centered, "weight_decay": weight_decay, "loss_scale": loss_scale},
            convention=convention, aliases=aliases,
            fields={"initial_accumulator_value": initial_accumulator_value, "eps_in_sqrt": eps_in_sqrt,
                    "lr_in_momentum": lr_in_momentum, "weight_decay_mode": weight_decay_mode,
                    "maximize": maximize, "nesterov": nesterov, "bias_correction": bias_correction})
        learning_rate = as_mindspore_schedule(args.learning_rate)
        super().__init__(learning_rate, params, args.weight_decay, args.loss_scale)
        self._rule = rule_from_arguments(self.cls_name, args, use_locking=use_locking, flat_state=flat_state)
        check_learning_rates(self.cls_name, self.learning_rate if self.is_group_lr else (self.learning_rate,))
        self.centered, self.momentum, self.epsilon, self.decay = (self._rule.centered, self._rule.momentum,
                                                                  self._rule.epsilon, self._rule.rho)
        self.use_kernel = fallback_reason(kernel_available()) is None
        if not self.use_kernel and kernel_only(self._rule):
            raise ValueError(f"For '{self.cls_name}', {', '.join(kernel_only(self._rule))} needs the rmsprop_ops "
                             "kernel, which this device has not: MindSpore's ApplyRMSProp computes MindSpore's "
                             "rule only.")
        check_weight_decay_kind(self, self._rule, args.weight_decay)
        self.flat_state = flat_state and self.use_kernel
        if flat_state and not self.use_kernel:
            warnings.warn("rmsprop_ops.mindspore.RMSProp: flat_state=True needs the rmsprop_ops kernel; the state "
                          "stays one Parameter per parameter", UserWarning, stacklevel=2)
        self._made_names = tuple(p.name for p in self._parameters)
        if self.use_kernel:
            self._plan = plan_launches(self, self._rule, args.weight_decay, self.flat_state)
        else:
            self.opt = builtin_ops(self._rule.centered, use_locking)
        for kind in state_kinds(self._rule):
            if self.flat_state:
                buffers = flat_buffers(self._parameters, self._plan, kind.prefix, kind.init)
            elif self.use_kernel:
                buffers = per_parameter_buffers(self._parameters, kind.prefix, kind.init)
            else:
                buffers = self._parameters.clone(prefix=kind.prefix, init=kind.init)
            setattr(self, kind.attr, buffers)
        self._ema = _ema.make_averages(self, use_ema, ema_momentum, ema_schedule, ema_overwrite_frequency)
        self._negate = self._rule.maximize and (not self.use_kernel or self._plan.negate)

    @classmethod
    def from_recipe(cls, params, recipe, *, steps_per_epoch=None, batch_size=None, **overrides):
        """An optimizer following a published recipe of :data:`rmsprop_ops.recipes.RECIPES` (the same data
        as ``rmsprop_ops.RMSProp.from_recipe``): its convention, hyper-parameters, learning-rate schedule (a
        ``LearningRateSchedule`` of the global step) and EMA.

        Args:
            params: as for the constructor. A flat list is split into groups of consecutive parameters when
                the recipe exempts 1-D parameters from weight decay (order kept).
            recipe: a recipe name or :class:`rmsprop_ops.recipes.Recipe`.
            steps_per_epoch: optimizer steps per epoch (the schedules are defined in epochs).
            batch_size: the batch the run uses, for recipes whose rate scales with it.
            **overrides: any constructor argument; explicit values win over the recipe's.
        """
        params, kwargs = recipe_arguments(params, recipe, steps_per_epoch, batch_size, overrides)
        return cls(params, **kwargs)

    def extend_repr(self):
        return describe(self)

    def state_per_parameter(self) -> dict:
        """The optimizer's state as ``nn.RMSProp`` names it, one NumPy copy per parameter and buffer.

        Keys are ``mean_square.<param name>``, ``moment.<param name>`` and (centered) ``mean_grad.<param
        name>``, in either state layout (prefixed like the state's Parameters when a Cell has prefixed
        them). Saved with the network's parameters this is a checkpoint ``nn.RMSProp`` (or this optimizer
        with the other layout) can load::

            ms.save_checkpoint([{"name": p.name, "data": p} for p in net.trainable_params()] +
                               [{"name": k, "data": ms.Tensor(v)} for k, v in opt.state_per_parameter().items()],
                               path)
        """
        return _checkpoint.state_per_parameter(self)

    def load_state_per_parameter(self, state, strict: bool = True) -> list:
        """Set the state from a mapping in :meth:`state_per_parameter`'s names (``nn.RMSProp``'s), e.g. the
        dict ``mindspore.load_checkpoint`` returns; keys of other parameters are ignored.

        Args:
            state: mapping of names to Tensors, Parameters or NumPy arrays shaped like their parameters.
            strict: when True (default) every state buffer of this optimizer must be in ``state``, and
                ``state`` must not hold a mean gradient of one of its parameters unless it is centered
                (the checkpoint of a centered optimizer); when False the missing ones keep their values
                and extra kinds are ignored.

        Returns the names that were loaded. Raises, before anything is written, TypeError (a value that is
        not a float array) or ValueError (a missing name, a shape that differs from the parameter's, a
        NaN, an infinity or a value beyond the state dtype's range such as 1e300 into float32, a negative
        mean square, a centered optimizer's state in a plain one).
        """
        return _checkpoint.load_state_per_parameter(self, state, strict)

    # ----------------------------------------------------------------------------- moving averages
    ema_momentum = property(lambda self: self._ema.decay, doc="The EMA decay (Keras' ema_momentum).")
    ema_overwrite_frequency = property(lambda self: self._ema.overwrite_frequency)
    ema_schedule = property(lambda self: self._ema.schedule)

    @contextlib.contextmanager
    def swap_ema_weights(self):
        """Evaluate with the moving averages: inside the ``with`` block the parameters hold their averages
        (exchanged in place, bit for bit) and a step is refused; on exit they are swapped back."""
        yield from _ema.swap(self)

    def finalize_variable_values(self) -> None:
        """Overwrite the parameters with their moving averages (Keras; a no-op without use_ema)."""
        _ema.overwrite(self)

    # ----------------------------------------------------------------------------- translation
    def export_state(self):
        """The state as a framework-free :class:`rmsprop_ops.translate.RMSPropState` (for torch ``RMSprop``,
        timm ``RMSpropTF``, Keras 3 or another rmsprop_ops optimizer); it records each parameter's learning
        rate for the next step."""
        return _translate.export_state(self)

    def import_state(self, state, *, learning_rate=None) -> None:
        """Load a :class:`rmsprop_ops.translate.RMSPropState` (e.g. ``translate.from_torch(sd)``). Momentum
        buffers are rescaled to this rule's lr placement with ``learning_rate`` (a number or one per
        parameter; default: this optimizer's rate for the first step after the load, at the state's step
        count); a buffer this optimizer does not keep, or lacks, is a ValueError. Everything is checked
        before the first write."""
        _translate.import_state(self, state, learning_rate)

    def __call__(self, *args, **kwargs):
        check_call(self.cls_name, args, kwargs)
        ema_rules.check_not_swapped(self._swap, "step")
        return super().__call__(*args, **kwargs)

    @jit
    def construct(self, gradients):
        check_gradients(self, gradients)
        gradients = self.flatten_gradients(gradients)
        gradients = dense_gradients(self.hyper_map, gradients, self._parameters)  # RowTensor (_sparse.py)
        if self.use_ema:
            gradients = _ema.guard(self, gradients)
        if self._negate:
            # maximize where the kernel cannot negate first: MindSpore's ops decay the weights (or run the
            # whole step) before the launch, and torch negates before its decay.
            gradients = self.hyper_map(F.neg, gradients)
        if self.use_kernel:
            done = kernel_step(self, gradients)
        else:
            done = builtin_step(self, gradients)
        if self.use_ema:
            return _ema.update(self, done)
        return done
