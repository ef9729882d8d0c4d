"""The conventions table: how each framework places eps and lr, starts the accumulator and decays weights.

Every row was checked against the framework's own source (see ``docs/conventions.md`` for the
citations). The differences are small in code and large in effect: with ``eps`` inside the square
root and ``ms`` starting at zeros, the first step is ``lr * g / sqrt((1 - rho) g^2 + eps)``, about
``lr / sqrt(1 - rho)`` (3.16 lr for rho 0.9) whatever the gradient; with ``ms`` starting at ones it is
about ``lr * g / sqrt(rho)``, plain SGD - tiny for small gradients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["Convention", "CONVENTIONS", "get_convention"]


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


def _row(name, *, lr, rho, momentum, epsilon, source, **flags):
    return Convention(name=name, defaults=MappingProxyType(
        {"learning_rate": lr, "rho": rho, "momentum": momentum, "epsilon": epsilon}), source=source, **flags)


CONVENTIONS = MappingProxyType({
    "keras": _row("keras", lr=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                  eps_in_sqrt=True, initial_accumulator_value=0.0, lr_in_momentum=True,
                  weight_decay_mode="decoupled",
                  source="keras/src/optimizers/rmsprop.py (update_step), base_optimizer.py "
                         "(_apply_weight_decay)"),
    "torch": _row("torch", lr=0.01, rho=0.99, momentum=0.0, epsilon=1e-8,
                  eps_in_sqrt=False, initial_accumulator_value=0.0, lr_in_momentum=False,
                  weight_decay_mode="l2", source="torch/optim/rmsprop.py (_single_tensor_rmsprop)"),
    "tf1": _row("tf1", lr=0.01, rho=0.9, momentum=0.0, epsilon=1e-10,
                eps_in_sqrt=True, initial_accumulator_value=1.0, lr_in_momentum=True,
                weight_decay_mode="l2", source="timm/optim/rmsprop_tf.py (RMSpropTF), tf.compat.v1 "
                                               "RMSPropOptimizer"),
    "paddle": _row("paddle", lr=None, rho=0.95, momentum=0.0, epsilon=1e-6,
                   eps_in_sqrt=True, initial_accumulator_value=0.0, lr_in_momentum=True,
                   weight_decay_mode="l2",
                   source="paddle/phi/kernels/impl/rmsprop_kernel_impl.h, python/paddle/optimizer/rmsprop.py"),
    "mindspore": _row("mindspore", lr=0.1, rho=0.9, momentum=0.0, epsilon=1e-10,
                      eps_in_sqrt=True, initial_accumulator_value=1.0, lr_in_momentum=True,
                      weight_decay_mode="l2",
                      source="mindspore/python/mindspore/nn/optim/rmsprop.py (ms init='ones'), "
                             "optimizer.py (_preprocess_weight_decay: wd * loss_scale)"),
    "mxnet": _row("mxnet", lr=0.001, rho=0.9, momentum=0.9, epsilon=1e-8,
                  eps_in_sqrt=True, initial_accumulator_value=0.0, lr_in_momentum=True,
                  weight_decay_mode="l2", clip_after_weight_decay=True, momentum_requires_centered=True,
                  source="src/operator/optimizer_op-inl.h (RMSPropUpdateKernel, RMSPropAlexUpdateKernel), "
                         "python/mxnet/optimizer/rmsprop.py"),
    "d2l": _row("d2l", lr=0.4, rho=0.9, momentum=0.0, epsilon=1e-6,
                eps_in_sqrt=True, initial_accumulator_value=0.0, lr_in_momentum=True,
                weight_decay_mode="l2", source="Dive into Deep Learning 7.6 (rmsprop_2d, eta=0.4, gamma=0.9)"),
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
