"""Gradient clipping by value, done by the op instead of by Paddle ops.

A symmetric ``ClipGradByValue`` is replaced by ``FusedValueClip``, which appends nothing: the op clips
(before weight decay, Paddle's order) with the bound ``value_bound`` reads off the clip and the parameter
when the update is built, so no state passes from the clip hook to the update. This also makes value
clipping work in Paddle's PIR static graph, where Paddle's own clip raises.
"""

from __future__ import annotations

import paddle
from paddle.nn.clip import ClipGradByValue

from ._densify import dense

__all__ = ["FusedValueClip", "AsymmetricValueClip", "wrap", "value_bound"]


class FusedValueClip:
    """Stands in for a symmetric ``ClipGradByValue``: leaves the gradients to the op, which clips them."""

    def __init__(self, clip):
        self.clip = clip

    def __call__(self, params_grads):
        return params_grads

    def __str__(self):
        return str(self.clip)

    def __repr__(self):
        return repr(self.clip)


class AsymmetricValueClip(FusedValueClip):
    """ClipGradByValue with min != -max: the op clips symmetrically only, so clip with paddle.clip."""

    def __call__(self, params_grads):
        out = []
        for p, g in params_grads:
            if g is not None and getattr(p, "need_clip", True) is not False:
                # paddle.clip fails on a dygraph SelectedRows gradient (so does Paddle's ClipGradByValue);
                # the rows are merged before clipping either way, so clipping the dense copy is the same.
                g = paddle.clip(dense(p, g), min=self.clip.min, max=self.clip.max)
            out.append((p, g))
        return out


def wrap(clip):
    """The clip the optimizer keeps for ``clip`` (a group's or the optimizer's ``grad_clip``)."""
    if isinstance(clip, ClipGradByValue):
        return FusedValueClip(clip) if clip.min == -clip.max else AsymmetricValueClip(clip)
    return clip


def value_bound(clip, param):
    """The bound the op clips ``param``'s gradient to under ``clip`` (a kept clip), or None."""
    if type(clip) is FusedValueClip and getattr(param, "need_clip", True) is not False:
        return float(clip.clip.max)
    return None
