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
from ._op import kernel_available, make_config, make_op

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
                 centered=False, loss_scale=1.0, weight_decay=0.0):
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
        if not self.use_kernel:
            _warn_fallback(f"{_FALLBACK_ENV} is set" if forced else "no rmsprop_ops kernel for this device")
            self.opt = P.ApplyCenteredRMSProp(use_locking) if centered else P.ApplyRMSProp(use_locking)
            if centered:
                self.mg = self._parameters.clone(prefix="mean_grad", init="zeros")
            self.ms = self._parameters.clone(prefix="mean_square", init="ones")
            self.moment = self._parameters.clone(prefix="moment", init="zeros")
            return

        if centered:
            self.mg = self._state("mean_grad", "zeros")
        self.ms = self._state("mean_square", "ones")
        self.moment = self._state("moment", "zeros")
        self._init_kernel(weight_decay)

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
        index, lr_index, configs = [], [], []
        for idx in clusters.values():
            index.append(tuple(idx))
            lr_index.append(idx[0])
            configs.append(make_config(len(idx), rho=self.decay, epsilon=self.epsilon, momentum=self.momentum,
                                       centered=self.centered, weight_decays=[wds[i] for i in idx],
                                       rescale_grad=1.0 / self.loss_scale))
        self._single = len(index) == 1 and not self.is_group_lr and index[0] == tuple(range(n))
        self._cluster_index = tuple(index)
        self._cluster_lr_index = tuple(lr_index)
        self._configs = tuple(configs)
        self._ops = tuple(make_op(len(idx), self.centered) for idx in index)

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
        for idx, lr, cfg, op in zip(self._cluster_index, lrs, self._configs, self._ops):
            ps, gs, ss, ms_ = (), (), (), ()
            for i in idx:
                ps = ps + (params[i],)
                gs = gs + (gradients[i],)
                ss = ss + (self.ms[i],)
                ms_ = ms_ + (self.moment[i],)
            if self.centered:
                mgs = ()
                for i in idx:
                    mgs = mgs + (self.mg[i],)
                outs = outs + (op(lr, cfg, *ps, *gs, *ss, *ms_, *mgs),)
            else:
                outs = outs + (op(lr, cfg, *ps, *gs, *ss, *ms_),)
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
