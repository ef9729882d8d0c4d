"""The flat-state layout (``flat_state=True`` of the Paddle and MindSpore optimizers): one 1-D buffer per
kind of optimizer state, tensor k's slice starting at element ``offsets[k]``.

Defined once, in the core's ``rmsprop_ops/flat.h`` (the Paddle kernel packs with it when given no offsets)
and exported by the registry; this module reads the alignment from there, so both front ends and the
kernel pack alike.
"""

from __future__ import annotations

from .checks import registry_document

__all__ = ["FLAT_ALIGN", "flat_offsets", "flat_state_schema"]


def flat_state_schema() -> dict:
    """The registry's description of flat state: ``align``, the ``state_inputs`` that become one buffer
    each, and the ``offsets_attr`` of the flat ops. Shared: do not modify."""
    return registry_document()["flat_state"]


FLAT_ALIGN: int = int(flat_state_schema()["align"])


def flat_offsets(sizes, align: int = FLAT_ALIGN):
    """Offsets of tensors of ``sizes`` elements packed into one flat state buffer, each starting on a
    multiple of ``align`` elements; returns ``(offsets, total)``."""
    offsets, end = [], 0
    for size in sizes:
        start = -(-end // align) * align
        offsets.append(start)
        end = start + int(size)
    return offsets, end
