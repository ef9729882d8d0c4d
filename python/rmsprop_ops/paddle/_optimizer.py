"""``rmsprop_ops.paddle.RMSProp``: a ``paddle.optimizer.Optimizer`` whose update is our custom op."""

from __future__ import annotations

import functools
import math
import numbers
import re

import numpy as np
import paddle
from paddle import _C_ops
from paddle.base import framework
from paddle.framework import in_pir_mode
from paddle.nn.clip import ClipGradBase, ClipGradByValue
from paddle.optimizer import Optimizer
from paddle.optimizer.lr import LRScheduler
from paddle.regularizer import L1Decay, L2Decay

from .. import registry
from .._flat import flat_offsets
from ._build import load_ops
from ._codegen import op_schema, paddle_op_name
from ._sparse import SparseRows

__all__ = ["RMSProp"]

_WD_MODE = {"l2": 0, "l1": 1}
_HP_KEYS = ("rho", "epsilon", "momentum", "centered")


def _default(attr):
    if attr["type"] == "enum":
        return attr["choices"].index(attr["default"])
    if attr["type"] in ("float[]", "int[]"):
        return []
    return attr["default"]


@functools.cache
def _plan(core_op, dygraph, flat):
    """Input names and (attribute name, default) pairs in the registry's order, and the Paddle op's name:
    worked out once per op, not on every call (a static program with one op per parameter makes 1000)."""
    sc = op_schema(core_op, flat)
    inputs = tuple(i["name"].removesuffix("[]") for i in sc["inputs"])
    attrs = tuple((a["name"], _default(a)) for a in sc["attrs"])
    return inputs, attrs, frozenset(n for n, _ in attrs), paddle_op_name(core_op, dygraph, flat)


def _invoke(core_op, tensors, attrs, checked=True, dygraph=False, flat=False):
    """Call (dynamic) or append (static) the custom op, arguments placed by the registry's order.

    The optimizer passes checked=False: it builds every argument itself from hyper-parameters validated
    at construction (and learning rates validated where they are set), so the Python checks of
    ``load_ops()`` would only add per-step overhead; the kernel and the core still check everything.
    dygraph=True calls the op's dygraph twin (state not declared in place; see ``_codegen``), unchecked:
    the optimizer passes it only in dynamic mode, with its own accumulators, contiguous by construction
    (Paddle would hand the kernel a contiguous copy of a strided one, and its update would be lost).
    flat=True calls the flat-state form (MeanSquare, Moment, MeanGrad one 1-D buffer each, ``offsets``)."""
    if checked and dygraph:
        raise AssertionError("the dygraph twins have no checked wrappers: pass checked=False")
    inputs, attr_plan, known, name = _plan(core_op, dygraph, flat)
    if not known.issuperset(attrs):
        raise AssertionError(f"attributes {sorted(set(attrs) - known)} are not in the registry schema of "
                             f"{core_op!r}")
    args = [tensors.get(n) for n in inputs]
    args += [attrs.get(n, d) for n, d in attr_plan]
    ops = load_ops()
    return getattr(ops if checked else ops.raw, name)(*args)


class _FusedValueClip:
    """Stands in for a symmetric ``ClipGradByValue``: records the bound so the op clips (before weight
    decay, Paddle's order) instead of appending clip ops, which Paddle's PIR static graph does not support."""

    def __init__(self, clip, owner):
        self.clip = clip
        self._owner = owner

    def __call__(self, params_grads):
        for p, g in params_grads:
            if g is not None:
                self._owner._value_clip[p.name] = None if getattr(p, "need_clip", True) is False else self.clip.max
        return params_grads

    def __str__(self):
        return str(self.clip)


class _AsymmetricValueClip(_FusedValueClip):
    """ClipGradByValue with min != -max: the op clips symmetrically only, so clip with paddle.clip."""

    def __call__(self, params_grads):
        out = []
        for p, g in params_grads:
            if g is not None and getattr(p, "need_clip", True) is not False:
                # paddle.clip fails on a dygraph SelectedRows gradient (so does Paddle's ClipGradByValue);
                # the rows are merged before clipping either way, so clipping the dense copy is the same.
                g = paddle.clip(_dense(p, g), min=self.clip.min, max=self.clip.max)
            out.append((p, g))
        return out


def _wrap_clip(clip, owner):
    if isinstance(clip, ClipGradByValue):
        return _FusedValueClip(clip, owner) if clip.min == -clip.max else _AsymmetricValueClip(clip, owner)
    return clip


