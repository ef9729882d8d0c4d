"""Framework-neutral RMSProp optimizer over NumPy / CPU DLPack arrays, with per-framework conventions."""

from __future__ import annotations

import inspect
import numbers

import numpy as np

from . import registry
from ._checks import as_bool, as_float
from ._conventions import get_convention
from ._functional import rmsprop_multi_
from ._rows_optimizer import BucketStep, RowsBook, check_sparse_mode
from .schedules import as_schedule

__all__ = ["RMSProp"]

_GROUP_KEYS = ("learning_rate", "rho", "momentum", "epsilon", "centered", "weight_decay", "clip_gradient",
               "clip_weights", "lr_mult", "wd_mult", "sparse_mode")


def _as_view(name, x):
    """A writable NumPy view of ``x`` sharing its memory (NumPy arrays, CPU DLPack arrays)."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except (RuntimeError, BufferError, TypeError) as e:
            raise TypeError(f"{name}: expected a NumPy array or a CPU DLPack array, got {type(x).__name__} "
                            f"that NumPy cannot view ({e}); device arrays go through "
                            f"rmsprop_ops.rmsprop_multi_ or the framework adapters") from None
    raise TypeError(f"{name}: expected a NumPy array or a DLPack array, got {type(x).__name__}")


def _check_param(name, v):
    """Construction-time checks, so that a param the core would reject fails here and not at the first step."""
    if v.dtype.kind != "f" and v.dtype.name != "bfloat16":
        raise TypeError(f"{name}: expected a floating-point array (float32, float64, float16, bfloat16), "
                        f"got dtype {v.dtype}")
    if not v.flags.writeable:
        raise ValueError(f"{name}: expected a writable array (it is updated in place), got a read-only one")
    if not v.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array (the update is in place, so a contiguous copy "
                         f"would not update yours), got one with strides {v.strides}")
    return v


def _math_dtype(dtype):
    return np.float64 if dtype == np.float64 else np.float32


def _lr_function(lr):
    """A callable of the step; Keras-style callables without arguments are called without one."""
    fn = as_schedule(lr)
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return fn
    required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                                          p.POSITIONAL_OR_KEYWORD)]
    if not required and not any(p.kind == p.VAR_POSITIONAL for p in params):
        return lambda step: fn()
    return fn


def _optional_positive(name, value):
    if value is None:
        return None
    v = as_float(name, value)
    if not v > 0:
        raise ValueError(f"{name}: expected a float > 0 or None, got {value!r}")
    return v


class RMSProp:
    r"""RMSProp over NumPy / CPU DLPack arrays, updated in place through the multi-tensor core.

    One :func:`rmsprop_ops.rmsprop_multi_` call per step updates every tensor (one call per bucket
    of tensors whose rho / momentum / epsilon / centered / clipping differ; learning rates and weight
    decays may differ per tensor inside a call).

    The update, in order (Keras 3's order for its options, then the core's rule)::

        skip the whole step if skip_nonfinite and any gradient holds inf/NaN  (counted)
        g  = g / loss_scale_factor
        gradient_accumulation_steps = N: accumulate; every N-th call g = (g + acc) / N, else stop here
        g  = clip(g)   clipnorm (per tensor) | global_clipnorm | clipvalue       (Keras)
        lr = learning_rate(step) * lr_mult     step = number of calls so far (Keras counting)
        core: g = rescale_grad * g; clip_gradient; + wd*p (coupled) ...; ms = rho*ms + (1-rho)*g^2
              d = sqrt(ms + eps) | sqrt(ms) + eps;  p -= lr*wd*p (decoupled);  momentum;  clip_weights
        EMA of the weights (use_ema), overwritten into them every ema_overwrite_frequency steps

    Args:
        params: a list of arrays, or a list of dicts ``{"params": [...], **overrides}`` (parameter
            groups; overrides among learning_rate (or lr), rho, momentum, epsilon, centered,
            weight_decay, clip_gradient, clip_weights, lr_mult, wd_mult).
        convention: a key of :data:`rmsprop_ops.CONVENTIONS`: it sets eps placement, the accumulator's
            initial value, lr placement, weight-decay kind and the defaults of learning_rate, rho,
            momentum, epsilon. Every one can be overridden by keyword (``eps_in_sqrt``,
            ``initial_accumulator_value``, ``lr_in_momentum``, ``weight_decay_mode``, ...).
        learning_rate: float, a schedule from :mod:`rmsprop_ops.schedules`, or any callable of the step.
        rho, momentum, epsilon, centered: the usual (torch calls rho ``alpha``, MindSpore ``decay``).
        weight_decay: coefficient (None or 0 disables); its kind comes from the convention.
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency,
        loss_scale_factor, gradient_accumulation_steps: Keras 3's options, with Keras' semantics.
        rescale_grad, clip_gradient, clip_weights: MXNet's options (rescale first, clip elementwise).
        skip_nonfinite: skip (and count in :attr:`skipped_steps`) a step whose gradients hold inf/NaN.
        sparse_mode: what a row-sparse gradient (:class:`rmsprop_ops.RowGrad`, or ``(indices, values)``) does
            to the rows it leaves out (also a group key): "auto" (default) catches them up when next touched
            where that gives the dense numbers (no momentum, weight decay or ``clip_weights``) and steps
            every row otherwise; "dense" always steps every row; "exact" and "lazy" always catch up ("lazy"
            also with momentum, its parameters lagging between touches). See ``docs/sparse.md``. With
            clipnorm, clipvalue, global_clipnorm, gradient accumulation or skip_nonfinite a row-sparse
            gradient is made dense first.

    Defaults differ between frameworks: Keras lr 1e-3, rho 0.9, eps 1e-7; torch lr 1e-2, alpha 0.99,
    eps 1e-8 outside the root; MindSpore lr 0.1, eps 1e-10, ms at ones; Paddle rho 0.95, eps 1e-6 and
    no default lr. See ``docs/conventions.md``.

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
                 centered=False, weight_decay=None, eps_in_sqrt=None, initial_accumulator_value=None,
                 lr_in_momentum=None, weight_decay_mode=None, clip_after_weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None,
                 rescale_grad=1.0, clip_gradient=None, clip_weights=None, skip_nonfinite=False, sparse_mode="auto"):
        conv = get_convention(convention)
        self._rows = RowsBook(sparse_mode)
        self.convention = conv
        d = conv.defaults
        base = {
            "learning_rate": d["learning_rate"] if learning_rate is None else learning_rate,
            "rho": d["rho"] if rho is None else rho,
            "momentum": d["momentum"] if momentum is None else momentum,
            "epsilon": d["epsilon"] if epsilon is None else epsilon,
            "centered": centered,
            "weight_decay": 0.0 if weight_decay is None else weight_decay,
            "clip_gradient": clip_gradient, "clip_weights": clip_weights, "lr_mult": 1.0, "wd_mult": 1.0,
            "sparse_mode": sparse_mode,
        }
        self.eps_in_sqrt = as_bool("eps_in_sqrt", conv.eps_in_sqrt if eps_in_sqrt is None else eps_in_sqrt)
        self.lr_in_momentum = as_bool("lr_in_momentum",
                                      conv.lr_in_momentum if lr_in_momentum is None else lr_in_momentum)
        self.initial_accumulator_value = as_float(
            "initial_accumulator_value",
            conv.initial_accumulator_value if initial_accumulator_value is None else initial_accumulator_value)
        if self.initial_accumulator_value < 0:
            raise ValueError(f"initial_accumulator_value: expected >= 0, got {initial_accumulator_value!r}")
        self.weight_decay_mode = conv.weight_decay_mode if weight_decay_mode is None else weight_decay_mode
        if self.weight_decay_mode not in ("l2", "l1", "decoupled"):
            raise ValueError(f"weight_decay_mode: expected 'l2', 'l1' or 'decoupled', got {weight_decay_mode!r}")
        self.clip_after_weight_decay = as_bool(
            "clip_after_weight_decay",
            conv.clip_after_weight_decay if clip_after_weight_decay is None else clip_after_weight_decay)

        self.clipnorm = _optional_positive("clipnorm", clipnorm)
        self.clipvalue = _optional_positive("clipvalue", clipvalue)
        self.global_clipnorm = _optional_positive("global_clipnorm", global_clipnorm)
        if sum(c is not None for c in (self.clipnorm, self.clipvalue, self.global_clipnorm)) > 1:
            raise ValueError(f"clipnorm, clipvalue, global_clipnorm: expected at most one set, got "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self.use_ema = as_bool("use_ema", use_ema)
        self.ema_momentum = as_float("ema_momentum", ema_momentum)
        if not 0.0 <= self.ema_momentum <= 1.0:
            raise ValueError(f"ema_momentum: expected a float in [0, 1], got {ema_momentum!r}")
        if ema_overwrite_frequency is not None and (isinstance(ema_overwrite_frequency, bool) or not isinstance(
                ema_overwrite_frequency, numbers.Integral) or ema_overwrite_frequency < 1):
            raise ValueError(f"ema_overwrite_frequency: expected an int >= 1 or None, got {ema_overwrite_frequency!r}")
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = _optional_positive("loss_scale_factor", loss_scale_factor)
        if gradient_accumulation_steps is not None and (isinstance(gradient_accumulation_steps, bool) or not isinstance(
                gradient_accumulation_steps, numbers.Integral) or gradient_accumulation_steps < 2):
            raise ValueError(f"gradient_accumulation_steps: expected an int >= 2 or None, "
                             f"got {gradient_accumulation_steps!r}")
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.rescale_grad = as_float("rescale_grad", rescale_grad)
        registry.check_attr("rmsprop", "rescale_grad", self.rescale_grad)
        self.skip_nonfinite = as_bool("skip_nonfinite", skip_nonfinite)

        self._build(params, base)
        self._iterations = 0
        self.skipped_steps = 0

    # ----------------------------------------------------------------------------------- building
    def _build(self, params, base):
        if isinstance(params, (np.ndarray, dict)) or hasattr(params, "__dlpack__"):
            raise TypeError(f"params: expected a list of arrays or of group dicts, got {type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError("params: expected at least one array, got an empty list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        views, owners = [], []
        for gi, group in enumerate(groups):
            if not isinstance(group, dict) or "params" not in group:
                raise TypeError(f"params[{gi}]: expected a dict with a 'params' list, got {type(group).__name__}")
            group = dict(group)
            if "lr" in group:
                group["learning_rate"] = group.pop("lr")
            unknown = sorted(set(group) - set(_GROUP_KEYS) - {"params"})
            if unknown:
                raise ValueError(f"params[{gi}]: unknown group keys {unknown}; expected some of {list(_GROUP_KEYS)}")
            hp = {k: group.get(k, base[k]) for k in _GROUP_KEYS}
            self._check_group(gi, hp)
            members = list(group["params"])
            hp["params"] = members
            self.param_groups.append(hp)
            for pi, p in enumerate(members):
                name = f"params[{gi}][{pi}]" if len(groups) > 1 else f"params[{pi}]"
                views.append(_check_param(name, _as_view(name, p)))
                owners.append(gi)
        if len({id(v) for v in views}) != len(views) or len({v.__array_interface__["data"][0] for v in views
                                                             if v.size}) != len([v for v in views if v.size]):
            raise ValueError("params: the same array appears twice")
        self._views = views
        self._owner = np.asarray(owners, dtype=np.intp)
        self._lr_fns = [_lr_function(g["learning_rate"]) for g in self.param_groups]

        self._ms, self._mom, self._mg = [], [], []
        for v, gi in zip(views, owners):
            hp = self.param_groups[gi]
            mdt = _math_dtype(v.dtype)
            self._ms.append(np.full(v.shape, self.initial_accumulator_value, dtype=mdt))
            self._mom.append(np.zeros(v.shape, mdt) if self._effective_momentum(hp) > 0 else None)
            self._mg.append(np.zeros(v.shape, mdt) if hp["centered"] else None)
        self._ema = [v.copy() for v in views] if self.use_ema else None
        self._acc = [np.zeros_like(v) for v in views] if self.gradient_accumulation_steps else None

        buckets = {}
        for i, (v, gi) in enumerate(zip(views, owners)):
            hp = self.param_groups[gi]
            key = (v.dtype.str, hp["rho"], self._effective_momentum(hp), hp["epsilon"], hp["centered"],
                   hp["clip_gradient"], hp["clip_weights"])
            buckets.setdefault(key, []).append(i)
        self._buckets = []
        for key, idx in buckets.items():
            _, rho, mom, eps, centered, cg, cw = key
            wd = [self._effective_wd(self.param_groups[owners[i]]) for i in idx]
            self._buckets.append({
                "idx": idx, "identity": idx == list(range(len(views))),
                "params": [views[i] for i in idx], "ms": [self._ms[i] for i in idx],
                "mom": [self._mom[i] for i in idx] if mom > 0 else None,
                "mg": [self._mg[i] for i in idx] if centered else None,
                "owner": self._owner[idx],
                "lr_mult": np.asarray([float(self.param_groups[owners[i]]["lr_mult"]) for i in idx]),
                "wd": wd[0] if len(set(wd)) == 1 else wd,
                "kw": {"rho": rho, "momentum": mom, "epsilon": eps, "centered": centered,
                       "clip_gradient": cg, "clip_weights": cw},
            })

    def _check_group(self, gi, hp):
        where = f"group {gi}"
        lr = hp["learning_rate"]
        if lr is None:
            raise ValueError(f"learning_rate: the {self.convention.name!r} convention has no default; "
                             f"expected a float, a schedule or a callable, got None")
        if not callable(lr):
            registry.check_attr("rmsprop", "learning_rate", lr)
        for name in ("rho", "momentum", "epsilon", "weight_decay"):
            try:
                registry.check_attr("rmsprop", name, hp[name])
            except (TypeError, ValueError) as e:
                raise type(e)(f"{e} ({where})") from None
        as_bool("centered", hp["centered"])
        for name in ("clip_gradient", "clip_weights"):
            if hp[name] is not None:
                registry.check_attr("rmsprop", name, hp[name])
        for name in ("lr_mult", "wd_mult"):
            if as_float(name, hp[name]) < 0:
                raise ValueError(f"{name}: expected >= 0, got {hp[name]!r} ({where})")
        check_sparse_mode(f"sparse_mode ({where})", hp["sparse_mode"])

    def _effective_momentum(self, hp):
        if self.convention.momentum_requires_centered and not hp["centered"]:
            return 0.0
        return float(hp["momentum"])

    def _effective_wd(self, hp):
        return float(hp["weight_decay"]) * float(hp["wd_mult"])

    # ----------------------------------------------------------------------------------- stepping
    @property
    def iterations(self) -> int:
        """Optimizer updates so far (Keras: calls // gradient_accumulation_steps)."""
        return self._iterations // (self.gradient_accumulation_steps or 1)

    @property
    def calls(self) -> int:
        """step() calls that were not skipped (what schedules see, as in Keras)."""
        return self._iterations

    def learning_rates(self, step=None) -> list[float]:
        """The learning rate of every group at ``step`` (default: the next step)."""
        step = self._iterations if step is None else step
        return [float(fn(step)) for fn in self._lr_fns]

    def _grads(self, grads, need_views):
        if isinstance(grads, (np.ndarray, dict)) or not hasattr(grads, "__len__"):
            raise TypeError(f"grads: expected a list of {len(self._views)} arrays, got {type(grads).__name__}")
        grads = list(grads)
        if len(grads) != len(self._views):
            raise ValueError(f"grads: expected {len(self._views)} arrays (one per param), got {len(grads)}")
        if not need_views:
            return grads
        out = [_as_view(f"grads[{i}]", g) for i, g in enumerate(grads)]
        for i, (g, p) in enumerate(zip(out, self._views)):
            if g.shape != p.shape or g.dtype != p.dtype:
                raise ValueError(f"grads[{i}]: expected shape {p.shape} and dtype {p.dtype}, "
                                 f"got shape {g.shape} and dtype {g.dtype}")
        return out

    def _clip(self, gs):
        if self.clipnorm is not None:
            out = []
            for g in gs:
                norm = np.sqrt(np.sum(np.square(g, dtype=np.float64)))
                out.append((g * self.clipnorm / max(norm, self.clipnorm)).astype(g.dtype, copy=False)
                           if norm > 0 else g)
            return out
        if self.global_clipnorm is not None:
            norm = np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in gs))
            scale = self.global_clipnorm * min(1.0 / norm if norm else np.inf, 1.0 / self.global_clipnorm)
            return [(g * scale).astype(g.dtype, copy=False) for g in gs]
        if self.clipvalue is not None:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in gs]
        return gs

    def step(self, grads) -> bool:
        """One optimizer step; updates the params (and this optimizer's state) in place.

        Args:
            grads: one array per param, in the order the params were given (groups flattened); for a
                param of rows, also a :class:`rmsprop_ops.RowGrad` ``(indices, values)``.

        Returns:
            True if the step was applied (or accumulated), False if skipped for inf/NaN gradients.
        """
        python_side = (self.clipnorm is not None or self.clipvalue is not None or self.global_clipnorm is not None
                       or self.gradient_accumulation_steps is not None or self.skip_nonfinite)
        gs = self._grads(self._rows.normalize(self, grads, densify=python_side), python_side)
        if self.skip_nonfinite and not all(np.isfinite(g).all() for g in gs):
            self.skipped_steps += 1
            return False
        step = self._iterations
        rescale = self.rescale_grad
        if self.loss_scale_factor is not None:
            if python_side:
                gs = [g / np.asarray(self.loss_scale_factor, g.dtype) for g in gs]
            else:
                rescale = rescale / self.loss_scale_factor
        n_acc = self.gradient_accumulation_steps
        if n_acc is not None:
            if (step + 1) % n_acc != 0:
                for a, g in zip(self._acc, gs):
                    a += g
                self._finish_step()
                return True
            gs = [(g + a) / np.asarray(n_acc, g.dtype) for g, a in zip(gs, self._acc)]
        gs = self._clip(gs)
        self._apply(gs, step, rescale)
        if n_acc is not None:
            for a in self._acc:
                a.fill(0)
        self._finish_step()
        return True

    def _apply(self, gs, step, rescale):
        group_lr = np.asarray(self.learning_rates(step), dtype=np.float64)
        plans = []
        for b in self._buckets:
            lr = group_lr[b["owner"]] * b["lr_mult"]
            lr = float(lr[0]) if (lr == lr[0]).all() else lr.tolist()
            plans.append(BucketStep(b, lr, gs if b["identity"] else [gs[i] for i in b["idx"]]))
        self._rows.check(self, plans, rescale)  # every row-sparse gradient, before anything is written
        for plan in plans:
            if self._rows.take(self, plan, rescale):
                continue
            b, lr, grads = plan
            rmsprop_multi_(b["params"], grads, b["ms"], lr=lr, moments=b["mom"], mean_grads=b["mg"],
                           eps_in_sqrt=self.eps_in_sqrt, lr_in_momentum=self.lr_in_momentum,
                           weight_decay=b["wd"], weight_decay_mode=self.weight_decay_mode,
                           rescale_grad=rescale, clip_after_weight_decay=self.clip_after_weight_decay, **b["kw"])

    def _finish_step(self):
        if self.use_ema:
            it = self.iterations
            m = self.ema_momentum if it != 0 else 0.0
            for avg, p in zip(self._ema, self._views):
                avg *= np.asarray(m, avg.dtype)
                avg += np.asarray(1.0 - m, avg.dtype) * p
            if self.ema_overwrite_frequency and (it + 1) % self.ema_overwrite_frequency == 0:
                for avg, p in zip(self._ema, self._views):
                    np.copyto(p, avg)
        self._iterations += 1

    def catch_up(self) -> None:
        """Bring the rows that row-sparse gradients skipped up to date (``sparse_mode`` "exact": their state;
        "lazy": their state and parameters, the pending momentum moves made, scaled by the last step's
        learning rate where lr is outside the momentum). The state is then the dense update's; call it before
        reading or exporting the parameters of a lazy run. A no-op without row-sparse gradients."""
        self._rows.catch_up_all(self, max(self._iterations - 1, 0))

    def finalize_variable_values(self) -> None:
        """Overwrite the params with their moving averages (Keras; a no-op without use_ema)."""
        if self.use_ema:
            for avg, p in zip(self._ema, self._views):
                np.copyto(p, avg)

    # ----------------------------------------------------------------------------------- state
    def _state_arrays(self):
        named = {"mean_square": self._ms, "moment": self._mom, "mean_grad": self._mg, "ema": self._ema,
                 "accumulator": self._acc}
        out = {}
        for name, arrays in named.items():
            for i, a in enumerate(arrays or ()):
                if a is not None:
                    out[f"{name}.{i}"] = a
        out.update(self._rows.state_arrays())  # per-row counters of row-sparse parameters
        return out

    def state_dict(self) -> dict:
        """The optimizer state as plain NumPy arrays and numbers (copies): ``np.savez(f, **sd)`` saves it."""
        sd = {k: a.copy() for k, a in self._state_arrays().items()}
        sd["iterations"] = int(self._iterations)
        sd["skipped_steps"] = int(self.skipped_steps)
        return sd

    def load_state_dict(self, state) -> None:
        """Restore a :meth:`state_dict` (or ``dict(np.load(f))``); validates everything before writing."""
        if not hasattr(state, "keys"):
            raise TypeError(f"state: expected a dict, got {type(state).__name__}")
        self._rows.prepare_load(state.keys(), self._views)
        mine = self._state_arrays()
        expected = set(mine) | {"iterations", "skipped_steps"}
        if set(state.keys()) != expected:
            missing, extra = sorted(expected - set(state.keys())), sorted(set(state.keys()) - expected)
            raise ValueError(f"state: keys do not match this optimizer (missing {missing}, unexpected {extra})")
        arrays = {}
        for k, a in mine.items():
            v = np.asarray(state[k])
            if v.shape != a.shape or v.dtype != a.dtype:
                raise ValueError(f"state[{k!r}]: expected shape {a.shape} and dtype {a.dtype}, "
                                 f"got shape {v.shape} and dtype {v.dtype}")
            arrays[k] = v
        counters = {}
        for k in ("iterations", "skipped_steps"):
            v = np.asarray(state[k])
            if v.shape != () or v.dtype.kind not in "iu" or int(v) < 0:
                raise ValueError(f"state[{k!r}]: expected a non-negative int, got {state[k]!r}")
            counters[k] = int(v)
        for k, a in mine.items():
            np.copyto(a, arrays[k])
        self._iterations = counters["iterations"]
        self.skipped_steps = counters["skipped_steps"]
