"""``rmsprop_ops.RMSProp``: the framework-neutral optimizer, composed of the small pieces next to it."""

from __future__ import annotations

import contextlib

import numpy as np

from .._conventions import canonical_name, get_convention, resolve
from .._rows_optimizer import RowsBook
from .._toolkit import ema as ema_rules
from .._toolkit.grouping import split_groups, without_1d_decay
from .._toolkit.checks import flag
from . import averages, checkpoint
from .arrays import MemoryMap, as_view, check_overlaps, check_param, grad_list, read_grads
from .gradients import gradient_options, prepare
from .groups import GROUP_KEYS, group_canonical, group_hyper, lr_function
from .launches import check_rate, launch_calls, make_plans, make_slots, run_calls

__all__ = ["RMSProp"]

_RULE_KEYWORDS = ("learning_rate", "rho", "momentum", "epsilon", "centered", "weight_decay", "eps_in_sqrt",
                  "initial_accumulator_value", "lr_in_momentum", "weight_decay_mode", "clip_after_weight_decay",
                  "maximize", "nesterov", "bias_correction")
# Rule fields whose arithmetic only the core does (registry attributes of the dense ops).
_CORE_ONLY = ("nesterov", "bias_correction")


class RMSProp:
    r"""RMSProp over NumPy / CPU DLPack arrays, updated in place through the multi-tensor core.

    One :func:`rmsprop_ops.rmsprop_multi_` call per step updates every tensor (one call per launch
    of tensors whose rho / momentum / epsilon / centered / clipping differ; learning rates and weight
    decays may differ per tensor inside a call).

    The update, in order (Keras 3's order for its options, then the core's rule)::

        grads that are None skip their param this step (Keras 3; its state is kept)
        skip the whole step if skip_nonfinite and a gradient given or applied holds inf/NaN  (counted)
        g  = -g (maximize);  g = g / loss_scale_factor
        gradient_accumulation_steps = N: accumulate; every N-th call g = (g + acc) / N, else stop here
        g  = clip(g)   clipnorm (per tensor) | global_clipnorm | clipvalue       (Keras)
        lr = learning_rate(step) * lr_mult     step = number of calls so far (Keras counting)
        core: g = rescale_grad * g; clip_gradient; + wd*p (coupled) ...; ms = rho*ms + (1-rho)*g^2
              d = sqrt(ms + eps) | sqrt(ms) + eps;  p -= lr*wd*p (decoupled);  momentum;  clip_weights
        EMA of the weights (use_ema), overwritten into them every ema_overwrite_frequency steps

    Every check of a step (grads, learning rates from schedules, finiteness) passes before its first
    write: a refused step changes no param, state buffer, accumulator, average or counter.

    Args:
        params: a list of arrays, or a list of dicts ``{"params": [...], **overrides}`` (parameter
            groups; overrides among learning_rate (or lr), rho, momentum, epsilon, centered,
            weight_decay, clip_gradient, clip_weights, lr_mult, wd_mult). Params must not share memory.
        convention: a key of :data:`rmsprop_ops.CONVENTIONS`: it sets eps placement, the accumulator's
            initial value, lr placement, weight-decay kind and the defaults of learning_rate, rho,
            momentum, epsilon. Every one can be overridden by keyword (``eps_in_sqrt``,
            ``initial_accumulator_value``, ``lr_in_momentum``, ``weight_decay_mode``, ...); explicitly
            passed values always keep their values. The framework's own names are accepted for its
            convention (torch: ``lr``, ``alpha``, ``eps``; MindSpore: ``decay``, ``loss_scale``; ...).
        learning_rate: float, a schedule from :mod:`rmsprop_ops.schedules`, or any callable of the step.
        rho, momentum, epsilon, centered: the usual (torch calls rho ``alpha``, MindSpore ``decay``).
        weight_decay: coefficient (None or 0 disables); its kind comes from the convention.
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency,
        loss_scale_factor, gradient_accumulation_steps: Keras 3's options, with Keras' semantics.
        ema_schedule: ``"keras"`` (default), ``"tf1"`` (``tf.train.ExponentialMovingAverage`` with
            ``num_updates``, as the TF recipes use it) or ``"constant"``; see ``_toolkit/ema.py``.
        rescale_grad, clip_gradient, clip_weights: MXNet's options (rescale first, clip elementwise).
        skip_nonfinite: skip (and count in :attr:`skipped_steps`) a step whose gradients hold inf/NaN.
        maximize: ascend the objective (torch's ``maximize``).
        sparse_mode: what a row-sparse gradient (:class:`rmsprop_ops.RowGrad`, or ``(indices, values)``) does
            to the rows it leaves out (also a group key): "auto" (default) catches them up when next touched
            where that gives the dense numbers (no momentum, weight decay or ``clip_weights``) and steps
            every row otherwise; "dense" always steps every row; "exact" and "lazy" always catch up ("lazy"
            also with momentum, its parameters lagging between touches). See ``docs/sparse.md``. When the
            gradient options work on gradients in NumPy (clipping, accumulation, skip_nonfinite, maximize),
            or with ``nesterov`` / ``bias_correction`` (which the rows' catch-up does not model), a
            row-sparse gradient is made dense first.
        nesterov, bias_correction: optax's options (``optax.rmsprop``), applied by the core's rule;
            ``bias_correction`` counts the updates applied, as optax does.

    Example:
        >>> import numpy as np, rmsprop_ops
        >>> var1 = np.array([10.0], np.float32)
        >>> opt = rmsprop_ops.RMSProp([var1], convention="keras", learning_rate=0.1)
        >>> opt.step([var1.copy()])          # d(var1^2 / 2) / d(var1) = var1
        True
        >>> round(float(var1[0]), 6)
        9.683772
    """

    def __init__(self, params, *, convention="keras", learning_rate=None, rho=None, momentum=None, epsilon=None,
                 centered=None, weight_decay=None, eps_in_sqrt=None, initial_accumulator_value=None,
                 lr_in_momentum=None, weight_decay_mode=None, clip_after_weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, ema_schedule="keras", loss_scale_factor=None,
                 gradient_accumulation_steps=None, rescale_grad=1.0, clip_gradient=None, clip_weights=None,
                 skip_nonfinite=False, maximize=False, nesterov=False, bias_correction=False, sparse_mode="auto",
                 **aliases):
        conv = get_convention(convention)
        self._rows = RowsBook(sparse_mode)
        explicit = {"learning_rate": learning_rate, "rho": rho, "momentum": momentum, "epsilon": epsilon,
                    "centered": centered, "weight_decay": weight_decay, "eps_in_sqrt": eps_in_sqrt,
                    "initial_accumulator_value": initial_accumulator_value, "lr_in_momentum": lr_in_momentum,
                    "weight_decay_mode": weight_decay_mode, "clip_after_weight_decay": clip_after_weight_decay,
                    "maximize": maximize, "nesterov": nesterov, "bias_correction": bias_correction}
        other = {"loss_scale_factor": loss_scale_factor}
        for key, value in aliases.items():
            name = canonical_name(conv, key, accepted=set(explicit) | set(other), where="RMSProp")
            target = explicit if name in explicit else other
            if name not in target:
                raise TypeError(f"RMSProp: unexpected keyword {key!r} ({name} is not an argument here)")
            if target[name] is not None and not (target[name] is False and name in ("maximize", *_CORE_ONLY)):
                raise TypeError(f"RMSProp: {name} given twice (as {name} and as {conv.name}'s {key})")
            target[name] = value
        self.convention = conv
        self.rule = resolve(conv, **explicit)
        self._core_extra = self._core_only_fields()
        self._gradient = gradient_options(
            clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm,
            loss_scale_factor=other["loss_scale_factor"], gradient_accumulation_steps=gradient_accumulation_steps,
            skip_nonfinite=skip_nonfinite, maximize=self.rule.maximize, rescale_grad=rescale_grad)
        self.use_ema = flag("use_ema", use_ema)
        self._ema = ema_rules.make_ema(ema_momentum, ema_schedule, ema_overwrite_frequency)
        self._build(params, clip_gradient, clip_weights)
        self._iterations = 0
        self.skipped_steps = 0
        self._swap = ema_rules.Swap()

    @classmethod
    def from_recipe(cls, params, recipe, *, steps_per_epoch=None, batch_size=None, **overrides):
        """An optimizer following a published recipe of :data:`rmsprop_ops.recipes.RECIPES`.

        Args:
            params: as for the constructor. A flat list is split into runs of consecutive params when
                the recipe exempts 1-D params from weight decay (order kept, so grads line up).
            recipe: a recipe name or :class:`rmsprop_ops.recipes.Recipe`.
            steps_per_epoch: optimizer steps per epoch (the schedules are defined in epochs).
            batch_size: the batch the run uses, for recipes whose rate scales with it.
            **overrides: any constructor argument; explicit values win over the recipe's.
        """
        from ..recipes import get_recipe

        r = get_recipe(recipe)
        kw = r.optimizer_kwargs(steps_per_epoch, batch_size)
        conv = get_convention(overrides.get("convention", kw["convention"]))
        for key in overrides:
            kw.pop(conv.aliases.get(key, key), None)
        kw.update(overrides)
        if r.no_decay_1d:
            params = without_1d_decay(params)
        return cls(params, **kw)

    def _core_only_fields(self) -> dict:
        """The rule fields only the core's kernel applies (each a registry attribute), where set."""
        return {name: True for name in _CORE_ONLY if getattr(self.rule, name)}

    def _build(self, params, clip_gradient, clip_weights):
        groups, members = split_groups(params, accepted=GROUP_KEYS, canonical=group_canonical(self.convention))
        r = self.rule
        defaults = {"learning_rate": r.learning_rate, "rho": r.rho, "momentum": r.momentum, "epsilon": r.epsilon,
                    "centered": r.centered, "weight_decay": r.weight_decay, "clip_gradient": clip_gradient,
                    "clip_weights": clip_weights, "lr_mult": 1.0, "wd_mult": 1.0,
                    "sparse_mode": self._rows.sparse_mode}
        self.param_groups = []
        for g in groups:
            hp = group_hyper(g, r, defaults, len(groups))
            hp["params"] = [members[i].param for i in g.members]
            self.param_groups.append(hp)
        self._names = [m.name for m in members]
        self._owners = [m.group for m in members]
        self._views = [check_param(m.name, as_view(m.name, m.param)) for m in members]
        self._memory = MemoryMap(self._views, self._names)
        member_hp = [self.param_groups[m.group] for m in members]
        self._slots = make_slots(self._views, member_hp, r)
        self._plans = make_plans(self._views, member_hp, [m.group for m in members], r, self._slots)
        self._lr_fns = [lr_function(g["learning_rate"]) for g in self.param_groups]
        self._single_launch = (len(self._plans) == 1 and self._plans[0].covers_all
                               and not self._gradient.python_side)
        self._averages = [v.copy() for v in self._views] if self.use_ema else None
        self._acc = [np.zeros_like(v) for v in self._views] if self._gradient.accumulation_steps else None

    # ----------------------------------------------------------------------------------- options
    eps_in_sqrt = property(lambda self: self.rule.eps_in_sqrt, doc="eps inside the root (rule field).")
    lr_in_momentum = property(lambda self: self.rule.lr_in_momentum, doc="lr inside the momentum buffer.")
    initial_accumulator_value = property(lambda self: self.rule.initial_accumulator_value)
    weight_decay_mode = property(lambda self: self.rule.weight_decay_mode)
    clip_after_weight_decay = property(lambda self: self.rule.clip_after_weight_decay)
    maximize = property(lambda self: self.rule.maximize)
    clipnorm = property(lambda self: self._gradient.clipnorm)
    clipvalue = property(lambda self: self._gradient.clipvalue)
    global_clipnorm = property(lambda self: self._gradient.global_clipnorm)
    loss_scale_factor = property(lambda self: self._gradient.loss_scale_factor)
    gradient_accumulation_steps = property(lambda self: self._gradient.accumulation_steps)
    rescale_grad = property(lambda self: self._gradient.rescale_grad)
    skip_nonfinite = property(lambda self: self._gradient.skip_nonfinite)
    ema_momentum = property(lambda self: self._ema.decay)
    ema_overwrite_frequency = property(lambda self: self._ema.overwrite_frequency)
    ema_schedule = property(lambda self: self._ema.schedule)

    @property
    def iterations(self) -> int:
        """Optimizer updates so far (Keras: calls // gradient_accumulation_steps)."""
        return self._iterations // (self._gradient.accumulation_steps or 1)

    @property
    def calls(self) -> int:
        """step() calls that were not skipped (what schedules see, as in Keras)."""
        return self._iterations

    def learning_rates(self, step=None) -> list[float]:
        """The learning rate of every group at ``step`` (default: the next step)."""
        step = self._iterations if step is None else step
        return [float(fn(step)) for fn in self._lr_fns]

    # ----------------------------------------------------------------------------------- stepping
    def step(self, grads) -> bool:
        """One optimizer step; updates the params (and this optimizer's state) in place.

        Args:
            grads: one array per param, in the order the params were given (groups flattened); None
                skips that param this step (Keras 3: its state is kept; at least one must be given); for a
                param of rows also a :class:`rmsprop_ops.RowGrad` ``(indices, values)``.

        Returns:
            True if the step was applied (or accumulated), False if skipped for inf/NaN gradients.
        """
        ema_rules.check_not_swapped(self._swap, "step")
        # the rows' catch-up models neither nesterov nor bias correction: such steps take dense gradients
        densify = self._gradient.python_side or bool(self._core_extra)
        gs = self._read(self._rows.normalize(self, grads, densify=densify))
        prepared = prepare(self._gradient, gs, self._acc, self._iterations)
        if prepared.skip:
            self.skipped_steps += 1
            return False
        calls, applied, rows = [], prepared.grads, None
        if prepared.applies:
            step = self._iterations
            rates = np.asarray([check_rate(fn(step), gi, step) for gi, fn in enumerate(self._lr_fns)], np.float64)
            # row-sparse gradients: validated here, applied after the launches (None in ``applied``)
            applied, rows = self._rows.split(self, prepared.grads, rates)
            calls = launch_calls(self._plans, rates, [g is not None for g in applied], self._names)
            if len(calls) > 1 or (calls and calls[0].members != tuple(range(len(self._views)))):
                # the caller's own arrays reach the core: none may share memory with a param (NumPy
                # results of the gradient options are fresh arrays)
                check_overlaps(applied, [i for i, (a, b) in enumerate(zip(applied, gs))
                                         if a is not None and a is b], self._memory, self._names)
        # every check has passed: from here on the step only writes
        if rows is not None:
            rows.before_dense(self, rates)
        extra = self._core_extra
        if extra.get("bias_correction"):
            extra = dict(extra, step=self.iterations + 1)  # optax's count: updates applied, this one included
        run_calls(calls, self._views, applied, self._slots, self.rule, self._gradient.core_rescale, extra)
        if rows is not None:
            rows.after_dense(self)
        if prepared.accumulators == "reset":
            for a in self._acc:
                a.fill(0)
        elif prepared.accumulators is not None:
            for a, new in zip(self._acc, prepared.accumulators):
                if new is not None:
                    np.copyto(a, new)
        if self.use_ema:
            averages.update(self._averages, self._views, self._ema, self.iterations)
        self._iterations += 1
        return True

    def _read(self, grads):
        """The step's grads, checked. With one launch over every param and no NumPy work on the grads,
        the single core call checks them itself before writing anything (naming ``grads[i]`` as here),
        so only the container is checked in Python; otherwise every grad is checked here, since a later
        launch's error would come after an earlier launch's writes (memory overlap: in :meth:`step`)."""
        if self._single_launch:
            gs = grad_list(grads, len(self._views))
            if not any(g is None for g in gs):
                return gs
        return read_grads(grads, self._views, self._names)

    def catch_up(self) -> None:
        """Bring the rows that row-sparse gradients skipped up to date (``sparse_mode`` "exact": their state;
        "lazy": their state and parameters, the pending momentum moves made, scaled by the last step's
        learning rate where lr is outside the momentum). The state is then the dense update's; call it before
        reading or exporting the parameters of a lazy run. A no-op without row-sparse gradients."""
        step = max(self._iterations - 1, 0)
        rates = np.asarray([check_rate(fn(step), gi, step) for gi, fn in enumerate(self._lr_fns)], np.float64)
        for i in sorted(self._rows.last_step):
            self._rows.catch_up(self, i, rates)

    # ----------------------------------------------------------------------------------- averages
    def finalize_variable_values(self) -> None:
        """Overwrite the params with their moving averages (Keras; a no-op without use_ema)."""
        ema_rules.check_not_swapped(self._swap, "finalize_variable_values")
        if self.use_ema:
            averages.overwrite(self._averages, self._views)

    @contextlib.contextmanager
    def swap_ema_weights(self):
        """Evaluate with the moving averages: inside the ``with`` block the params hold their averages
        (exchanged in place, bit for bit) and :meth:`step` is refused; on exit they are swapped back."""
        if not self.use_ema:
            raise ValueError("swap_ema_weights: expected an optimizer with use_ema=True, got use_ema=False")
        self._swap = ema_rules.begin_swap(self._swap)
        averages.swap(self._averages, self._views)
        try:
            yield self
        finally:
            averages.swap(self._averages, self._views)
            self._swap = ema_rules.end_swap(self._swap)

    # ----------------------------------------------------------------------------------- state
    def _buffers(self) -> checkpoint.StateBuffers:
        # while swapped for evaluation the params hold the averages: a checkpoint taken then is the same
        ema = self._views if self._swap.swapped else self._averages
        return checkpoint.StateBuffers(mean_square=self._slots.mean_square, moment=self._slots.moment,
                                       mean_grad=self._slots.mean_grad, ema=ema, accumulator=self._acc)

    def state_dict(self) -> dict:
        """The optimizer state as plain NumPy arrays and numbers (copies): ``np.savez(f, **sd)`` saves it.
        Parameters that took row-sparse gradients add their counters (``last_step.<i>``, ``rows_step.<i>``)
        and keep their state as it stands (:meth:`catch_up` brings it up to date)."""
        sd = checkpoint.state_dict(self._buffers(), self._iterations, self.skipped_steps)
        sd.update({k: a.copy() for k, a in self._rows.state_arrays().items()})
        return sd

    def load_state_dict(self, state) -> None:
        """Restore a :meth:`state_dict` (or ``dict(np.load(f))``); validates everything before writing."""
        ema_rules.check_not_swapped(self._swap, "load_state_dict")
        state, counters = self._rows.split_state(state, self._views)
        self._iterations, self.skipped_steps = checkpoint.load_state_dict(state, self._buffers())
        self._rows.load(counters)

    def export_state(self):
        """The state as a framework-free :class:`rmsprop_ops.translate.RMSPropState` (for torch, timm,
        Keras, MXNet or another front end); it records each param's rate for the next step."""
        from . import translation

        self.catch_up()  # the state a dense update would hold
        return translation.export_state(self)

    def import_state(self, state, *, learning_rate=None) -> None:
        """Load a :class:`rmsprop_ops.translate.RMSPropState`. Momentum buffers are rescaled to this rule's
        lr placement with ``learning_rate`` (default: this optimizer's rate for its next step); a buffer
        this optimizer does not keep, or lacks, is a ValueError. Everything is checked before writing."""
        ema_rules.check_not_swapped(self._swap, "import_state")
        from . import translation

        self.load_state_dict(translation.import_state_dict(self, state, learning_rate))

    def _next_rates(self):
        """Every member's learning rate for the next step (group rate x lr_mult)."""
        step = self._iterations
        groups = [check_rate(fn(step), gi, step) for gi, fn in enumerate(self._lr_fns)]
        return [groups[g] * self.param_groups[g]["lr_mult"] for g in self._owners]

    def __repr__(self):
        r = self.rule
        lr = r.learning_rate
        parts = [f"convention={r.convention!r}", f"learning_rate={lr!r}", f"rho={r.rho!r}",
                 f"momentum={r.momentum!r}", f"epsilon={r.epsilon!r}", f"centered={r.centered!r}",
                 f"weight_decay={r.weight_decay!r}", f"weight_decay_mode={r.weight_decay_mode!r}",
                 f"eps_in_sqrt={r.eps_in_sqrt!r}", f"lr_in_momentum={r.lr_in_momentum!r}",
                 f"initial_accumulator_value={r.initial_accumulator_value!r}"]
        g = self._gradient
        for name in ("clipnorm", "clipvalue", "global_clipnorm", "loss_scale_factor"):
            if getattr(g, name) is not None:
                parts.append(f"{name}={getattr(g, name)!r}")
        if g.accumulation_steps:
            parts.append(f"gradient_accumulation_steps={g.accumulation_steps}")
        if g.rescale_grad != 1.0:
            parts.append(f"rescale_grad={g.rescale_grad!r}")
        for name in ("skip_nonfinite", "maximize"):
            if getattr(g, name):
                parts.append(f"{name}=True")
        parts += [f"{name}=True" for name in self._core_extra]
        if self.use_ema:
            parts.append(f"use_ema=True, ema_momentum={self._ema.decay!r}, ema_schedule={self._ema.schedule!r}")
        n = len(self._views)
        parts.append(f"params={n} in {len(self.param_groups)} group{'s' * (len(self.param_groups) != 1)}")
        parts.append(f"layout='per-tensor state, {len(self._plans)} fused launch{'es' * (len(self._plans) != 1)}'")
        return f"RMSProp({', '.join(parts)})"
