"""The conventions table and its resolution into one record of rule fields.

Every row was checked against the framework's own source (see ``docs/conventions.md`` for the
citations). The differences are small in code and large in effect: with ``eps`` inside the square
root and ``ms`` starting at zeros, the first step is ``lr * g / sqrt((1 - rho) g^2 + eps)``, about
``lr / sqrt(1 - rho)`` (3.16 lr for rho 0.9) whatever the gradient; with ``ms`` starting at ones it is
about ``lr * g / sqrt(rho)``, plain SGD - tiny for small gradients.

:func:`resolve` is the one place where a convention and the arguments a caller passed become a
:class:`Rule`: explicitly passed values keep their values, everything else comes from the convention.
It is framework-free (no NumPy), so the Paddle and MindSpore front ends resolve exactly alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType

from ._toolkit.checks import core_attr, flag, real_in

__all__ = ["Convention", "CONVENTIONS", "Rule", "RULE_FIELDS", "get_convention", "resolve", "canonical_name"]

_WD_MODES = ("l2", "l1", "decoupled")


@dataclass(frozen=True)
class Convention:
    """One framework's RMSProp convention.

    Attributes:
        name: the key in :data:`CONVENTIONS`.
        eps_in_sqrt: ``sqrt(ms + eps)`` (True) or ``sqrt(ms) + eps`` (False, torch).
        initial_accumulator_value: the value ``ms`` starts at (1.0 for MindSpore and TF1).
        lr_in_momentum: ``mom = m*mom + lr*g/d; p -= mom`` (True) or ``mom = m*mom + g/d;
            p -= lr*mom`` (False, torch).
        weight_decay_mode: ``"l2"`` (coupled: ``g += wd*p``) or ``"decoupled"`` (``p -= lr*wd*p``).
        clip_after_weight_decay: MXNet's fused kernel clips ``g + wd*p``; everyone else clips ``g``.
        momentum_requires_centered: MXNet ignores ``momentum`` unless ``centered=True``.
        defaults: learning_rate, rho, momentum, epsilon as the framework's constructor has them
            (``learning_rate`` None where the framework has no default).
        source: where the row was verified.
        eps_outside_without_momentum: TF 2.0-2.10 Keras puts eps outside the root when momentum is 0
            (and inside, through the ``ApplyRMSProp`` kernel, when it is not).
        aliases: the framework's own keyword names for the hyper-parameters (torch's ``lr``, ``alpha``,
            ``eps``; MindSpore's ``decay``; ...), accepted when this convention is chosen.
    """

    name: str
    eps_in_sqrt: bool
    initial_accumulator_value: float
    lr_in_momentum: bool
    weight_decay_mode: str
    clip_after_weight_decay: bool = False
    momentum_requires_centered: bool = False
    defaults: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    source: str = ""
    eps_outside_without_momentum: bool = False
    aliases: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))


def _row(name, *, lr, rho, momentum, epsilon, source, aliases=None, **flags):
    return Convention(name=name, defaults=MappingProxyType(
        {"learning_rate": lr, "rho": rho, "momentum": momentum, "epsilon": epsilon}), source=source,
        aliases=MappingProxyType(dict(aliases or {})), **flags)


CONVENTIONS = MappingProxyType({
    "keras": _row("keras", lr=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                  eps_in_sqrt=True, initial_accumulator_value=0.0, lr_in_momentum=True,
                  weight_decay_mode="decoupled",
                  source="keras/src/optimizers/rmsprop.py (update_step), base_optimizer.py "
                         "(_apply_weight_decay); TF >= 2.11 tf.keras.optimizers.RMSprop"),
    "keras_legacy": _row("keras_legacy", lr=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                         eps_in_sqrt=True, eps_outside_without_momentum=True, initial_accumulator_value=0.0,
                         lr_in_momentum=True, weight_decay_mode="l2", aliases={"lr": "learning_rate"},
                         source="keras/optimizers/optimizer_v2/rmsprop.py (RMSprop._resource_apply_dense: "
                                "ResourceApplyRMSProp with momentum, var - lr*g/(sqrt(rms) + eps) without); "
                                "tf.keras.optimizers.RMSprop in TF 2.0-2.10, optimizers.legacy.RMSprop after"),
    "torch": _row("torch", lr=0.01, rho=0.99, momentum=0.0, epsilon=1e-8,
                  eps_in_sqrt=False, initial_accumulator_value=0.0, lr_in_momentum=False,
                  weight_decay_mode="l2", aliases={"lr": "learning_rate", "alpha": "rho", "eps": "epsilon"},
                  source="torch/optim/rmsprop.py (_single_tensor_rmsprop)"),
    "tf1": _row("tf1", lr=0.01, rho=0.9, momentum=0.0, epsilon=1e-10,
                eps_in_sqrt=True, initial_accumulator_value=1.0, lr_in_momentum=True,
                weight_decay_mode="l2",
                aliases={"decay": "rho", "lr": "learning_rate", "alpha": "rho", "eps": "epsilon"},
                source="timm/optim/rmsprop_tf.py (RMSpropTF), tf.compat.v1 RMSPropOptimizer"),
    "paddle": _row("paddle", lr=None, rho=0.95, momentum=0.0, epsilon=1e-6,
                   eps_in_sqrt=True, initial_accumulator_value=0.0, lr_in_momentum=True,
                   weight_decay_mode="l2",
                   source="paddle/phi/kernels/impl/rmsprop_kernel_impl.h, python/paddle/optimizer/rmsprop.py"),
    "mindspore": _row("mindspore", lr=0.1, rho=0.9, momentum=0.0, epsilon=1e-10,
                      eps_in_sqrt=True, initial_accumulator_value=1.0, lr_in_momentum=True,
                      weight_decay_mode="l2", aliases={"decay": "rho", "loss_scale": "loss_scale_factor"},
                      source="mindspore/python/mindspore/nn/optim/rmsprop.py (ms init='ones'), "
                             "optimizer.py (_preprocess_weight_decay: wd * loss_scale)"),
    "mxnet": _row("mxnet", lr=0.001, rho=0.9, momentum=0.9, epsilon=1e-8,
                  eps_in_sqrt=True, initial_accumulator_value=0.0, lr_in_momentum=True,
                  weight_decay_mode="l2", clip_after_weight_decay=True, momentum_requires_centered=True,
                  aliases={"wd": "weight_decay", "gamma1": "rho", "gamma2": "momentum"},
                  source="MXNet 1.9.1 src/operator/optimizer_op-inl.h (RMSPropUpdateKernel, "
                         "RMSPropAlexUpdateKernel), python/mxnet/optimizer/optimizer.py (RMSProp)"),
    "d2l": _row("d2l", lr=0.4, rho=0.9, momentum=0.0, epsilon=1e-6,
                eps_in_sqrt=True, initial_accumulator_value=0.0, lr_in_momentum=True,
                weight_decay_mode="l2", aliases={"eta": "learning_rate", "gamma": "rho"},
                source="Dive into Deep Learning 7.6 (rmsprop_2d, eta=0.4, gamma=0.9)"),
})


def get_convention(name) -> Convention:
    """Return the :class:`Convention` called ``name`` (a key of :data:`CONVENTIONS`) or a Convention."""
    if isinstance(name, Convention):
        return name
    if not isinstance(name, str):
        raise TypeError(f"convention: expected a str, got {type(name).__name__} ({name!r})")
    try:
        return CONVENTIONS[name.lower()]
    except KeyError:
        raise ValueError(f"convention: expected one of {sorted(CONVENTIONS)}, got {name!r}") from None


@dataclass(frozen=True)
class Rule:
    """Every field of the update rule and every hyper-parameter default, resolved for one optimizer.

    ``learning_rate`` is a number, a schedule or a callable (None only where the convention has no
    default and none was given: the optimizer refuses that). ``nesterov`` and ``bias_correction``
    (optax's options) are rule fields that the core's kernel applies. ``maximize`` (torch) ascends the objective.
    """

    convention: str
    learning_rate: object
    rho: float
    momentum: float
    epsilon: float
    centered: bool
    weight_decay: float
    eps_in_sqrt: bool
    eps_outside_without_momentum: bool
    initial_accumulator_value: float
    lr_in_momentum: bool
    weight_decay_mode: str
    clip_after_weight_decay: bool
    momentum_requires_centered: bool
    maximize: bool = False
    nesterov: bool = False
    bias_correction: bool = False

    def eps_in_sqrt_for(self, momentum: float) -> bool:
        """Where eps goes for a group with this momentum (TF 2.0-2.10 Keras moves it with momentum)."""
        return self.eps_in_sqrt and not (self.eps_outside_without_momentum and momentum == 0)

    def effective_momentum(self, momentum: float, centered: bool) -> float:
        """MXNet ignores momentum unless centered."""
        return 0.0 if self.momentum_requires_centered and not centered else float(momentum)


RULE_FIELDS = tuple(f.name for f in dataclasses.fields(Rule) if f.name != "convention")
# The fields a convention row decides (the rest are hyper-parameters with defaults).
_CONVENTION_FIELDS = ("eps_in_sqrt", "eps_outside_without_momentum", "initial_accumulator_value",
                      "lr_in_momentum", "weight_decay_mode", "clip_after_weight_decay",
                      "momentum_requires_centered")
_OTHER_NAMES = None


def _aliases_elsewhere():
    global _OTHER_NAMES
    if _OTHER_NAMES is None:
        table = {}
        for conv in CONVENTIONS.values():
            for alias, target in conv.aliases.items():
                table.setdefault(alias, []).append((conv.name, target))
        _OTHER_NAMES = table
    return _OTHER_NAMES


def canonical_name(convention: Convention, key: str, *, accepted, where: str = "RMSProp") -> str:
    """The canonical name of keyword ``key`` under ``convention``: itself when ``accepted`` holds it,
    the target of one of the convention's aliases, or a TypeError saying which name to use."""
    if key in accepted:
        return key
    if key in convention.aliases:
        return convention.aliases[key]
    elsewhere = _aliases_elsewhere().get(key)
    if elsewhere:
        targets = {}
        for conv_name, target in elsewhere:
            targets.setdefault(target, []).append(conv_name)
        owners = "; ".join(f"{key!r} is {t} in {', '.join(convs)}" for t, convs in targets.items())
        raise TypeError(f"{where}: unexpected keyword {key!r} ({owners}); with convention="
                        f"{convention.name!r} pass {elsewhere[0][1]}=... instead")
    raise TypeError(f"{where}: unexpected keyword {key!r}; expected one of {sorted(accepted)}")


def resolve(convention="keras", **explicit) -> Rule:
    """Resolve ``convention`` and the hyper-parameters a caller passed into a :class:`Rule`.

    ``explicit`` holds only what the caller passed (None counts as "not passed"); its keys are rule
    fields or the convention's own names for them (``resolve("torch", lr=0.1, alpha=0.9)``). Every
    value is validated here, with an error naming the argument.

    Example:
        >>> from rmsprop_ops._conventions import resolve
        >>> rule = resolve("torch", lr=0.05, alpha=0.9)
        >>> rule.learning_rate, rule.rho, rule.epsilon, rule.eps_in_sqrt
        (0.05, 0.9, 1e-08, False)
    """
    conv = get_convention(convention)
    given = {}
    for key, value in explicit.items():
        name = canonical_name(conv, key, accepted=RULE_FIELDS, where="resolve")
        if name not in RULE_FIELDS:
            raise TypeError(f"resolve: {key!r} ({name}) is not a rule field; expected one of {list(RULE_FIELDS)}")
        if value is None:
            continue
        if name in given:
            raise TypeError(f"{key}: {name} was given twice (once as {name}, once as the alias {key})")
        given[name] = (key, value)
    # an explicit eps placement is a placement for every group, whatever its momentum
    if "eps_in_sqrt" in given and "eps_outside_without_momentum" not in given:
        given["eps_outside_without_momentum"] = ("eps_outside_without_momentum", False)
    values = {}
    for name in RULE_FIELDS:
        if name in given:
            values[name] = given[name]
        elif name in conv.defaults:
            values[name] = (name, conv.defaults[name])
        elif name in _CONVENTION_FIELDS:
            values[name] = (name, getattr(conv, name))
        else:
            values[name] = (name, {"centered": False, "weight_decay": 0.0}.get(name, False))
    return Rule(convention=conv.name, **{name: _check(name, key, value) for name, (key, value) in values.items()})


def _check(field_name, key, value):
    """Validate one resolved field; messages name the keyword the caller used."""
    if field_name == "learning_rate":
        if value is None or callable(value):
            return value
        return core_attr(key, value, "learning_rate")
    if field_name in ("rho", "momentum", "epsilon", "weight_decay"):
        return core_attr(key, value, field_name)
    if field_name == "initial_accumulator_value":
        return real_in(key, value, low=0.0)
    if field_name == "weight_decay_mode":
        if not isinstance(value, str):
            raise TypeError(f"{key}: expected a str, got {type(value).__name__} ({value!r})")
        if value not in _WD_MODES:
            raise ValueError(f"{key}: expected 'l2', 'l1' or 'decoupled', got {value!r}")
        return value
    return flag(key, value)
