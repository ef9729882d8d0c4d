"""``rmsprop_ops.paddle.RMSProp``: a ``paddle.optimizer.Optimizer`` whose update is our custom op.

The class holds Paddle's hooks only; each delegates to a module: ``_args`` (constructor checks, the rule
record), ``_clip`` (value clipping in the op), ``_param_attrs`` (ParamAttr scales and regularizers),
``_densify`` (sparse gradients), ``_state`` (accumulators, flat buffers), ``_checkpoint``
(``set_state_dict``), ``_launch`` (one pass's updates, grouped into op launches); the conventions:
``_convention`` (the constructor's arguments resolved into the rule), ``_decay`` (what a float weight decay
means), ``_ema`` (moving averages of the weights), and ``_extras`` (the methods beyond Paddle's: rule,
averages, checkpoint translation, recipes).
"""

from __future__ import annotations

import contextlib
import dataclasses

import paddle
from paddle.base import framework
from paddle.framework import in_pir_mode
from paddle.optimizer import Optimizer
from paddle.optimizer.lr import LRScheduler

from .. import registry
from .._toolkit import ema as ema_rules
from . import _args, _checkpoint, _clip, _decay, _ema, _fastpath, _step_count
from ._build import load_ops
from ._convention import explicit_arguments, resolve_arguments
from ._densify import densify_grads, pairs
from ._extras import ConventionMethods
from ._describe import describe
from ._launch import LaunchKey, Row, Step, check_grad
from ._launch import invoke as _invoke  # noqa: F401 (the op-call helper, importable here as before the split)
from ._param_attrs import NO_DECAY, check_param_attrs, fusable_lr_mult, fused_decay
from ._sparse import SparseRows
from ._state import StateStore

__all__ = ["RMSProp"]


