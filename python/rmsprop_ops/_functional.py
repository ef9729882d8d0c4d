"""Functional, in-place RMSProp on NumPy / DLPack arrays: the thinnest layer over the core."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from . import _core, _dlpack
from ._toolkit.checks import (as_bool, as_float, as_tuple, attr_spec, check_attr, describe, is_real, list_form,
                              registry_document)
from ._toolkit.checks import scalar_inputs

__all__ = ["rmsprop_", "rmsprop_multi_"]

_SINGLE = {"params": "param", "grads": "grad", "mean_squares": "mean_square", "moments": "moment",
           "mean_grads": "mean_grad", "master_params": "master_param"}
_WRITTEN = ("params", "mean_squares", "moments", "mean_grads", "master_params")


def _is_array(value) -> bool:
    return hasattr(value, "__dlpack__") or hasattr(value, "__array_interface__")


def _per_tensor(name, value, n, listed):
    """One value per param for ``name``, checked against the registry's list attribute ``listed``."""
    values = as_tuple(name, value, "numbers")
    if len(values) != n:
        raise ValueError(f"{name}: expected a number or a list of {n} values (one per param), got "
                         f"{len(values)} values")
    out = [as_float(f"{name}[{i}]", v) for i, v in enumerate(values)]
    for i, v in enumerate(out):
        check_attr("rmsprop_multi", listed["name"], v, f"{name}[{i}]")
    return out


class _Plan(NamedTuple):
    """How argument ``name`` reaches the core, worked out once per name from the registry."""
    kind: str              # "float", "bool", "enum", "list" (a list attribute), or "flag" (skip_update)
    spec: dict | None      # the registry attribute
    listed: dict | None    # its per-tensor list form (lr -> lr_mults), if any
    array_ok: bool         # a one-element array may stand for it (a scalar input the kernel reads)
    codes: dict            # an enum's choices -> codes


@functools.cache
def _plan(name):
    scalar = scalar_inputs().get(name)
    if scalar is not None and scalar["attr"] is None:
        return _Plan("flag", None, None, True, {})
    try:
        spec = attr_spec(name)
    except ValueError:
        return None
    kind = "list" if spec["scope"] == "list" else spec["type"]
    codes = {c: i for i, c in enumerate(spec["choices"])}
    return _Plan(kind, spec, list_form(name), scalar is not None, codes)


def _core_attrs(fn, name, value, n):
    """The core's keyword(s) for argument ``name`` of ``fn``: a number (any real, a bool, an enum by its
    choice), a one-element array for an attribute the kernel can read from memory (lr, rescale_grad,
    step), or a list of one value per param for one that has a per-tensor form. Types are checked here,
    ranges by the core's filler (the registry), both before anything is written."""
    plan = _plan(name)
    if plan is None:
        raise TypeError(f"{fn}() got an unexpected keyword argument {name!r}")
    if type(value) is float and plan.kind == "float":  # the common case, without the checks below
        return {name: value}
    if plan.kind == "flag":
        if value is None or isinstance(value, (bool, np.bool_)):
            return {name: bool(value)}
        if _is_array(value):
            return {name: value}
        raise TypeError(f"{name}: expected a bool or a one-element array, got {type(value).__name__}")
    if isinstance(value, (list, tuple)) and (plan.listed is not None or plan.kind == "list"):
        listed = plan.listed or plan.spec
        values = _per_tensor(name, value, n, listed)
        if plan.spec["scope"] == "call":  # the list multiplies the attribute (lr_mults): the number becomes 1
            return {name: 1.0, listed["name"]: values}
        return {name: values}
    if plan.kind == "bool":
        return {name: as_bool(name, value)}
    if plan.kind == "enum":
        if not isinstance(value, str):
            raise TypeError(f"{name}: expected a str, one of {list(plan.codes)}, got {type(value).__name__} "
                            f"({describe(value)})")
        if value not in plan.codes:
            raise ValueError(f"{name}: expected one of {list(plan.codes)}, got {describe(value)}")
        return {name: plan.codes[value]}
    if value is None and plan.spec["negative_disables"]:
        return {name: -1.0}
    if plan.array_ok and value is not None and not is_real(value):
        if _is_array(value):
            return {name: value}
        raise TypeError(f"{name}: expected a float or a one-element array, got {type(value).__name__} "
                        f"({describe(value)})")
    return {name: as_float(name, value)}


