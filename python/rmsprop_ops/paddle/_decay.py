"""What a float ``weight_decay`` means under a convention: Paddle's regularizer objects, and decoupled decay.

Paddle turns a float ``weight_decay`` (the optimizer's or a parameter group's) into ``L2Decay``: coupled
decay, ``g += wd * p``. Under a convention whose weight decay is decoupled (Keras 3, ``p -= lr * wd * p``
before the update) or with ``weight_decay_mode="decoupled"`` / ``"l1"``, the float becomes a
:class:`DecoupledDecay` / ``L1Decay`` instead. A regularizer object says what it is and is kept as given;
``weight_decay_mode`` naming another kind is refused rather than silently ignored.

Every kind reaches the op the same way: the regularizer is stored where Paddle stores it (the optimizer's
``regularization``, a parameter's ``regularizer``; a ``ParamAttr`` regularizer takes precedence, as in
Paddle) and ``_param_attrs.fused_decay`` reads it off the parameter when the update is built.
"""

from __future__ import annotations

import numbers

from paddle.regularizer import L1Decay, L2Decay, WeightDecayRegularizer

__all__ = ["DecoupledDecay", "for_mode", "for_groups", "MODE_OF"]


class DecoupledDecay(WeightDecayRegularizer):
    """Decoupled weight decay (``p -= lr * coeff * p``, with the parameter's learning rate), applied by the
    op itself: the gradient is left as it is, so Paddle never calls it."""

    def __init__(self, coeff: float = 0.0):
        super().__init__()
        self._coeff = float(coeff)

    def __call__(self, param, grad, block=None):
        raise AssertionError("DecoupledDecay is applied by the rmsprop_ops op, not as a gradient term")

    def __str__(self):
        return f"DecoupledDecay, coeff={self._coeff:f}"

    def __repr__(self):
        return f"DecoupledDecay({self._coeff!r})"


# weight_decay_mode -> the regularizer class a float coefficient becomes (l2: Paddle's own conversion).
_CLASS = {"l2": L2Decay, "l1": L1Decay, "decoupled": DecoupledDecay}
MODE_OF = {cls: mode for mode, cls in _CLASS.items()}


def for_mode(where: str, weight_decay, mode: str, explicit_mode: bool):
    """``weight_decay`` (a float, a regularizer or None) as the regularizer Paddle should store under
    ``mode`` (the resolved ``weight_decay_mode``). A float under ``"l2"`` stays a float (Paddle converts it,
    exactly as before). ``explicit_mode``: the caller passed ``weight_decay_mode``, so a regularizer object
    of another kind is a contradiction (ValueError naming both)."""
    if weight_decay is None:
        return None
    if isinstance(weight_decay, (L1Decay, L2Decay, DecoupledDecay)):
        kind = MODE_OF[type(weight_decay)]
        if explicit_mode and kind != mode:
            raise ValueError(f"{where}: weight_decay_mode={mode!r} does not apply to {type(weight_decay).__name__}"
                             f"({weight_decay._coeff!r}), which is {kind!r} decay; pass a float weight_decay, or "
                             f"leave weight_decay_mode out")
        return weight_decay
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real):
        return weight_decay  # another WeightDecayRegularizer (Paddle applies it), or a mistake _args reports
    if mode == "l2":
        return weight_decay
    return _CLASS[mode](float(weight_decay))


def for_groups(parameters, mode: str, explicit_mode: bool):
    """``parameters`` (checked by ``_args.check_parameters``) with each group's ``weight_decay`` as
    :func:`for_mode` makes it (a group without one takes the optimizer's, already converted)."""
    if not parameters or not isinstance(parameters[0], dict):
        return parameters
    return [dict(g, weight_decay=for_mode(f"parameters[{i}].weight_decay", g["weight_decay"], mode, explicit_mode))
            if "weight_decay" in g else g for i, g in enumerate(parameters)]