class RMSProp(ConventionMethods, Optimizer):
    r"""RMSProp with the signature, defaults and results of ``paddle.optimizer.RMSProp``, run by our custom op,
    and any other framework's rule on request (``convention=``).

    The update for each parameter (Paddle's rule; ``g`` has been clipped, then regularized)::

        ms  = rho * ms + (1 - rho) * g^2
        mg  = rho * mg + (1 - rho) * g                 # centered only
        v   = ms - mg^2  (centered)   or   ms
        mom = momentum * mom + lr * g / sqrt(v + epsilon)
        p   = p - mom

    Args:
        learning_rate: float (an int is converted; Paddle rejects it) or ``paddle.optimizer.lr.LRScheduler``.
            ``set_lr`` values and every value a scheduler produces are checked like the constructor's
            (finite, >= 0): a bad one raises ValueError before anything is written, where Paddle would
            write nan into every parameter.
        rho, epsilon, momentum, centered: as in Paddle (defaults 0.95, 1e-6, 0.0, False). rho must lie in
            [0, 1] and epsilon be > 0 (Paddle accepts any rho >= 0 and epsilon == 0); violations raise
            ValueError here, at construction.
        parameters: list of parameters, or of parameter-group dicts (``params`` plus any of
            ``learning_rate`` (a scale), ``weight_decay``, ``grad_clip``, ``rho``, ``epsilon``, ``momentum``,
            ``centered``). Required in dynamic mode; None in static mode means all parameters. An empty
            list raises ValueError (Paddle's RMSProp fails at ``step()`` with an IndexError).
        weight_decay: float (L2 coefficient), ``paddle.regularizer.L1Decay`` or ``L2Decay``; a regularizer
            set in a parameter's ``ParamAttr`` takes precedence. L1/L2 decay is fused into the op.
        grad_clip: ``ClipGradByGlobalNorm``, ``ClipGradByNorm`` or ``ClipGradByValue``, in dynamic and
            static mode. ``ClipGradByValue`` is applied by the op itself (before weight decay, as Paddle
            does), which also makes it work in Paddle's PIR static graph where Paddle raises.
        name: prefix of the accumulator names.
        fused: True (the default) updates every group of parameters sharing hyper-parameters and dtype
            with one multi-tensor op (one op per program step in the usual case); False appends one op per
            parameter to a static program. Same results. Dynamic mode runs the multi-tensor op either way,
            one call per group, as no program records the calls there. A parameter gets its own op when
            its ``ParamAttr`` learning rate is not a number, or, for float64, is a scale float32 cannot
            hold exactly: the fused op takes scales as float32.
        multi_precision: keep float32 master weights (and float32 accumulators) for float16/bfloat16
            parameters, like Paddle's Adam/Momentum ``multi_precision`` (Paddle's RMSProp has none).
        flat_state: keep the accumulators of the parameters created together (those of one step's
            parameter group, by state dtype) in one 1-D buffer per kind, which the op takes whole: Paddle
            does work for every value an op touches, on every step. Same results. None (the default):
            flat in dynamic mode, where each parameter's accumulators are still listed, as views of the
            buffers under Paddle's names, so ``state_dict()`` checkpoints are ``paddle.optimizer.RMSProp``'s;
            per-parameter variables in a static program, whose variables are what ``paddle.static.save``
            writes. True: flat in a static program too (its variables are then the buffers,
            ``<first param>_mean_square_flat_0``, ...). False: one tensor per parameter and kind. Master
            weights stay one tensor per parameter, and so does the state of auto-parallel (dist)
            parameters, which Paddle shards per parameter.
        convention: a key of ``rmsprop_ops.CONVENTIONS`` (default ``"paddle"``: Paddle's rule). It decides
            eps placement, the mean square's start value, lr placement and what a float ``weight_decay``
            means, and gives the defaults of ``learning_rate``, ``rho``, ``epsilon`` and ``momentum`` (the
            signature shows Paddle's); arguments passed keep their values, and the framework's own names
            are accepted under its convention (torch's ``lr``, ``alpha``, ``eps``; TF1's ``decay``; ...).
        eps_in_sqrt, initial_accumulator_value, lr_in_momentum, weight_decay_mode, clip_after_weight_decay:
            each field of the convention on its own (see ``docs/paddle.md``, Conventions).
        maximize: ascend the objective (torch). nesterov, bias_correction: optax's options (the update
            count bias_correction reads: ``iterations`` + 1 in dynamic mode, a persistable counter in a
            static program; see ``_step_count``). All three are the core's rule options. A SelectedRows
            gradient under nesterov or bias_correction is made dense for the dense op ("exact" and
            "lazy" refuse them).
        clip_weights: clip the weights to [-c, c] after the update (see ``rmsprop_ops.rmsprop_``).
        use_ema, ema_momentum, ema_overwrite_frequency, ema_schedule: moving averages of the weights with
            Keras' / TF's semantics (``_ema``), evaluated with ``swap_ema_weights()``.
        sparse_mode: "auto", "dense", "exact" or "lazy": what a SelectedRows gradient does to the rows it
            leaves out (below). An option a parameter's rule cannot follow ("exact" with momentum, "exact"
            or "lazy" with weight decay or clip_weights) raises ValueError at its first such step.

    ``set_state_dict`` pairs saved state with the parameters by name, as Paddle does, and, for a model
    rebuilt in the same process (whose name counters moved on), by the same structure under the new
    counters; it checks every entry (full shape, dtype, values the state's dtype can hold, master weights)
    before writing anything.

    Sparse (SelectedRows) gradients, e.g. from ``paddle.nn.Embedding(sparse=True)``, are taken in dynamic
    mode with Paddle's sparse rule (duplicate rows summed, absent rows a zero gradient: their state decays
    and they move by their moment) by the core's row-sparse update, on CPU, without a dense copy:
    ``sparse_mode`` "auto" (default) visits only the gradient's rows where that gives Paddle's numbers (no
    momentum, weight decay or ``clip_weights``: a skipped row's state is caught up in closed form when it
    is next touched, and by :meth:`catch_up` / ``state_dict()``) and steps every row otherwise; "dense"
    always steps every row; "exact" and "lazy" always visit only the gradient's rows ("lazy" also with
    momentum: a row's pending momentum moves are made when it is next touched). See ``docs/sparse.md``.
    Off the CPU the gradient is made dense for the dense op.

    Under ``paddle.amp.GradScaler`` an overflowed step is skipped inside the op (its SkipUpdate input
    reads the found-inf flag on the device), without a host synchronisation in the optimizer.

    Example:
        >>> import paddle
        >>> from rmsprop_ops.paddle import RMSProp
        >>> linear = paddle.nn.Linear(10, 10)
        >>> opt = RMSProp(learning_rate=0.1, parameters=linear.parameters(), weight_decay=0.01)
        >>> loss = linear(paddle.rand([4, 10])).mean()
        >>> loss.backward()
        >>> opt.step()
        >>> opt.clear_grad()
    """

    _momentum_acc_str = "momentum"
    _mean_square_acc_str = "mean_square"
    _mean_grad_acc_str = "mean_grad"

    @explicit_arguments("learning_rate", "rho", "epsilon", "momentum", "eps_in_sqrt", "lr_in_momentum")
    def __init__(self, learning_rate, rho=0.95, epsilon=1.0e-6, momentum=0.0, centered=False, parameters=None,
                 weight_decay=None, grad_clip=None, name=None, *, convention="paddle", fused=True,
                 multi_precision=False, flat_state=None, eps_in_sqrt=True, lr_in_momentum=True,
                 initial_accumulator_value=None, weight_decay_mode=None, clip_after_weight_decay=None,
                 clip_weights=None, maximize=False, nesterov=False, bias_correction=False, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, ema_schedule="keras", sparse_mode="auto",
                 **aliases):
        settings = resolve_arguments(convention, dict(
            learning_rate=learning_rate, rho=rho, epsilon=epsilon, momentum=momentum, centered=centered,
            eps_in_sqrt=eps_in_sqrt, initial_accumulator_value=initial_accumulator_value,
            lr_in_momentum=lr_in_momentum, weight_decay_mode=weight_decay_mode,
            clip_after_weight_decay=clip_after_weight_decay, maximize=maximize, nesterov=nesterov,
            bias_correction=bias_correction), aliases, weight_decay=weight_decay, use_ema=use_ema,
            ema_momentum=ema_momentum, ema_schedule=ema_schedule, ema_overwrite_frequency=ema_overwrite_frequency)
        r = settings.rule
        parameters = _decay.for_groups(_args.check_parameters(parameters), r.weight_decay_mode,
                                       settings.explicit_mode)
        _args.check_grad_clip(grad_clip)
        _args.check_name(name)
        rule = _args.Rule.checked(rho=r.rho, epsilon=r.epsilon, momentum=r.momentum, centered=r.centered,
                                  clip_weights=clip_weights, core_attrs=settings.core_attrs,
                                  resolved=dataclasses.replace(r, learning_rate=None))
        if flat_state is not None:
            _args.check_bool("flat_state", flat_state)
        layout = _args.Layout(fused=_args.check_bool("fused", fused),
                              multi_precision=_args.check_bool("multi_precision", multi_precision),
                              flat_state=flat_state)
        self._sparse = SparseRows(sparse_mode)
        super().__init__(learning_rate=settings.learning_rate, parameters=parameters,
                         weight_decay=settings.weight_decay, grad_clip=grad_clip, name=name)
        self._grad_clip = _clip.wrap(self._grad_clip)
        self.type = "rmsprop_ops_rmsprop"
        self._rule, self._layout = rule, layout
        # paddle.optimizer.RMSProp's attributes, which Paddle code and users read.
        self._rho, self._epsilon, self._momentum, self._centered = r.rho, r.epsilon, r.momentum, r.centered
        self._multi_precision = multi_precision
        self._default_dict = {"rho": r.rho, "epsilon": r.epsilon, "momentum": r.momentum, "centered": r.centered}
        self._use_ema, self._ema = settings.use_ema, settings.ema
        self._swap = ema_rules.Swap()
        self._iterations = 0  # updates applied in dynamic mode (see the iterations property)
        self._static_averages = []  # _ema.StaticAverages of the averages a static program keeps
        self._store = StateStore()
        self._pending = _checkpoint.Pending()
        self._step = None  # the pass being built (_launch.Step), between its two hooks
        self._plan = None  # the last dynamic-mode step's launches (_fastpath.Plan), or None
        load_ops()  # compile (once) now rather than in the middle of the first step

    def __repr__(self):
        return describe(self)

    def set_lr(self, value):
        """Set the learning rate (as ``paddle.optimizer.Optimizer.set_lr``); a negative or non-finite value
        raises ValueError and leaves the optimizer's learning rate unchanged."""
        super().set_lr(_args.check_set_lr(value))

    def catch_up(self):
        """Bring the rows that SelectedRows gradients skipped (``sparse_mode`` "exact" or "lazy") up to date:
        the accumulators then hold what ``paddle.optimizer.RMSProp``'s would, and in "lazy" mode the
        parameters have made their pending momentum moves. ``state_dict()`` does it first. A no-op in static
        mode and without such gradients."""
        if framework.in_dygraph_mode():
            self._sparse.catch_up(self)

    def _create_global_learning_rate(self):
        # The rate an LRScheduler produces reaches the op as a tensor, whose value the core does not check
        # on a device; check the host value here, once per step in dygraph (and at program build time).
        if isinstance(self._learning_rate, LRScheduler):
            value = self._learning_rate()
            try:
                registry.check_attr("rmsprop", "learning_rate", value)
            except (TypeError, ValueError) as e:
                raise type(e)(f"learning_rate: the {type(self._learning_rate).__name__} scheduler returned "
                              f"{value!r} (last_epoch={self._learning_rate.last_epoch}); "
                              f"{str(e).split(': ', 1)[1]}") from None
        return super()._create_global_learning_rate()

    def _add_param_group(self, param_group):
        super()._add_param_group(param_group)
        if "grad_clip" in param_group:
            param_group["grad_clip"] = _clip.wrap(param_group["grad_clip"])

    def _update_param_group(self, parameters):
        return parameters.get("params")

    # ---- state: accumulators named and created as paddle.optimizer.RMSProp's
    def _acc_name(self, kind):
        return kind if self._name is None else f"{self._name}_{kind}"

    def _create_accumulators(self, block, parameters):
        if isinstance(parameters, dict):
            parameters = parameters.get("params")
        dygraph = framework.in_dygraph_mode()
        targets = self._store.create(self, parameters, self._layout.flat_in(dygraph))
        if dygraph:
            self._pending.apply(self, targets)

    def state_dict(self):
        """``paddle.optimizer.Optimizer.state_dict()``, the rows SelectedRows gradients skipped caught up
        first (``catch_up``), so the accumulators hold the dense state."""
        self.catch_up()
        return super().state_dict()

    @framework.dygraph_only
    def set_state_dict(self, state_dict):
        """Load a ``state_dict()`` (ours or ``paddle.optimizer.RMSProp``'s), before or after the first step:
        see the class docstring and ``rmsprop_ops.paddle._checkpoint``."""
        self._plan = None  # master weights may be new tensors
        _checkpoint.load(self, state_dict, self._pending)
        self._sparse.reset()  # the loaded state is current for every row

    load_state_dict = set_state_dict

    # ---- weight decay: L1/L2 are fused into the op (read off the parameter when its update is built)
    def _create_regularization_of_grad(self, param, grad, regularization=None):
        if grad is None or fused_decay(param, regularization) is not None:
            return grad
        return super()._create_regularization_of_grad(param, grad, regularization)

    def step(self):
        """``paddle.optimizer.Optimizer.step``. In dynamic mode a step that repeats the last one's launches
        skips Paddle's per-parameter machinery (``_fastpath``). With parameter groups Paddle runs one pass
        per group; every group's parameters and gradients are checked before the first pass writes."""
        with self._update():
            if _fastpath.try_step(self, self._plan):
                return
            self._plan = None
            groups = self._param_groups
            if groups and isinstance(groups[0], dict) and framework.in_dygraph_mode() \
                    and not paddle.base.dygraph.base.in_to_static_mode():
                grads = [(p, p._grad_ivar()) for g in groups for p in g["params"] if not p.stop_gradient]
                grads = [(p, g) for p, g in grads if g is not None]
                check_param_attrs(grads)
                for p, g in grads:
                    if not g.is_selected_rows():
                        check_grad(p, g)
            super().step()

    def minimize(self, loss, startup_program=None, parameters=None, no_grad_set=None):
        """``paddle.optimizer.Optimizer.minimize``; in dynamic mode also moves the averages (``use_ema``)."""
        if not framework.in_dygraph_mode():
            return super().minimize(loss, startup_program, parameters, no_grad_set)
        with self._update():
            return super().minimize(loss, startup_program, parameters, no_grad_set)

    @contextlib.contextmanager
    def _update(self):
        """Around one dynamic-mode update: refused while the averages are swapped in; the averages are
        created before the first update and moved after each applied one, which is counted."""
        if not framework.in_dygraph_mode() or paddle.base.dygraph.base.in_to_static_mode():
            yield
            return
        ema_rules.check_not_swapped(self._swap, "step")
        if self._use_ema:
            self._pending.apply(self, _ema.ensure(self), kinds=(_ema.KIND,))
        yield
        found_inf = self._get_auxiliary_var("found_inf")
        counted = self._use_ema or self._rule.resolved.bias_correction  # what reads the count
        if counted and isinstance(found_inf, paddle.Tensor) and bool(found_inf):
            return  # GradScaler: the op skipped this step (only the count's readers need to know, on the host)
        if self._use_ema:
            _ema.update(self, self._ema, self._iterations)
        self._iterations += 1

    # ---- a pass: its context (_launch.Step) is made first; _append_optimize_op adds a row per parameter
    # and _finish_update checks and runs them all
    def _new_step(self, parameters_and_grads, skip):
        group = parameters_and_grads if isinstance(parameters_and_grads, dict) else {}
        # a static program's averages of master weights read them after the op: it must declare them
        return Step(skip, fused=self._layout.fused or framework.in_dygraph_mode(), rule=self._rule.for_group(group),
                    clip=group.get("grad_clip", self._grad_clip),
                    declare_state=self._use_ema and self._multi_precision and not framework.in_dygraph_mode(),
                    count=_step_count.make(self, skip))

    def _create_optimization_pass(self, parameters_and_grads, param_group_idx=0):
        check_param_attrs(parameters_and_grads)
        found_inf = self._get_auxiliary_var("found_inf")
        dygraph = framework.in_dygraph_mode()
        taken = dygraph and isinstance(found_inf, paddle.Tensor)  # GradScaler's flag: the op reads it
        step = self._new_step(parameters_and_grads, found_inf if taken else None if dygraph
                              else self._static_skip_flag())

        def route(pairs, densify):  # SelectedRows gradients that the rows update takes stay as they are
            out, step.sparse_modes = self._sparse.route(self, pairs, step.rule, densify)
            return out

        parameters_and_grads = densify_grads(parameters_and_grads, route)
        if not taken:
            return self._pass(super()._create_optimization_pass, parameters_and_grads, param_group_idx, step)
        self._set_auxiliary_var("found_inf", None)  # else Paddle's pass would test it on the host
        try:
            return self._pass(super()._create_optimization_pass, parameters_and_grads, param_group_idx, step)
        finally:
            self._set_auxiliary_var("found_inf", found_inf)

    def _pir_create_optimization_pass(self, parameters_and_grads, param_group_idx=0):
        check_param_attrs(parameters_and_grads)
        return self._pass(super()._pir_create_optimization_pass, parameters_and_grads, param_group_idx,
                          self._new_step(parameters_and_grads, self._static_skip_flag()))

    def _pass(self, paddle_pass, parameters_and_grads, param_group_idx, step):
        self._step = step
        try:
            out = paddle_pass(parameters_and_grads, param_group_idx)
            # Rows run in _finish_update, which Paddle's auto-parallel fully_shard replaces on the optimizer
            # instance without calling it: run whatever is left (normally nothing).
            self._run_step(step)
            _step_count.advance(step.count)
            if self._use_ema and not framework.in_dygraph_mode():
                _ema.append(self, self._ema, [p for p, _ in pairs(parameters_and_grads)], step.skip)
            if framework.in_dygraph_mode() and not isinstance(parameters_and_grads, dict):
                self._plan = _fastpath.record(self, step.ran)
            return out
        finally:
            self._step = None

    def _append_optimize_op(self, block, param_and_grad):
        step = self._step
        if step is None:  # called outside a pass: a step of one parameter
            step = self._new_step({}, self._static_skip_flag())
            step.fused = False
        param, grad = param_and_grad["params"] if isinstance(param_and_grad, dict) else param_and_grad
        master = None
        if self._multi_precision and self._is_dtype_fp16_or_bf16(param.dtype):
            master = self._master_weights[param.name]
        decay = fused_decay(param, self.regularization) or NO_DECAY
        clip = _clip.value_bound(step.clip, param)
        mode = step.sparse_modes.get(param.name)
        if mode is not None:  # a SelectedRows gradient: the rows update, checked and run with the step
            step.sparse_calls.append(self._sparse.prepare(self, param, grad, mode, step.rule, decay, clip, master,
                                                          step.skip))
            return
        slot = self._store.slot(self, param if master is None else master)
        key = LaunchKey(step.rule, decay.mode, clip, param.dtype, master is not None, slot.chunk)
        step.add(Row(param, grad, slot, master, decay, fusable_lr_mult(param), key))
        if step is not self._step:
            self._run_step(step)
            _step_count.advance(step.count)

    def _finish_update(self, block, parameters_and_grads):
        if self._step is not None:
            self._run_step(self._step)

    def _run_step(self, step):
        calls, step.sparse_calls = step.sparse_calls, []
        self._sparse.check(calls)  # before anything of the step is written
        step.run(self)
        self._sparse.run(calls)

    def _static_skip_flag(self):
        """paddle.static.amp's found-inf value, which its decorator sets as the auxiliary variable before
        apply_gradients; None in dynamic mode (GradScaler's flag is taken by _create_optimization_pass)."""
        flag = self._get_auxiliary_var("found_inf")
        if in_pir_mode():
            return flag if isinstance(flag, paddle.pir.Value) else None
        return flag if isinstance(flag, framework.Variable) and not framework.in_dygraph_mode() else None
