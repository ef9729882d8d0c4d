"""Checkpoint translation between RMSProp implementations, through one framework-free representation.

:class:`RMSPropState` holds, per parameter, what every RMSProp keeps: the mean square, the momentum
buffer and the mean gradient (centered), how the buffer is scaled (``lr`` inside it or not), plus the
weight's moving average and gradient accumulator where Keras keeps them. Readers and writers:

=================  ====================================  ==========================================
implementation     read                                  write
=================  ====================================  ==========================================
torch ``RMSprop``  :func:`from_torch` (``state_dict()``)  :func:`to_torch` (``load_state_dict``)
timm ``RMSpropTF`` :func:`from_timm`                      :func:`to_timm`
Keras 3            :func:`from_keras` (``variables``)     :func:`to_keras` (``load_own_variables``)
MXNet 1.9.1        :func:`from_mxnet` (``(n, g, delta)``) :func:`to_mxnet`
this package       ``RMSProp.export_state()``             ``RMSProp.import_state()``
=================  ====================================  ==========================================

A translation is exact or refused with a ValueError naming what cannot map. The momentum buffer moves
between "lr outside" (torch: ``p -= lr * buf``) and "lr inside" (TF, Keras, Paddle, MindSpore: ``p -=
buf``) by a factor of the learning rate of the next step: exact only given that rate (``mom = lr *
buf``), which the torch / timm state dicts record in their groups and which can be passed as
``learning_rate``. A buffer the target rule does not keep (momentum 0, not centered), or lacks, is an
error rather than a silent drop or zero fill. Eps placement and the accumulator's initial value are
rule choices, not state: they are not checked. Arrays are NumPy; pass ``as_tensor`` (e.g.
``torch.as_tensor``) to get a framework's tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

__all__ = ["ParamState", "RMSPropState", "with_lr_in_momentum", "from_torch", "to_torch", "from_timm", "to_timm",
           "from_keras", "to_keras", "keras_layout", "from_mxnet", "to_mxnet"]


@dataclass(frozen=True)
class ParamState:
    """One parameter's state. ``mean_square`` None: not started (a fresh state in any target).
    ``moment_includes_lr``: ``p -= moment`` (True) or ``p -= lr * moment`` (False).
    ``learning_rate``: the rate of the next step, where the source records it (to move ``moment``)."""

    mean_square: np.ndarray | None
    moment: np.ndarray | None = None
    mean_grad: np.ndarray | None = None
    moment_includes_lr: bool = True
    learning_rate: float | None = None
    step: int | None = None
    average: np.ndarray | None = None
    accumulator: np.ndarray | None = None


@dataclass(frozen=True)
class RMSPropState:
    """Every parameter's state, in the optimizer's parameter order, and its step count (calls)."""

    params: tuple
    iterations: int = 0


def _arr(x):
    if x is None:
        return None
    if hasattr(x, "detach"):  # torch tensors (CPU) without importing torch
        x = x.detach().cpu().numpy()
    return np.array(x, copy=True)


def _rates(learning_rate, n):
    if learning_rate is None or isinstance(learning_rate, (int, float)):
        return [learning_rate] * n
    rates = list(learning_rate)
    if len(rates) != n:
        raise ValueError(f"learning_rate: expected a number or {n} values (one per param), got {len(rates)}")
    return rates


def with_lr_in_momentum(state: RMSPropState, lr_in_momentum: bool, *, learning_rate=None) -> RMSPropState:
    """``state`` with every momentum buffer scaled for ``lr_in_momentum``; ``learning_rate`` (a number or
    one per param) is the rate of the next step, else the one the source recorded."""
    out = []
    for i, (p, lr) in enumerate(zip(state.params, _rates(learning_rate, len(state.params)))):
        if p.moment is None or p.moment_includes_lr == lr_in_momentum:
            out.append(replace(p, moment_includes_lr=lr_in_momentum))
            continue
        lr = p.learning_rate if lr is None else lr
        if lr is None:
            raise ValueError(f"learning_rate: params[{i}]'s momentum buffer moves from lr "
                             f"{'inside' if p.moment_includes_lr else 'outside'} to lr "
                             f"{'inside' if lr_in_momentum else 'outside'} by a factor of the next step's "
                             f"learning rate, which the state does not record; pass learning_rate=")
        lr = float(lr)
        if not math.isfinite(lr) or lr < 0 or (lr == 0 and not lr_in_momentum):
            raise ValueError(f"learning_rate: params[{i}]'s momentum buffer cannot be divided by a learning "
                             f"rate of {lr} (expected a finite rate > 0)")
        m = p.moment * np.asarray(lr, p.moment.dtype) if lr_in_momentum else p.moment / np.asarray(lr, p.moment.dtype)
        out.append(replace(p, moment=m, moment_includes_lr=lr_in_momentum, learning_rate=lr))
    return RMSPropState(params=tuple(out), iterations=state.iterations)


def _check_buffers(state, i, *, momentum, centered, where):
    p = state.params[i]
    if p.mean_square is None:
        return
    for name, have, want in (("momentum buffer", p.moment is not None, momentum),
                             ("mean gradient", p.mean_grad is not None, centered)):
        if have and not want:
            raise ValueError(f"params[{i}]: the state has a {name} that {where} does not keep "
                             f"({'momentum is 0' if name.startswith('momentum') else 'not centered'}); it "
                             f"cannot map exactly")
        if want and not have:
            why = "momentum > 0" if name.startswith("momentum") else "centered"
            raise ValueError(f"params[{i}]: {where} needs a {name} ({why}) that the state does not have; it "
                             f"cannot map exactly")


# ------------------------------------------------------------------------------ torch / timm
def _from_torch_like(state_dict, lr_in_momentum_of):
    if not isinstance(state_dict, dict) or "param_groups" not in state_dict or "state" not in state_dict:
        raise TypeError("state_dict: expected an optimizer state_dict() with 'state' and 'param_groups'")
    params = []
    steps = []
    for group in state_dict["param_groups"]:
        for pid in group["params"]:
            st = state_dict["state"].get(pid, {})
            if not st:
                params.append(ParamState(mean_square=None))
                continue
            if "square_avg" not in st:
                raise ValueError(f"state_dict['state'][{pid!r}]: expected RMSprop state (square_avg, "
                                 f"momentum_buffer, grad_avg, step), got keys {sorted(st)}")
            step = st.get("step")
            step = None if step is None else int(float(_arr(step)))
            steps.append(step or 0)
            params.append(ParamState(
                mean_square=_arr(st["square_avg"]), moment=_arr(st.get("momentum_buffer")),
                mean_grad=_arr(st.get("grad_avg")), moment_includes_lr=lr_in_momentum_of(group),
                learning_rate=float(_arr(group["lr"])), step=step))
    return RMSPropState(params=tuple(params), iterations=max(steps, default=0))


def _to_torch_like(state, template, lr_in_momentum_of, as_tensor, where, learning_rate):
    if not isinstance(template, dict) or "param_groups" not in template:
        raise TypeError("template: expected the target optimizer's state_dict() (its param_groups are kept)")
    groups = template["param_groups"]
    n = sum(len(g["params"]) for g in groups)
    if n != len(state.params):
        raise ValueError(f"state: expected {n} params (the template's), got {len(state.params)}")
    conv = as_tensor or (lambda a: a)
    given = _rates(learning_rate, n)
    out, i = {}, 0
    for group in groups:
        inside = lr_in_momentum_of(group)
        for pid in group["params"]:
            p = state.params[i]
            _check_buffers(state, i, momentum=group["momentum"] > 0, centered=bool(group["centered"]), where=where)
            if p.mean_square is not None:
                # the target continues with its group's rate: the buffer is scaled for that one
                rate = float(_arr(group["lr"])) if given[i] is None else given[i]
                p = with_lr_in_momentum(RMSPropState((p,)), inside, learning_rate=rate).params[0]
                entry = {"step": conv(np.asarray(float(state.iterations if p.step is None else p.step),
                                                 np.float32)),
                         "square_avg": conv(p.mean_square)}
                if p.moment is not None:
                    entry["momentum_buffer"] = conv(p.moment)
                if p.mean_grad is not None:
                    entry["grad_avg"] = conv(p.mean_grad)
                out[pid] = entry
            i += 1
    return {"state": out, "param_groups": [dict(g) for g in groups]}


def from_torch(state_dict) -> RMSPropState:
    """``torch.optim.RMSprop.state_dict()`` -> state (the buffer is lr-free: ``p -= lr * buf``)."""
    return _from_torch_like(state_dict, lambda group: False)


def to_torch(state: RMSPropState, template, *, as_tensor=None, learning_rate=None) -> dict:
    """A state dict for ``torch.optim.RMSprop.load_state_dict``; ``template`` is the target optimizer's
    own ``state_dict()`` (its groups: params, lr, momentum, centered; buffers are scaled for its ``lr``
    unless ``learning_rate`` is given)."""
    return _to_torch_like(state, template, lambda group: False, as_tensor, "torch's RMSprop", learning_rate)


def from_timm(state_dict) -> RMSPropState:
    """timm ``RMSpropTF.state_dict()`` -> state (the buffer holds lr when the group's ``lr_in_momentum``)."""
    return _from_torch_like(state_dict, lambda group: bool(group.get("lr_in_momentum", True)))


def to_timm(state: RMSPropState, template, *, as_tensor=None, learning_rate=None) -> dict:
    """A state dict for timm ``RMSpropTF.load_state_dict`` (``template``: the target's ``state_dict()``)."""
    return _to_torch_like(state, template, lambda group: bool(group.get("lr_in_momentum", True)), as_tensor,
                          "timm's RMSpropTF", learning_rate)


# ------------------------------------------------------------------------------ Keras 3
def keras_layout(config, n_params) -> list:
    """The names of ``keras.optimizers.RMSprop(**config).variables`` once built on ``n_params`` variables,
    in order (Keras 3's ``BaseOptimizer.__init__`` / ``build`` and ``RMSprop.build``)."""
    names = ["iterations"]
    if isinstance(config.get("learning_rate"), (int, float)):
        names.append("learning_rate")
    kinds = []
    if config.get("use_ema"):
        kinds.append("average")
    if config.get("gradient_accumulation_steps"):
        kinds.append("accumulator")
    kinds.append("mean_square")
    if config.get("momentum", 0.0) > 0:
        kinds.append("moment")
    if config.get("centered"):
        kinds.append("mean_grad")
    return names + [f"{kind}.{i}" for kind in kinds for i in range(n_params)]


def from_keras(variables, config) -> RMSPropState:
    """Keras 3 ``RMSprop``: ``variables`` (``[v.numpy() for v in opt.variables]``, or the store dict of
    ``save_own_variables``) and ``opt.get_config()`` -> state (the buffer holds lr)."""
    if isinstance(variables, dict):
        variables = [variables[str(i)] for i in range(len(variables))]
    variables = [_arr(v) for v in variables]
    header = 2 if isinstance(config.get("learning_rate"), (int, float)) else 1
    per = len(keras_layout(config, 1)) - header
    if per <= 0 or (len(variables) - header) % per:
        raise ValueError(f"variables: {len(variables)} variables do not fit this config's layout "
                         f"({header} + {per} per param)")
    n = (len(variables) - header) // per
    named = dict(zip(keras_layout(config, n), variables))
    lr = float(named["learning_rate"]) if "learning_rate" in named else None
    return RMSPropState(params=tuple(ParamState(
        mean_square=named[f"mean_square.{i}"], moment=named.get(f"moment.{i}"), mean_grad=named.get(f"mean_grad.{i}"),
        moment_includes_lr=True, learning_rate=lr, average=named.get(f"average.{i}"),
        accumulator=named.get(f"accumulator.{i}")) for i in range(n)), iterations=int(named["iterations"]))


def to_keras(state: RMSPropState, config, *, learning_rate=None) -> list:
    """The values of ``keras.optimizers.RMSprop(**config).variables`` (built on the same variables) for
    ``opt.load_own_variables({str(i): v for i, v in enumerate(values)})``."""
    n = len(state.params)
    if learning_rate is None and isinstance(config.get("learning_rate"), (int, float)):
        learning_rate = config["learning_rate"]
    state = with_lr_in_momentum(state, True, learning_rate=learning_rate)
    for i in range(n):
        _check_buffers(state, i, momentum=config.get("momentum", 0.0) > 0, centered=bool(config.get("centered")),
                       where="Keras' RMSprop")
    values = []
    for name in keras_layout(config, n):
        if name == "iterations":
            values.append(np.asarray(state.iterations, np.int64))
            continue
        if name == "learning_rate":
            values.append(np.asarray(config["learning_rate"], np.float32))
            continue
        kind, i = name.split(".")
        p = state.params[int(i)]
        if p.mean_square is None:
            raise ValueError(f"params[{i}]: not started; Keras builds every slot at once, so it cannot map "
                             f"exactly")
        value = getattr(p, kind)
        if value is None:
            raise ValueError(f"params[{i}]: Keras keeps a {kind} (this config) that the state does not have")
        values.append(value)
    return values


# ------------------------------------------------------------------------------ MXNet 1.9.1
def from_mxnet(states, *, centered, learning_rate=None) -> RMSPropState:
    """MXNet 1.9.1 ``create_state`` values -> state: ``(n,)`` or ``(n, g, delta)`` (``w += delta``, so the
    buffer is ``-delta`` with lr inside)."""
    params = []
    for i, s in enumerate(states):
        parts = tuple(s) if isinstance(s, (tuple, list)) else (s,)
        if len(parts) != (3 if centered else 1):
            raise ValueError(f"states[{i}]: expected {'(n, g, delta)' if centered else '(n,)'}, got {len(parts)} items")
        n = _arr(parts[0])
        if centered:
            params.append(ParamState(mean_square=n, mean_grad=_arr(parts[1]), moment=-_arr(parts[2]),
                                     moment_includes_lr=True, learning_rate=learning_rate))
        else:
            params.append(ParamState(mean_square=n))
    return RMSPropState(params=tuple(params))


def to_mxnet(state: RMSPropState, *, centered, learning_rate=None) -> list:
    """MXNet 1.9.1 states (``(n,)`` / ``(n, g, delta)``); MXNet keeps a buffer only when centered."""
    state = with_lr_in_momentum(state, True, learning_rate=learning_rate)
    out = []
    for i, p in enumerate(state.params):
        _check_buffers(state, i, momentum=centered, centered=centered, where="MXNet's RMSProp")
        if p.mean_square is None:
            raise ValueError(f"params[{i}]: not started; MXNet creates its state up front")
        out.append((p.mean_square, p.mean_grad, -p.moment) if centered else (p.mean_square,))
    return out