class RMSProp(Optimizer):
    r"""RMSProp with the signature, defaults and results of ``paddle.optimizer.RMSProp``, run by our custom op.

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
        fused: in a static program, True appends one multi-tensor op for every group of parameters
            sharing hyper-parameters and dtype (one op per program step in the usual case) instead of one
            op per parameter. Same results. Dynamic mode always runs the multi-tensor op, one call per
            group, as no program records the calls there. Either way a parameter gets its own op when its
            ``ParamAttr`` learning rate is not a number, or, for float64, is a scale float32 cannot hold
            exactly: the fused op takes scales as float32.
        multi_precision: keep float32 master weights (and float32 accumulators) for float16/bfloat16
            parameters, like Paddle's Adam/Momentum ``multi_precision`` (Paddle's RMSProp has none).
        flat_state: keep the accumulators of all parameters created together (those of one step's
            parameter group, by state dtype) in one 1-D buffer per kind (``<first param>_mean_square_flat_0``,
            ``_momentum_flat_``, ``_mean_grad_flat_``) instead of one tensor per parameter and kind. Same
            results; Paddle's interpreter does per-value work around every op on every step, and with
            1000 parameters flat state takes ~2000 (plain) or ~3000 (centered) values off the fused op
            (see docs/performance.md). In dynamic mode ``state_dict()`` still gives one entry per parameter and kind, named as
            ``paddle.optimizer.RMSProp`` names them, and ``set_state_dict`` takes those, so checkpoints
            move between the two layouts and Paddle's RMSProp. A static program saves the flat buffers
            (``paddle.static.save``). Master weights stay one tensor per parameter, and so does the
            state of auto-parallel (dist) parameters, which Paddle shards per parameter.
        eps_in_sqrt, lr_in_momentum, clip_weights: the core's rule options (defaults give Paddle's rule):
            see ``rmsprop_ops.rmsprop_``.
        sparse_mode: "auto", "dense", "exact" or "lazy": what a SelectedRows gradient does to the rows it
            leaves out (below). An option a parameter's rule cannot follow ("exact" with momentum, "exact"
            or "lazy" with weight decay or clip_weights) raises ValueError at its first such step.

    Sparse (SelectedRows) gradients, e.g. from ``paddle.nn.Embedding(sparse=True)``, are taken in dynamic
    mode with Paddle's sparse rule (duplicate rows summed, absent rows a zero gradient: their state decays
    and they move by their moment) by the core's row-sparse update, on CPU, without a dense copy:
    ``sparse_mode`` "auto" (default) visits only the gradient's rows where that gives Paddle's numbers (no
    momentum, weight decay or ``clip_weights``: a skipped row's state is caught up in closed form when it
    is next touched, and by :meth:`catch_up` / ``state_dict()``) and steps every row otherwise; "dense"
    always steps every row; "exact" and "lazy" always visit only the gradient's rows ("lazy" also with
    momentum: a row's pending momentum moves are made when it is next touched). See ``docs/sparse.md``.
    With flat_state, and off the CPU, the gradient is made dense for the dense op.

    Under ``paddle.amp.GradScaler`` an overflowed step is skipped inside the op (its SkipUpdate input
    reads the found-inf flag on the device), without a host synchronisation in the optimizer.

    Example:
        >>> import paddle
        >>> from rmsprop_ops.paddle import RMSProp
        >>> linear = paddle.nn.Linear(10, 10)
        >>> opt = RMSProp(learning_rate=0.1, parameters=linear.parameters(), weight_decay=0.01, fused=True)
        >>> loss = linear(paddle.rand([4, 10])).mean()
        >>> loss.backward()
        >>> opt.step()
        >>> opt.clear_grad()
    """

    _momentum_acc_str = "momentum"
    _mean_square_acc_str = "mean_square"
    _mean_grad_acc_str = "mean_grad"

    def __init__(self, learning_rate, rho=0.95, epsilon=1.0e-6, momentum=0.0, centered=False, parameters=None,
                 weight_decay=None, grad_clip=None, name=None, *, fused=False, multi_precision=False,
                 eps_in_sqrt=True, lr_in_momentum=True, clip_weights=None, flat_state=False, sparse_mode="auto"):
        learning_rate = _check_lr(learning_rate)
        parameters = _check_parameters(parameters)
        if grad_clip is not None and not isinstance(grad_clip, ClipGradBase):
            raise TypeError("grad_clip: expected None or a paddle.nn.ClipGradByGlobalNorm, ClipGradByNorm or "
                            f"ClipGradByValue, got {type(grad_clip).__name__} ({grad_clip!r})")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name: expected None or a str, got {type(name).__name__} ({name!r})")
        _check_rule("rho", rho)
        _check_rule("epsilon", epsilon)
        _check_rule("momentum", momentum)
        _check_bool("centered", centered)
        _check_bool("fused", fused)
        _check_bool("multi_precision", multi_precision)
        _check_bool("flat_state", flat_state)
        _check_bool("eps_in_sqrt", eps_in_sqrt)
        _check_bool("lr_in_momentum", lr_in_momentum)
        if clip_weights is not None:
            _check_rule("clip_weights", clip_weights)
        _check_weight_decay("weight_decay", weight_decay)
        for i, group in enumerate(parameters or []):
            if isinstance(group, dict):
                _check_group(i, group)
        self._value_clip = {}
        self._decay = {}
        self._sparse = SparseRows(sparse_mode)
        super().__init__(learning_rate=learning_rate, parameters=parameters, weight_decay=weight_decay,
                         grad_clip=grad_clip, name=name)
        self._grad_clip = _wrap_clip(self._grad_clip, self)
        self.type = "rmsprop_ops_rmsprop"
        self._rho = rho
        self._epsilon = epsilon
        self._momentum = momentum
        self._centered = centered
        self._fused = fused
        self._multi_precision = multi_precision
        self._flat_state = flat_state
        self._flat_slot = {}  # target (param or master) name -> (_FlatChunk, offset)
        self._flat_chunks = []
        self._creation_order = []  # target names, in the order their state was created
        self._eps_in_sqrt = eps_in_sqrt
        self._lr_in_momentum = lr_in_momentum
        self._clip_weights = -1.0 if clip_weights is None else float(clip_weights)
        self._master_weights = {}
        self._default_dict = {"rho": rho, "epsilon": epsilon, "momentum": momentum, "centered": centered}
        self._default_hp = tuple(self._default_dict[k] for k in _HP_KEYS)
        self._pending = []
        self._skip = None
        load_ops()  # compile (once) now rather than in the middle of the first step

    def set_lr(self, value):
        """Set the learning rate (as ``paddle.optimizer.Optimizer.set_lr``); a negative or non-finite value
        raises ValueError and leaves the optimizer's learning rate unchanged."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"set_lr: value: expected a float, got {type(value).__name__}")
        registry.check_attr("rmsprop", "learning_rate", float(value), name="set_lr: value")
        super().set_lr(float(value))

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
            param_group["grad_clip"] = _wrap_clip(param_group["grad_clip"], self)

    # ---- accumulators: names and creation as in paddle.optimizer.RMSProp, so checkpoints interoperate
    def _create_accumulators(self, block, parameters):
        if isinstance(parameters, dict):
            parameters = parameters.get("params")
        targets = []
        for p in parameters:
            if p.name in self._already_create_accumulator:
                continue
            target = p
            if self._multi_precision and self._is_dtype_fp16_or_bf16(p.dtype):
                target = self._create_master_weight(p)
            self._creation_order.append(target.name)
            if self._flat_state and not _distributed(p):
                targets.append(target)
            else:
                dtype = self._state_dtype(target)
                self._add_accumulator(self._momentum_acc_str, target, dtype=dtype)
                self._add_accumulator(self._mean_square_acc_str, target, dtype=dtype)
                self._add_accumulator(self._mean_grad_acc_str, target, dtype=dtype)
            self._already_create_accumulator.add(p.name)
        if targets:
            self._create_flat_accumulators(targets)

    def _state_dtype(self, target):
        """The accumulators' dtype: the math type, float32 for a float16/bfloat16 parameter without a
        master weight (the core computes in float32 and keeps state in it; Paddle's own RMSProp has no
        CPU kernel for them), else the parameter's (or master's) dtype."""
        return paddle.float32 if self._is_dtype_fp16_or_bf16(target.dtype) else target.dtype

    def _create_flat_accumulators(self, targets):
        """One flat buffer per kind for the ``targets`` of each state dtype, the slices packed in order
        (``flat_offsets``). Called once per creation batch: the parameters holding gradients at a group's
        first step; a parameter first seen later joins a new batch."""
        by_dtype = {}
        for t in targets:
            by_dtype.setdefault(self._state_dtype(t), []).append(t)
        for dtype, members in by_dtype.items():
            shapes = [tuple(int(d) for d in t.shape) for t in members]
            if any(d < 0 for shape in shapes for d in shape):
                raise ValueError(f"flat_state: expected parameters of known shape, got {members[0].name} with "
                                 f"shape {list(members[0].shape)}")
            offsets, total = flat_offsets(math.prod(shape) for shape in shapes)
            first = members[0]
            buffers = tuple(self._add_accumulator(kind + "_flat", first, dtype=dtype, shape=[max(total, 1)])
                            for kind in _FLAT_KINDS)
            chunk = _FlatChunk(buffers, [t.name for t in members], offsets, shapes)
            self._flat_chunks.append(chunk)
            for t, off in zip(members, offsets):
                self._flat_slot[t.name] = (chunk, off)
            restore = getattr(self, "_restore", None)
            if restore and framework.in_dygraph_mode():
                for buf, value in chunk.contents(self, restore, partial=True):
                    buf.set_value(value)

    # ---- checkpoints: restore by (parameter, accumulator), not by generated variable name
    def _acc_full_name(self, acc):
        return acc if self._name is None else f"{self._name}_{acc}"

    def state_dict(self):
        """``paddle.optimizer.Optimizer.state_dict()``. With ``flat_state``, in dynamic mode, the flat buffers
        are given as one copy per parameter and kind, named as per-parameter state is
        (``<param>_mean_square_0``), so the checkpoint loads into either layout and into
        ``paddle.optimizer.RMSProp``; in static mode, the program's flat variables."""
        self.catch_up()  # the accumulators then hold the dense state (docs/sparse.md)
        state = super().state_dict()
        if not framework.in_dygraph_mode() or not self._flat_chunks:
            return state  # in static mode a program's variables: slicing them would add ops to it
        # Kind by kind, each in the order the parameters' state was created, as Paddle lists per-parameter
        # state: a rebuilt model (new parameter names) gets it back by that position.
        accs, own = {}, set()
        for kind in (self._momentum_acc_str, self._mean_square_acc_str, self._mean_grad_acc_str):
            full = self._acc_full_name(kind)
            per_param = self._accumulators.get(full, {})
            own.update(v.name for v in per_param.values())
            own.update(v.name for v in self._accumulators.get(self._acc_full_name(kind + "_flat"), {}).values())
            for name in self._creation_order:
                slot = self._flat_slot.get(name)
                if slot is not None:
                    accs[f"{name}_{full}_0"] = slot[0].slice(kind, name)
                elif name in per_param:
                    accs[per_param[name].name] = per_param[name]
        return {**accs, **{k: v for k, v in state.items() if k not in own}}

    @framework.dygraph_only
    def set_state_dict(self, state_dict):
        """Load a ``state_dict()``. Accumulators are matched by parameter and kind rather than by their
        generated variable names, so a checkpoint also restores into a new optimizer object in the same
        process (where ``unique_name`` numbering has moved on), before or after its first step. Every
        entry is checked (presence, size, a floating-point value) before anything is written, and values
        are cast to the state's dtype."""
        state = dict(state_dict)
        lr_state = state.pop("LR_Scheduler", None)
        masters = state.pop("master_weights", None) or {}
        accs = "|".join(re.escape(self._acc_full_name(a)) for a in
                        (self._momentum_acc_str, self._mean_square_acc_str, self._mean_grad_acc_str))
        pattern = re.compile(rf"^(?P<param>.+)_(?P<acc>{accs})_\d+$")
        saved = {}  # acc -> [(param name, value)] in the saved (creation) order
        for key, value in state.items():
            m = pattern.match(key)
            if m is None:
                raise ValueError(f"state_dict: unexpected entry {key!r} (expected accumulators named "
                                 f"<param>_<{accs}>_<n>, 'master_weights' and 'LR_Scheduler')")
            _check_state_value(value, f"state_dict: {key}")
            # Copy now: accumulators are created (and filled) lazily at the first step, and the caller's
            # tensors may have moved on by then.
            value = value.clone() if isinstance(value, paddle.Tensor) else _numpy(value).copy()
            saved.setdefault(m["acc"], []).append((_base_param_name(m["param"]), value))
        restore, renamed = self._match_saved(saved)
        shapes = {p.name: p.shape for p in self._trainable_params()}

        # Work out every write, checking as we go; write only once all are known.
        writes = [w for chunk in self._flat_chunks for w in chunk.contents(self, restore)]
        flat_kinds = {self._acc_full_name(k + "_flat") for k in _FLAT_KINDS}
        for acc, per_param in self._accumulators.items():
            if acc in flat_kinds:
                continue
            for tname, var in per_param.items():
                pname = _base_param_name(tname)
                value = restore.pop((pname, acc), None)
                if value is None:
                    raise ValueError(f"state_dict: no {acc!r} accumulator for parameter {pname!r}")
                writes.append((var, _state_values(value, var.dtype, var.shape,
                                                  f"state_dict: {acc!r} accumulator for parameter {pname!r}")))
        new_masters = []
        for old_name, value in masters.items():
            pname = renamed.get(old_name, old_name)
            what = f"state_dict: master weight of {pname!r}"
            _check_state_value(value, what)
            if pname in self._master_weights:
                master = self._master_weights[pname]
                writes.append((master, _state_values(value, master.dtype, master.shape, what)))
            else:
                shape = shapes.get(pname, value.shape)
                new_masters.append((pname, _state_values(value, paddle.float32, shape, what)))

        if isinstance(self._learning_rate, LRScheduler) and lr_state:
            self._learning_rate.set_state_dict(lr_state)
        for var, value in writes:
            var.set_value(value)
        for pname, value in new_masters:
            master = paddle.to_tensor(value, dtype="float32")
            # Named like _create_master_weight's, so its accumulators map back to the parameter.
            master.name = paddle.utils.unique_name.generate(pname + "_fp32_master")
            self._master_weights[pname] = master
        self._restore = restore
        self._sparse.reset()  # the loaded state is current for every row

    load_state_dict = set_state_dict

    def _trainable_params(self):
        groups = self._param_groups or []
        params = [p for g in groups for p in g["params"]] if groups and isinstance(groups[0], dict) else groups
        return [p for p in params if not p.stop_gradient]

    def _match_saved(self, saved):
        """Map saved accumulators to our parameters: by name when the checkpoint was taken on these
        parameters, else by position (a rebuilt model of the same architecture has new parameter names;
        accumulators are saved in the order the parameters were first updated, the parameter-list order).
        Every entry for a known parameter must hold as many elements as the parameter."""
        params = self._trainable_params()
        ours = [p.name for p in params]
        restore, renamed = {}, {}
        for acc, entries in saved.items():
            names = [n for n, _ in entries]
            if not ours or set(names) <= set(ours):
                restore.update({(n, acc): v for n, v in entries})
            elif len(names) == len(ours):
                restore.update({(n, acc): v for n, (_, v) in zip(ours, entries)})
                renamed.update(zip(names, ours))
            else:
                raise ValueError(f"state_dict: {len(names)} {acc!r} accumulators for parameters {names[:3]}..., "
                                 f"which match neither the names nor the number ({len(ours)}) of this "
                                 "optimizer's parameters")
        shapes = {p.name: list(p.shape) for p in params}
        by_position = {new: old for old, new in renamed.items()}
        for (name, acc), value in restore.items():
            if name in shapes and math.prod(value.shape) != math.prod(shapes[name]):
                how = f" (saved for {by_position[name]!r}, matched by position)" if name in by_position else ""
                raise ValueError(f"state_dict: {acc!r} accumulator for parameter {name!r}{how}: expected shape "
                                 f"{shapes[name]} ({math.prod(shapes[name])} elements), got {list(value.shape)}")
        return restore, renamed

    def _add_accumulator(self, name, param, dtype=None, fill_value=0.0, shape=None, type=None, device=None):
        var = super()._add_accumulator(name, param, dtype=dtype, fill_value=fill_value, shape=shape, type=type,
                                       device=device)
        restore = getattr(self, "_restore", None)
        if restore and framework.in_dygraph_mode():
            pname, acc = _base_param_name(param.name), self._acc_full_name(name)
            value = restore.pop((pname, acc), None)
            if value is not None:
                var.set_value(_state_values(value, var.dtype, var.shape,
                                            f"state_dict: {acc!r} accumulator for parameter {pname!r}"))
        return var

    # ---- weight decay: L1/L2 are recorded per parameter and fused into the op
    def _create_regularization_of_grad(self, param, grad, regularization=None):
        reg = getattr(param, "regularizer", None)
        if reg is None:
            reg = regularization
        if grad is None:
            return grad
        if reg is None:
            self._decay[param.name] = (0.0, 0)
            return grad
        if type(reg) in (L2Decay, L1Decay):
            self._decay[param.name] = (float(reg._coeff), _WD_MODE["l1" if type(reg) is L1Decay else "l2"])
            return grad
        self._decay[param.name] = (0.0, 0)
        return super()._create_regularization_of_grad(param, grad, regularization)

    # ---- GradScaler: take the found-inf flag into the op instead of testing it on the host
    def _pir_create_optimization_pass(self, parameters_and_grads, param_group_idx=0):
        self._pending = []  # nothing left over from a pass that raised
        _check_param_attrs(parameters_and_grads)
        return super()._pir_create_optimization_pass(parameters_and_grads, param_group_idx)

    def _create_optimization_pass(self, parameters_and_grads, param_group_idx=0):
        self._pending = []
        _check_param_attrs(parameters_and_grads)
        parameters_and_grads = _densify_grads(parameters_and_grads, self._route_sparse)
        found_inf = self._get_auxiliary_var("found_inf")
        if framework.in_dygraph_mode() and isinstance(found_inf, paddle.Tensor):
            self._skip = found_inf
            self._set_auxiliary_var("found_inf", None)
            try:
                return self._pass(parameters_and_grads, param_group_idx)
            finally:
                self._set_auxiliary_var("found_inf", found_inf)
                self._skip = None
        return self._pass(parameters_and_grads, param_group_idx)

    def _route_sparse(self, pairs, densify):
        """SelectedRows gradients that the rows update takes stay as they are (``_sparse``)."""
        return self._sparse.route(self, pairs, self._param_hparams(pairs)[1], densify)

    def _pass(self, parameters_and_grads, param_group_idx):
        out = super()._create_optimization_pass(parameters_and_grads, param_group_idx)
        # Fused rows run in _finish_update, which Paddle's auto-parallel fully_shard replaces on the
        # optimizer instance without calling it: run whatever is left (normally nothing).
        self._run_pending()
        return out

    # ---- the update
    # Per-parameter work here runs for every parameter on every dygraph step (~1000 times a step for a
    # large model), so rows are plain tuples and the group key is built from values already at hand.
    def _param_hparams(self, param_and_grad):
        """(param, grad) and the (rho, epsilon, momentum, centered) that apply to it."""
        if isinstance(param_and_grad, dict):
            group = param_and_grad
            d = self._default_dict
            return group["params"], tuple(group.get(k, d[k]) for k in _HP_KEYS)
        return param_and_grad, self._default_hp

    def _append_optimize_op(self, block, param_and_grad):
        (param, grad), hp = self._param_hparams(param_and_grad)
        master = None
        if self._multi_precision and self._is_dtype_fp16_or_bf16(param.dtype):
            master = self._master_weights[param.name]
        get = self._get_accumulator_master
        coeff, mode = self._decay.pop(param.name, (0.0, 0))
        clip = self._value_clip.pop(param.name, None)
        if param.name in self._sparse.modes:  # a SelectedRows gradient: the rows update, run with the others
            accs = tuple(get(k, param) for k in (self._mean_square_acc_str, self._momentum_acc_str,
                                                 self._mean_grad_acc_str))
            mult = _fusable_lr_mult(param)
            lr = self._global_learning_rate() if mult is not None else self._create_param_lr((param, grad))
            self._sparse.defer(self, param, grad, hp, coeff, mode, clip, master, accs, lr, 1.0 if mult is None else mult,
                               self._skip_flag())
            return None
        # No slot where something else made the accumulators (auto-parallel's shard_accumulators makes
        # them per parameter): that parameter keeps per-parameter state.
        slot = self._flat_slot.get(param.name if master is None else master.name) if self._flat_state else None
        if slot is not None:
            chunk, offset = slot
            ms, mom, mg = chunk.buffers
        else:
            chunk = offset = None
            ms, mom, mg = (get(self._mean_square_acc_str, param), get(self._momentum_acc_str, param),
                           get(self._mean_grad_acc_str, param))
        # The last field is the key of the fused op the row joins: everything the op takes as one input or
        # attribute (a flat buffer included).
        row = (param, grad, ms, mom, mg, master, coeff, offset,
               (hp, mode, clip, param.dtype, master is not None, chunk))
        # Dynamic mode fuses even with fused=False: no program records the calls there, and Paddle's eager
        # runner costs ~10 us per custom-op call (docs/performance.md, "Paddle dynamic mode").
        if self._fused or framework.in_dygraph_mode():
            mult = _fusable_lr_mult(param)
            if mult is not None:
                self._pending.append((row, mult))
                return None
        return self._run([row], [1.0], self._create_param_lr((param, grad)), multi=False)

    def _finish_update(self, block, parameters_and_grads):
        self._run_pending()

    def _run_pending(self):
        sparse_calls = self._sparse.take()
        self._sparse.check(sparse_calls)  # before anything of the step is written
        pending, self._pending = self._pending, []
        groups = {}
        for row, lr_mult in pending:
            rows, mults = groups.setdefault(row[-1], ([], []))
            rows.append(row)
            mults.append(lr_mult)
        for rows, mults in groups.values():
            self._run(rows, mults, self._global_learning_rate(), multi=True)
        self._sparse.run(sparse_calls)

    def _run(self, rows, lr_mults, lr, multi):
        params, grads, mss, moms, mgs, masters, coeffs, offsets, keys = zip(*rows)
        (rho, epsilon, momentum, centered), wd_mode, clip, _, has_master, chunk = keys[0]
        centered = bool(centered)
        flat = chunk is not None
        multi = multi or flat  # flat state has the multi-tensor op only (a single parameter: a list of one)
        core_op = ("rmsprop_centered" if centered else "rmsprop") + ("_multi" if multi else "")
        attrs = {
            "rho": float(rho), "epsilon": float(epsilon), "momentum": float(momentum),
            "eps_in_sqrt": self._eps_in_sqrt, "lr_in_momentum": self._lr_in_momentum,
            "weight_decay_mode": wd_mode, "clip_gradient": -1.0 if clip is None else float(clip),
            "clip_after_weight_decay": False, "clip_weights": self._clip_weights,
            "weight_decay": coeffs[0],
        }
        dygraph = framework.in_dygraph_mode()
        if dygraph:
            # Paddle refuses in-place ops on leaf tensors that require grad; a detached view shares the
            # parameter's storage, so the op still updates the parameter itself.
            params = [p.detach() for p in params]
        pick = list if multi else (lambda ts: ts[0])
        state = (lambda ts: ts[0]) if flat else pick
        tensors = {"Param": pick(params), "Grad": pick(grads), "MeanSquare": state(mss), "Moment": state(moms),
                   "LearningRate": lr, "SkipUpdate": self._skip_flag()}
        if centered:
            tensors["MeanGrad"] = state(mgs)
        if has_master:
            tensors["MasterParam"] = pick(masters)
        if multi:
            # Per-tensor lists only where values differ: every attribute is printed into the program (and
            # into Executor.run's cache key on every call), 2 numbers per parameter for nothing otherwise.
            attrs["lr_mults"] = [] if all(m == 1.0 for m in lr_mults) else lr_mults
            attrs["weight_decays"] = [] if all(c == coeffs[0] for c in coeffs) else list(coeffs)
        if flat:
            # The kernel packs the slices itself when the op covers its buffer whole, in order.
            offsets = list(offsets)
            attrs["offsets"] = [] if offsets == chunk.offsets else offsets
        _invoke(core_op, tensors, attrs, checked=False, dygraph=dygraph, flat=flat)
        return None

    def _skip_flag(self):
        """The found-inf flag of an AMP step, if any: dygraph GradScaler (stashed by
        _create_optimization_pass) or paddle.static.amp's decorator, which sets the auxiliary variable to a
        program value before apply_gradients."""
        if self._skip is not None:
            return self._skip
        if in_pir_mode():
            flag = self._get_auxiliary_var("found_inf")
            if isinstance(flag, paddle.pir.Value):
                return flag
        return None

    def _update_param_group(self, parameters):
        return parameters.get("params")


