"""``rmsprop_ops.mindspore.RMSProp``: ``mindspore.nn.RMSProp`` running on the rmsprop_ops kernel."""

from __future__ import annotations

import os
import warnings

import numpy as np
from mindspore import Tensor, jit
from mindspore import dtype as mstype
from mindspore.common.initializer import initializer
from mindspore.common.parameter import Parameter, ParameterTuple
from mindspore.nn.optim.optimizer import Optimizer, _ConvertToCell, _IteratorLearningRate, opt_init_args_register
from mindspore.ops import composite as C
from mindspore.ops import functional as F
from mindspore.ops import operations as P

from .. import registry
from ._op import flat_offsets, kernel_available, make_config, make_op
from ._sparse import dense_gradients

__all__ = ["RMSProp"]

_FALLBACK_ENV = "RMSPROP_OPS_MS_FALLBACK"
_fallback_warned = False
_SIXTEEN_BIT = (mstype.float16, mstype.bfloat16)

_builtin_apply = C.MultitypeFuncGraph("rmsprop_ops_builtin_apply")


@_builtin_apply.register("Function", "Number", "Number", "Number", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _builtin_plain(opt, decay, epsilon, momentum, lr, weight, ms, mom, grad):
    dt = grad.dtype
    return F.depend(True, opt(weight, ms, mom, F.cast(lr, dt), grad, F.cast(decay, dt), F.cast(momentum, dt),
                              F.cast(epsilon, dt)))


@_builtin_apply.register("Function", "Number", "Number", "Number", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                        "Tensor")
def _builtin_centered(opt, decay, epsilon, momentum, lr, weight, mg, ms, mom, grad):
    return F.depend(True, opt(weight, mg, ms, mom, grad, lr, decay, momentum, epsilon))


def _warn_fallback(reason: str) -> None:
    global _fallback_warned
    if not _fallback_warned:
        _fallback_warned = True
        warnings.warn(f"rmsprop_ops.mindspore.RMSProp: {reason}; falling back to MindSpore's "
                      "ApplyRMSProp/ApplyCenteredRMSProp (same numerics, one op per parameter)", RuntimeWarning,
                      stacklevel=3)


def _to_numpy(t):
    """A NumPy copy of a Tensor; bfloat16 goes through float32 (NumPy has no bfloat16)."""
    if t.dtype == mstype.bfloat16:
        t = t.astype(mstype.float32)
    return np.array(t.asnumpy(), copy=True)


def _numpy_dtype(dtype):
    return {mstype.float64: np.float64, mstype.float16: np.float16}.get(dtype, np.float32)


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
    the group's first param>``, ...) instead of one per parameter. MindSpore's runtime spends ~0.5 us per
    op input on every launch, so with 1000 parameters this saves about a millisecond per step (see
    docs/performance.md). The numerics are the same; the checkpoint names are not nn.RMSProp's, so move
    state between the layouts (or to and from ``nn.RMSProp``) with :meth:`state_per_parameter` and
    :meth:`load_state_per_parameter`. Where the optimizer falls back to MindSpore's ops the state stays
    per parameter (with a warning).

    Args:
        params: list of Parameters, or of dicts with "params", "lr", "weight_decay",
            "grad_centralization", "order_params" (as in MindSpore).
        learning_rate: float, int, scalar or 1-D Tensor, Iterable or LearningRateSchedule. Default 0.1.
        decay: float in [0, 1] (MindSpore accepts any value >= 0; the core rejects > 1). Default 0.9.
        momentum: float >= 0. Default 0.0.
        epsilon: float > 0. Default 1e-10.
        use_locking: bool, only used by the fallback ops. Default False.
        centered: bool. Default False.
        loss_scale: float > 0 dividing the gradients. Default 1.0.
        weight_decay: float, int or a Cell (dynamic). Default 0.0.
        flat_state: bool, keyword only; one state buffer per launch rather than per parameter. Default False.

    Differences from ``mindspore.nn.RMSProp`` (and from Paddle/Keras): none in behaviour by default. The
    mean square starts at ones as in MindSpore (Paddle and Keras start at zeros); ``decay > 1`` raises
    ValueError here; float16/bfloat16 params keep float32 state.

    Example:
        >>> import mindspore as ms
        >>> from mindspore import nn
        >>> from rmsprop_ops.mindspore import RMSProp
        >>> net = nn.Dense(4, 2)
        >>> opt = RMSProp(net.trainable_params(), learning_rate=0.01, momentum=0.9)
        >>> step = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), opt)
    """

    @opt_init_args_register
    def __init__(self, params, learning_rate=0.1, decay=0.9, momentum=0.0, epsilon=1e-10, use_locking=False,
                 centered=False, loss_scale=1.0, weight_decay=0.0, *, flat_state=False):
        from mindspore import _checkparam as validator

        super().__init__(learning_rate, params, weight_decay, loss_scale)
        validator.check_value_type("decay", decay, [float], self.cls_name)
        validator.check_non_negative_float(decay, "decay", self.cls_name)
        validator.check_value_type("momentum", momentum, [float], self.cls_name)
        validator.check_non_negative_float(momentum, "momentum", self.cls_name)
        validator.check_value_type("epsilon", epsilon, [float], self.cls_name)
        validator.check_positive_float(epsilon, "epsilon", self.cls_name)
        validator.check_value_type("use_locking", use_locking, [bool], self.cls_name)
        validator.check_value_type("centered", centered, [bool], self.cls_name)
        validator.check_value_type("flat_state", flat_state, [bool], self.cls_name)
        for attr, name, value in (("rho", "decay", decay), ("epsilon", "epsilon", epsilon),
                                  ("momentum", "momentum", momentum)):
            try:
                registry.check_attr("rmsprop", attr, value)
            except ValueError as e:
                raise ValueError(f"For '{self.cls_name}', the argument '{name}' is out of range: {e}") from None

        self._check_lr_values()

        self.centered = centered
        self.momentum = momentum
        self.epsilon = epsilon
        self.decay = decay

        forced = os.environ.get(_FALLBACK_ENV, "") not in ("", "0")
        self.use_kernel = kernel_available() and not forced
        self.flat_state = flat_state and self.use_kernel
        if not self.use_kernel:
            _warn_fallback(f"{_FALLBACK_ENV} is set" if forced else "no rmsprop_ops kernel for this device")
            if flat_state:
                warnings.warn("rmsprop_ops.mindspore.RMSProp: flat_state=True needs the rmsprop_ops kernel; "
                              "the state stays one Parameter per parameter", UserWarning, stacklevel=2)
            self.opt = P.ApplyCenteredRMSProp(use_locking) if centered else P.ApplyRMSProp(use_locking)
            if centered:
                self.mg = self._parameters.clone(prefix="mean_grad", init="zeros")
            self.ms = self._parameters.clone(prefix="mean_square", init="ones")
            self.moment = self._parameters.clone(prefix="moment", init="zeros")
            return

        self._init_kernel(weight_decay)
        make = self._flat_buffers if self.flat_state else self._state
        if centered:
            self.mg = make("mean_grad", "zeros")
        self.ms = make("mean_square", "ones")
        self.moment = make("moment", "zeros")

    def _check_lr_values(self):
        """Stricter than MindSpore: a learning rate given as numbers (a Tensor, a list, per group) must be
        finite and >= 0; MindSpore checks only a plain float. A LearningRateSchedule is checked by the
        kernel (on CPU) when it runs."""
        for lr in self.learning_rate if self.is_group_lr else (self.learning_rate,):
            if isinstance(lr, (_ConvertToCell, _IteratorLearningRate)):  # MindSpore's wrappers of numbers
                lr = lr.learning_rate
            if not isinstance(lr, Tensor):
                continue
            values = lr.asnumpy().astype(np.float64).ravel()
            bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
            if bad.size:
                raise ValueError(f"For '{self.cls_name}', the argument 'learning_rate' must hold finite values "
                                 f">= 0, but got {values[bad[0]]} (value {bad[0]} of {values.size}).")

    def _state(self, prefix, init):
        """Clones of the params as MindSpore makes them; the core keeps 16-bit params' state in float32."""
        if not any(p.dtype in _SIXTEEN_BIT for p in self._parameters):
            return self._parameters.clone(prefix=prefix, init=init)
        out = []
        for p in self._parameters:
            if p.dtype in _SIXTEEN_BIT:
                out.append(Parameter(initializer(init, p.shape, mstype.float32), name=f"{prefix}.{p.name}"))
            else:
                x = p.clone(init)
                x.name = f"{prefix}.{x.name}"
                out.append(x)
        return ParameterTuple(out)

    def _flat_buffers(self, prefix, init):
        """One 1-D state Parameter per launch, float64 for float64 params and float32 otherwise."""
        out = []
        for idx, size in zip(self._cluster_index, self._flat_sizes):
            first = self._parameters[idx[0]]
            dt = mstype.float64 if first.dtype == mstype.float64 else mstype.float32
            out.append(Parameter(initializer(init, (size,), dt), name=f"{prefix}.flat.{first.name}"))
        return ParameterTuple(out)

    def _init_kernel(self, weight_decay):
        n = self.param_length
        gc = self.is_group and any(self.grad_centralization_flags)
        # MindSpore decays before centralising; with centralisation or a dynamic decay the decay stays in
        # MindSpore's ops and the kernel gets 0, otherwise the kernel applies it with the gradient scaling.
        kernel_decay = self.exec_weight_decay and not self.dynamic_weight_decay and not gc
        self._ms_decay = self.exec_weight_decay and not kernel_decay
        if not kernel_decay:
            wds = [0.0] * n
        elif self.is_group:
            # group_weight_decay holds wd * loss_scale (MindSpore decays before unscaling).
            wds = [w / self.loss_scale if f else 0.0 for w, f in zip(self.group_weight_decay, self.decay_flags)]
        else:
            wds = [float(weight_decay) if f else 0.0 for f in self.decay_flags]

        clusters = {}
        for i, p in enumerate(self._parameters):
            lr_key = id(self.group_lr[i]) if self.is_group_lr else None
            clusters.setdefault((lr_key, str(p.dtype)), []).append(i)
        index, lr_index, configs, sizes, slots = [], [], [], [], [None] * n
        for c, idx in enumerate(clusters.values()):
            index.append(tuple(idx))
            lr_index.append(idx[0])
            offsets = None
            if self.flat_state:
                offsets, total = flat_offsets(int(np.prod(self._parameters[i].shape)) for i in idx)
                # MindSpore refuses Parameters of zero elements; a group of empty params gets one spare.
                sizes.append(max(total, 1))
                for i, off in zip(idx, offsets):
                    slots[i] = (c, off)
            configs.append(make_config(len(idx), rho=self.decay, epsilon=self.epsilon, momentum=self.momentum,
                                       centered=self.centered, weight_decays=[wds[i] for i in idx],
                                       rescale_grad=1.0 / self.loss_scale, offsets=offsets))
        self._single = len(index) == 1 and not self.is_group_lr and index[0] == tuple(range(n))
        self._cluster_index = tuple(index)
        self._cluster_lr_index = tuple(lr_index)
        self._configs = tuple(configs)
        self._flat_sizes = tuple(sizes)
        self._flat_slots = tuple(slots)
        self._made_names = tuple(p.name for p in self._parameters)
        self._ops = tuple(make_op(len(idx), self.centered, flat_size=sizes[c] if self.flat_state else None)
                          for c, idx in enumerate(index))

    def _state_lists(self):
        """(prefix, buffers, names): the names nn.RMSProp's per-parameter state would have now.

        A Cell holding the optimizer may have prefixed every name since (``<cell path>.mean_square.<param
        name when the state was made>``); the flat buffers' names carry the same prefix.
        """
        lists = [("mean_square", self.ms), ("moment", self.moment)]
        if self.centered:
            lists.append(("mean_grad", self.mg))
        out = []
        for prefix, buffers in lists:
            if not self.flat_state:
                out.append((prefix, buffers, [b.name for b in buffers]))
                continue
            names = []
            for i, made in enumerate(self._made_names):
                c = self._flat_slots[i][0]
                flat = buffers[c].name
                tail = f"{prefix}.flat.{self._made_names[self._cluster_index[c][0]]}"
                if not flat.endswith(tail):
                    raise RuntimeError(f"For '{self.cls_name}', the flat state buffer '{flat}' was renamed (expected "
                                       f"a name ending in '{tail}'): its per-parameter names are unknown.")
                names.append(f"{flat[:len(flat) - len(tail)]}{prefix}.{made}")
            out.append((prefix, buffers, names))
        return out

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
        out = {}
        for _, buffers, names in self._state_lists():
            if self.flat_state:
                flat = [b.asnumpy() for b in buffers]
            for i, (p, name) in enumerate(zip(self._parameters, names)):
                if self.flat_state:
                    c, off = self._flat_slots[i]
                    size = int(np.prod(p.shape))
                    out[name] = flat[c][off:off + size].reshape(p.shape).copy()
                else:
                    out[name] = _to_numpy(buffers[i])
        return out

    def load_state_per_parameter(self, state, strict: bool = True) -> list:
        """Set the state from a mapping in :meth:`state_per_parameter`'s names (``nn.RMSProp``'s), e.g. the
        dict ``mindspore.load_checkpoint`` returns; keys of other parameters are ignored.

        Args:
            state: mapping of names to Tensors, Parameters or NumPy arrays shaped like their parameters.
            strict: when True (default) every state buffer of this optimizer must be in ``state``;
                when False the missing ones keep their values.

        Returns the names that were loaded. Raises ValueError (a missing name, a shape that differs) or
        TypeError (a value that is not an array) before anything is written.
        """
        from collections.abc import Mapping

        if not isinstance(state, Mapping):
            raise TypeError(f"For '{self.cls_name}', the argument 'state' must be a mapping of names to "
                            f"Tensors or arrays, but got {type(state).__name__}.")
        if not isinstance(strict, bool):
            raise TypeError(f"For '{self.cls_name}', the argument 'strict' must be a bool, but got "
                            f"{type(strict).__name__}.")
        plan, missing = [], []
        for _, buffers, names in self._state_lists():
            for i, (p, name) in enumerate(zip(self._parameters, names)):
                if name not in state:
                    missing.append(name)
                    continue
                value = state[name]
                if isinstance(value, Tensor):
                    value = _to_numpy(value)
                elif not isinstance(value, np.ndarray):
                    raise TypeError(f"For '{self.cls_name}', state['{name}'] must be a Tensor or a NumPy array, "
                                    f"but got {type(value).__name__}.")
                if tuple(value.shape) != tuple(p.shape):
                    raise ValueError(f"For '{self.cls_name}', state['{name}'] must have the shape of parameter "
                                     f"'{p.name}' {tuple(p.shape)}, but got {tuple(value.shape)}.")
                if not np.issubdtype(value.dtype, np.floating):
                    raise TypeError(f"For '{self.cls_name}', state['{name}'] must hold floating-point values, "
                                    f"but got dtype {value.dtype}.")
                plan.append((name, buffers, i, value))
        if strict and missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise ValueError(f"For '{self.cls_name}', the argument 'state' lacks {', '.join(missing[:3])}{more} "
                             "(pass strict=False to keep those buffers as they are).")
        loaded = []
        if self.flat_state:
            # Every touched flat buffer is rewritten once, from a host copy holding the new slices.
            hosts = {}
            for name, buffers, i, value in plan:
                c, off = self._flat_slots[i]
                key = (id(buffers), c)
                if key not in hosts:
                    hosts[key] = (buffers[c], buffers[c].asnumpy().copy())
                hosts[key][1][off:off + value.size] = value.reshape(-1)
                loaded.append(name)
            for target, host in hosts.values():
                target.set_data(Tensor(host))
            return loaded
        for name, buffers, i, value in plan:
            target = buffers[i]
            data = Tensor(np.array(value, dtype=_numpy_dtype(target.dtype)))
            target.set_data(data if data.dtype == target.dtype else data.astype(target.dtype))
            loaded.append(name)
        return loaded

    def __call__(self, *args, **kwargs):
        # A direct call from Python (a step inside a compiled cell never comes here): a graph sees NumPy
        # arrays and None only as constants, so their type is checked here, where nn.RMSProp also raises
        # TypeError (for None it raises AttributeError, which names nothing).
        grads = args[0] if len(args) == 1 and not kwargs else kwargs.get("gradients", ())
        if isinstance(grads, (tuple, list)):
            for k, g in enumerate(grads):
                if not isinstance(g, Tensor):
                    raise TypeError(f"For '{self.cls_name}', the argument 'gradients[{k}]' must be a Tensor, but "
                                    f"got {type(g).__name__}.")
        return super().__call__(*args, **kwargs)

    @jit
    def construct(self, gradients):
        # Checked while the graph compiles; the types are nn.RMSProp's for the same mistakes.
        if not isinstance(gradients, tuple):
            raise RuntimeError(f"For '{self.cls_name}', the argument 'gradients' must be a tuple of Tensors.")
        if len(gradients) != len(self._parameters):
            raise RuntimeError(f"For '{self.cls_name}', the argument 'gradients' must hold one Tensor per "
                               f"parameter: expected {len(self._parameters)}, got {len(gradients)}.")
        gradients = self.flatten_gradients(gradients)
        gradients = dense_gradients(self.hyper_map, gradients, self._parameters)  # RowTensor (_sparse.py)
        if self.use_kernel:
            return self._kernel_step(gradients)
        return self._builtin_step(gradients)

    def _kernel_step(self, gradients):
        if self._ms_decay:
            gradients = self.decay_weight(gradients)
        gradients = self.gradients_centralization(gradients)
        params = self._parameters
        # The step counter advances after the launches, so that a launch the kernel refuses (a schedule
        # giving a NaN lr) leaves every Parameter of the optimizer as it was.
        # With flat state self.ms (and the others) hold one buffer per launch, so the whole tuple is the
        # single launch's state, and launch c takes element c.
        if self._single:
            lr = self.get_lr()
            if self.centered:
                out = self._ops[0](lr, self._configs[0], *params, *gradients, *self.ms, *self.moment, *self.mg)
            else:
                out = self._ops[0](lr, self._configs[0], *params, *gradients, *self.ms, *self.moment)
            self.assignadd(self.global_step, self.global_step_increase_tensor)
            return out
        lrs = ()
        for r in self._cluster_lr_index:
            lrs = lrs + (self._lr_at(r),)
        if self.dynamic_lr and len(lrs) > 1:
            lrs = self._all_or_none(lrs)
        outs = ()
        for c in range(len(self._ops)):
            idx, lr, cfg, op = self._cluster_index[c], lrs[c], self._configs[c], self._ops[c]
            ps, gs = (), ()
            for i in idx:
                ps = ps + (params[i],)
                gs = gs + (gradients[i],)
            if self.flat_state:
                ss, ms_, mgs = (self.ms[c],), (self.moment[c],), ()
                if self.centered:
                    mgs = (self.mg[c],)
            else:
                ss, ms_, mgs = (), (), ()
                for i in idx:
                    ss = ss + (self.ms[i],)
                    ms_ = ms_ + (self.moment[i],)
                if self.centered:
                    for i in idx:
                        mgs = mgs + (self.mg[i],)
            outs = outs + (op(lr, cfg, *ps, *gs, *ss, *ms_, *mgs),)
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        return outs

    def _all_or_none(self, lrs):
        """Every launch gets a refusable lr when one schedule's is (the kernel refuses NaN, inf and negative
        values), so that no group is updated before a refused launch: NaN and inf spread through 0 * lr, a
        negative value through the minimum."""
        poison = lrs[0] * 0.0
        low = lrs[0]
        for lr in lrs[1:]:
            poison = poison + lr * 0.0
            low = F.minimum(low, lr)
        out = ()
        for lr in lrs:
            out = out + (F.select(low < 0.0, low, lr + poison),)
        return out

    def _lr_at(self, r):
        if self.is_group_lr:
            if self.dynamic_lr:
                return self.learning_rate[r](self.global_step).reshape(())
            return self.learning_rate[r]
        if self.dynamic_lr:
            return self.learning_rate(self.global_step).reshape(())
        return self.learning_rate

    def _builtin_step(self, gradients):
        params = self._parameters
        gradients = self.decay_weight(gradients)
        gradients = self.gradients_centralization(gradients)
        gradients = self.scale_grad(gradients)
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        step = F.partial(_builtin_apply, self.opt, self.decay, self.epsilon, self.momentum)
        if not self.is_group_lr:
            step = F.partial(_builtin_apply, self.opt, self.decay, self.epsilon, self.momentum, lr)
        if self.centered:
            if self.is_group_lr:
                return self.hyper_map_reverse(step, lr, params, self.mg, self.ms, self.moment, gradients)
            return self.hyper_map_reverse(step, params, self.mg, self.ms, self.moment, gradients)
        if self.is_group_lr:
            return self.hyper_map_reverse(step, lr, params, self.ms, self.moment, gradients)
        return self.hyper_map_reverse(step, params, self.ms, self.moment, gradients)
