"""Layout of "flat state": one 1-D buffer per kind of optimizer state for many tensors (the MindSpore
and Paddle optimizers' ``flat_state=True``). Framework-neutral, so both front ends pack alike."""

from __future__ import annotations

__all__ = ["FLAT_ALIGN", "flat_offsets"]

# 16 elements = 64 bytes of float32: every slice starts on a cache line, and the CUDA kernel's 16-byte
# packs stay aligned within it.
# The Paddle kernel packs alike (paddle_kernel.h, kFlatAlign) when the optimizer passes no offsets.
FLAT_ALIGN = 16


def flat_offsets(sizes, align: int = FLAT_ALIGN):
    """Offsets of tensors of ``sizes`` elements packed into one flat state buffer, each starting on a
    multiple of ``align`` elements; returns ``(offsets, total)``."""
    offsets, end = [], 0
    for size in sizes:
        start = -(-end // align) * align
        offsets.append(start)
        end = start + int(size)
    return offsets, end