_MASTER_SUFFIX = re.compile(r"_fp32_master_\d+$")
_FLAT_KINDS = (RMSProp._mean_square_acc_str, RMSProp._momentum_acc_str, RMSProp._mean_grad_acc_str)


class _FlatChunk:
    """Flat state of parameters whose accumulators were created together: one 1-D buffer per kind
    (``_FLAT_KINDS`` order), the slice of target k (a parameter, or its float32 master weight) at
    ``offsets[k]``."""

    def __init__(self, buffers, names, offsets, shapes):
        self.buffers = buffers
        self.names = names
        self.offsets = offsets
        self.shapes = shapes
        self._index = {name: k for k, name in enumerate(names)}

    def slice(self, kind, name):
        """A copy of target ``name``'s ``kind`` state, shaped like it (for ``state_dict()``)."""
        k = self._index[name]
        off, shape = self.offsets[k], self.shapes[k]
        with paddle.no_grad():
            buf = self.buffers[_FLAT_KINDS.index(kind)]
            return buf[off:off + math.prod(shape)].reshape(list(shape)).clone()

    def contents(self, opt, restore, partial=False):
        """[(buffer, new contents as a NumPy array)] with the slices ``restore`` holds for this chunk's
        parameters written in (and popped from it), cast to the buffer's dtype. Raises ValueError for a
        missing slice (unless ``partial``: the state is loaded before the first step, and a parameter
        absent from the checkpoint starts from zeros, as per-parameter state does) or one of the wrong
        size, TypeError for a value that is not floating-point; ``restore`` is left alone then."""
        out, used = [], []
        for kind, buf in zip(_FLAT_KINDS, self.buffers):
            acc = opt._acc_full_name(kind)
            flat = None
            for name, off, shape in zip(self.names, self.offsets, self.shapes):
                key = (_base_param_name(name), acc)
                value = restore.get(key)
                if value is None:
                    if partial:
                        continue
                    raise ValueError(f"state_dict: no {acc!r} accumulator for parameter {key[0]!r}")
                value = _state_values(value, buf.dtype, shape,
                                      f"state_dict: {acc!r} accumulator for parameter {key[0]!r}")
                if flat is None:
                    flat = buf.numpy().copy()
                flat[off:off + value.size] = value.reshape(-1)
                used.append(key)
            if flat is not None:
                out.append((buf, flat))
        for key in used:
            del restore[key]
        return out