@functools.cache
def _plain(kind):
    """Names taking a plain Python ``float`` (or ``bool``) as it is: no further check in Python."""
    ours = {**scalar_inputs(), **{a["name"]: a for op in registry_document()["ops"] for a in op["attrs"]},
            **{a["c_name"]: a for op in registry_document()["ops"] for a in op["attrs"]}}
    return frozenset(name for name in ours if (p := _plan(name)) is not None and p.kind == kind)


def _call(fn, lists, *, centered, list_names, **attrs):
    # Every list is read once, here: the call works on these snapshots whatever the caller's lists do later.
    lists = {k: None if v is None else as_tuple(k, v) for k, v in lists.items()}
    n = len(lists["params"])
    centered = as_bool("centered", centered)
    core = {}
    floats, bools = _plain("float"), _plain("bool")
    for name, value in attrs.items():
        kind = type(value)
        if (kind is float and name in floats) or (kind is bool and name in bools):
            core[name] = value  # the common case; the core's filler checks the range
        else:
            core.update(_core_attrs(fn, name, value, n))
    scalars = {k: core[k] for k in _scalar_names() if k in core}
    handover = _dlpack.prepare(lists, scalars, _WRITTEN, _SINGLE, list_names)
    _core.update(*handover.lists.values(), centered=centered, list_names=list_names, stream=handover.stream,
                 **core)
    _dlpack.bump_versions(handover.written)


@functools.cache
def _scalar_names():
    return tuple(scalar_inputs())


def rmsprop_(param, grad, mean_square, *, lr, rho, epsilon, momentum=0.0, moment=None, centered=False,
             mean_grad=None, eps_in_sqrt=True, lr_in_momentum=True, weight_decay=0.0,
             weight_decay_mode="l2", rescale_grad=1.0, clip_gradient=None, clip_weights=None,
             clip_after_weight_decay=True, master_param=None, skip_update=False, **attrs) -> None:
    r"""One RMSProp step on one parameter, in place.

    The update, in the order the kernel applies it (``g`` is ``grad``, ``p`` the param, or its float32
    ``master_param`` when given)::

        g  = rescale_grad * g
        g  = clip(g, clip_gradient)              # here when clip_after_weight_decay=False
        g  = g + wd * p        (l2)   or   g + wd * sign(p)   (l1)
        g  = clip(g, clip_gradient)              # here when clip_after_weight_decay=True (MXNet order)
        ms = rho * ms + (1 - rho) * g^2
        v  = ms                                   # centered: mg = rho*mg + (1-rho)*g; v = max(ms - mg^2, 0)
        d  = sqrt(v + eps)     (eps_in_sqrt)   or   sqrt(v) + eps
        p  = p - lr * wd * p   (decoupled)
        with a moment buffer:   mom = momentum*mom + lr*g/d; p -= mom      (lr_in_momentum)
                                mom = momentum*mom + g/d;    p -= lr*mom   (not lr_in_momentum)
        without:                p -= lr * g / d
        p  = clip(p, clip_weights)

    Args:
        param: float32/float64/float16/bfloat16 array, updated in place (C-contiguous, writable).
        grad: same dtype and shape as ``param``.
        mean_square: the ``ms`` accumulator, float32 (float64 for float64 params). Paddle, Keras and
            torch start it at zeros; MindSpore and TF1 at ones.
        lr: learning rate: a number or a one-element array (read by the kernel, no host sync on GPU).
        rho: decay of the moving averages, in [0, 1].
        epsilon: > 0.
        momentum: >= 0; when > 0, ``moment`` is required. A ``moment`` given with momentum 0 is still
            updated (it then holds the last step, as in Paddle and MindSpore).
        centered: Graves' variant; needs ``mean_grad`` (starts at zeros everywhere).
        eps_in_sqrt: True for Paddle, MindSpore, Keras, TF; False for torch.
        lr_in_momentum: True for Paddle, MindSpore, Keras, TF; False for torch.
        weight_decay, weight_decay_mode: ``"l2"`` (coupled, Paddle/MindSpore/torch/MXNet), ``"l1"``
            (Paddle's L1Decay) or ``"decoupled"`` (Keras 3).
        rescale_grad: multiplies the gradient first (1 / loss scale); number or one-element array.
        clip_gradient, clip_weights: clip to ``[-c, c]``; None (or a negative number) disables.
        master_param: optional float32 master copy for float16/bfloat16 params.
        skip_update: True, or a one-element array holding a nonzero value, makes the call a no-op.

    Raises:
        TypeError / ValueError naming the argument, before any array is modified.

    Example:
        >>> import numpy as np, rmsprop_ops
        >>> p = np.array([10.0], np.float32); ms = np.zeros_like(p)
        >>> rmsprop_ops.rmsprop_(p, p.copy(), ms, lr=0.1, rho=0.9, epsilon=1e-7)  # Keras' doc example
        >>> round(float(p[0]), 6)
        9.683772
    """
    _call("rmsprop_", dict(params=[param], grads=[grad], mean_squares=[mean_square], moments=[moment],
                           mean_grads=[mean_grad], master_params=[master_param]), lr=lr, rho=rho,
          epsilon=epsilon, momentum=momentum, centered=centered, eps_in_sqrt=eps_in_sqrt,
          lr_in_momentum=lr_in_momentum, weight_decay=weight_decay, weight_decay_mode=weight_decay_mode,
          rescale_grad=rescale_grad, clip_gradient=clip_gradient, clip_weights=clip_weights,
          clip_after_weight_decay=clip_after_weight_decay, skip_update=skip_update, list_names=False, **attrs)