_NUMPY_DTYPES = {paddle.float32: np.float32, paddle.float64: np.float64, paddle.float16: np.float16}


def _check_state_value(value, what):
    """A checkpoint value must be a floating-point Paddle tensor or array (a bfloat16 tensor's NumPy form,
    uint16 bits, is taken only as a Paddle tensor, where its dtype says what the bits are)."""
    if isinstance(value, paddle.Tensor):
        if not value.is_floating_point():
            raise TypeError(f"{what}: expected a floating-point tensor, got {value.dtype}")
        return
    if not hasattr(value, "shape") or np.asarray(value).dtype.kind != "f":
        raise TypeError(f"{what}: expected a floating-point paddle.Tensor or NumPy array, got "
                        f"{type(value).__name__} ({getattr(value, 'dtype', None)})")


def _state_values(value, dtype, shape, what):
    """``value`` (checked by _check_state_value) as a NumPy array of ``dtype`` (Paddle's NumPy form: uint16
    bits for bfloat16) and ``shape``, for ``set_value``: float16 state from ``paddle.optimizer.RMSProp``
    loads into our float32 state, and the other way."""
    shape = [int(d) for d in shape]
    if math.prod(value.shape) != math.prod(shape):
        raise ValueError(f"{what}: expected shape {shape} ({math.prod(shape)} elements), got {list(value.shape)}")
    if not isinstance(value, paddle.Tensor):
        if dtype in _NUMPY_DTYPES:
            return np.asarray(value).astype(_NUMPY_DTYPES[dtype]).reshape(shape)
        value = paddle.to_tensor(np.asarray(value, np.float32))
    return value.astype(dtype).numpy().reshape(shape)


def _base_param_name(name):
    """A float32 master weight's accumulators are keyed by the master's generated name; map it back to
    its parameter's name, which is stable across optimizer objects."""
    return _MASTER_SUFFIX.sub("", name)


def _distributed(param):
    """A parameter of auto-parallel (a dist tensor, or one ``fully_shard`` will shard): its state is
    sharded per parameter, with the parameter's placements, so flat state leaves it out."""
    return getattr(param, "_need_shard_auto", False) or param.is_dist()


def _numpy(value):
    return value.numpy() if hasattr(value, "numpy") else value


def _fusable_lr_mult(param):
    """The parameter's ``ParamAttr`` learning-rate scale as the fused op's float32 ``lr_mults`` entry, or
    None when that would change the result, and the parameter gets its own op, whose learning rate Paddle
    computes (``_create_param_lr``) as ``paddle.optimizer.RMSProp`` does. Not fusable: a scale that is
    not a number (Paddle then uses it as the parameter's learning rate), and, for a float64 parameter, a
    scale float32 cannot hold exactly (0.1 would be off by ~1e-9 after a few steps)."""
    attr = getattr(param, "optimize_attr", None) or {}
    mult = attr.get("learning_rate", 1.0)
    if type(mult) is not float:
        if not isinstance(mult, numbers.Real):
            return None
        mult = float(mult)
    if mult != 1.0 and param.dtype == paddle.float64 and float(np.float32(mult)) != mult:
        return None
    return mult