def rmsprop_multi_(params: Sequence, grads: Sequence, mean_squares: Sequence, *, lr, rho, epsilon,
                   momentum=0.0, moments=None, centered=False, mean_grads=None, master_params=None,
                   eps_in_sqrt=True, lr_in_momentum=True, weight_decay=0.0, weight_decay_mode="l2",
                   rescale_grad=1.0, clip_gradient=None, clip_weights=None, clip_after_weight_decay=True,
                   skip_update=False, **attrs) -> None:
    """One RMSProp step on a list of parameters of any sizes, in one fused call.

    Same rule and arguments as :func:`rmsprop_`, with lists in place of single arrays. ``lr`` and
    ``weight_decay`` may also be lists with one value per parameter (parameter groups, MXNet's
    ``lr_mult``/``wd_mult``). All params must share one dtype; ``moments``, ``mean_grads`` and
    ``master_params`` are None or lists with an array for every param. Everything is validated before
    anything is written, and results are bitwise identical to calling :func:`rmsprop_` per tensor.

    Example:
        >>> import numpy as np, rmsprop_ops
        >>> ps = [np.ones(3, np.float32), np.ones(5, np.float32)]
        >>> gs = [np.full(3, 0.5, np.float32), np.full(5, -1.0, np.float32)]
        >>> mss = [np.zeros_like(p) for p in ps]
        >>> rmsprop_ops.rmsprop_multi_(ps, gs, mss, lr=[0.01, 0.1], rho=0.9, epsilon=1e-6)
        >>> [round(float(p[0]), 4) for p in ps]
        [0.9684, 1.3162]
    """
    _call("rmsprop_multi_", dict(params=params, grads=grads, mean_squares=mean_squares, moments=moments,
                                 mean_grads=mean_grads, master_params=master_params), lr=lr, rho=rho, epsilon=epsilon,
          momentum=momentum, centered=centered, eps_in_sqrt=eps_in_sqrt, lr_in_momentum=lr_in_momentum,
          weight_decay=weight_decay, weight_decay_mode=weight_decay_mode, rescale_grad=rescale_grad,
          clip_gradient=clip_gradient, clip_weights=clip_weights,
          clip_after_weight_decay=clip_after_weight_decay, skip_update=skip_update, list_names=True, **attrs)