def _check_param_attrs(parameters_and_grads):
    """Per-parameter values set through ``ParamAttr`` (learning-rate scale, regularizer) bypass the
    constructor, and a PIR gradient may be sparse. Check them all before the first op runs: with one op
    per parameter, an input the op refuses for a later parameter would otherwise leave the earlier ones
    updated. Runs every dygraph step, so a float scale skips the ABC check."""
    for param, grad in _pairs(parameters_and_grads):
        if grad is None:
            continue
        if isinstance(grad, paddle.pir.Value) and grad.is_selected_row_type():
            # PIR has no op that scatters SelectedRows into a dense tensor (pd_op.add_n takes dense inputs
            # only), and Paddle's own PIR backward never makes one here: Embedding(sparse=True) gets the
            # dense pd_op.embedding_grad. Only a hand-built program can get this far.
            raise ValueError(f"{param.name}: Grad: expected a dense tensor, got a SelectedRows value (a PIR "
                             "static program offers no op turning it into a dense tensor; dynamic mode "
                             "takes sparse gradients)")
        mult = (getattr(param, "optimize_attr", None) or {}).get("learning_rate", 1.0)
        if (type(mult) is float or isinstance(mult, numbers.Real)) and not (math.isfinite(mult) and mult >= 0):
            raise ValueError(f"{param.name}: ParamAttr learning_rate: expected a finite scale >= 0, got {mult!r}")
        reg = getattr(param, "regularizer", None)
        if type(reg) in (L1Decay, L2Decay):
            try:
                registry.check_attr("rmsprop", "weight_decay", reg._coeff)
            except (TypeError, ValueError) as e:
                raise type(e)(f"{param.name}: ParamAttr regularizer: {e}") from None


def _pairs(parameters_and_grads):
    if isinstance(parameters_and_grads, dict):
        return parameters_and_grads.get("params", [])
    return parameters_and_grads


def _densify_grads(parameters_and_grads, route=None):
    """Dynamic mode: the (param, grad) pairs with each SelectedRows gradient (``Embedding(sparse=True)``)
    replaced by its dense equivalent, so both the per-parameter and the fused op take it unchanged.

    Paddle's sparse RMSProp kernel (``RmspropSparseKernel``) first merges the gradient, summing duplicate
    rows (``MergeAdd``), then updates every element of the parameter, reading rows absent from the gradient
    as 0 (``SparseRmspropGradFunctor``): mean_square, mean_grad and moment of untouched rows still decay and
    the parameter still moves by its moment. That is the dense update with the merged rows scattered into
    zeros, which is what this builds (with the same merge op, so duplicate rows are summed in Paddle's
    order; adding to 0 is exact)."""
    pairs = _pairs(parameters_and_grads)
    if not any(isinstance(g, paddle.Tensor) and g.is_selected_rows() for _, g in pairs):
        return parameters_and_grads
    # route(pairs, densify): the pairs with the gradients the rows update takes left sparse (_sparse.py).
    dense = route(pairs, _dense) if route is not None else [(p, _dense(p, g)) for p, g in pairs]
    if isinstance(parameters_and_grads, dict):
        return dict(parameters_and_grads, params=dense)
    return dense


def _dense(param, grad):
    """A dygraph SelectedRows gradient as a dense tensor of the parameter's shape; others unchanged."""
    if not (isinstance(grad, paddle.Tensor) and grad.is_selected_rows()):
        return grad
    with paddle.no_grad():
        merged = _C_ops.merge_selected_rows(grad)
        return _C_ops.add_n([paddle.zeros(param.shape, grad.dtype), merged])


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__} ({value!r})")


def _check_rule(name, value):
    if value is None:
        raise ValueError(f"{name}: expected a number, got None")
    registry.check_attr("rmsprop", name, value)


def _check_lr(lr):
    """The learning rate as Paddle's Optimizer takes it: an LRScheduler or a float (ints and NumPy floats,
    which Paddle rejects, are converted)."""
    if isinstance(lr, LRScheduler):
        return lr
    if lr is None:
        raise ValueError("learning_rate: expected a float or an LRScheduler, got None")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(f"learning_rate: expected a float or an LRScheduler, got {type(lr).__name__}")
    registry.check_attr("rmsprop", "learning_rate", lr)
    return float(lr)


def _check_params_list(where, params, single_ok=False):
    if single_ok and isinstance(params, (paddle.Tensor, framework.Variable, paddle.pir.Value)):
        return [params]  # Paddle accepts one parameter as a group's params
    if isinstance(params, (paddle.Tensor, dict, str, bytes)) or not hasattr(params, "__iter__"):
        raise TypeError(f"{where}: expected a list of parameters (paddle Tensors), got {type(params).__name__}")
    params = list(params)
    if not params:
        raise ValueError(f"{where}: expected at least one parameter, got an empty list (Paddle's RMSProp "
                         "fails on it with an IndexError)")
    for i, p in enumerate(params):
        if not isinstance(p, (paddle.Tensor, framework.Variable, paddle.pir.Value)):
            raise TypeError(f"{where}[{i}]: expected a parameter (paddle Tensor), got {type(p).__name__}")
    return params


def _check_parameters(parameters):
    """``parameters`` as a list (Paddle accepts any iterable): of Tensors, or of group dicts each with a
    non-empty ``params`` list. None (all parameters, static mode only) is left to Paddle."""
    if parameters is None:
        return None
    if isinstance(parameters, (paddle.Tensor, dict, str, bytes)) or not hasattr(parameters, "__iter__"):
        raise TypeError("parameters: expected a list of parameters or of parameter-group dicts, got "
                        f"{type(parameters).__name__}")
    parameters = list(parameters)
    if not parameters:
        raise ValueError("parameters: expected at least one parameter or parameter group, got an empty list "
                         "(Paddle's RMSProp fails on it with an IndexError)")
    if all(isinstance(g, dict) for g in parameters):
        out = []
        for i, group in enumerate(parameters):
            if "params" not in group:
                raise ValueError(f"parameters[{i}]: expected a parameter group with a 'params' entry, got keys "
                                 f"{sorted(group)}")
            out.append(dict(group, params=_check_params_list(f"parameters[{i}]['params']", group["params"], True)))
        return out
    if any(isinstance(g, dict) for g in parameters):
        raise TypeError("parameters: expected a list of parameters or a list of parameter-group dicts, got a "
                        "mix of both")
    return _check_params_list("parameters", parameters)


def _check_weight_decay(name, wd):
    if wd is None or isinstance(wd, (L1Decay, L2Decay)):
        if wd is not None:
            registry.check_attr("rmsprop", "weight_decay", wd._coeff)
        return
    if isinstance(wd, bool) or not isinstance(wd, numbers.Real):
        if hasattr(wd, "__call__"):
            return  # another WeightDecayRegularizer: applied by Paddle before the op
        raise TypeError(f"{name}: expected a float, L1Decay or L2Decay, got {type(wd).__name__}")
    registry.check_attr("rmsprop", "weight_decay", wd)


def _check_group(i, group):
    for k in ("rho", "epsilon", "momentum"):
        if k in group:
            try:
                _check_rule(k, group[k])
            except ValueError as e:
                raise ValueError(f"parameters[{i}]: {e}") from None
    if "centered" in group:
        _check_bool(f"parameters[{i}].centered", group["centered"])
    if "learning_rate" in group:
        lr = group["learning_rate"]
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"parameters[{i}].learning_rate: expected a scale >= 0, got {lr!r}")
    if "weight_decay" in group:
        _check_weight_decay(f"parameters[{i}].weight_decay", group["weight_decay"])
