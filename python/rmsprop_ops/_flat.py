"""The flat-state layout; lives in ``rmsprop_ops._toolkit.flat`` (kept importable from here)."""

from ._toolkit.flat import FLAT_ALIGN, flat_offsets  # noqa: F401

__all__ = ["FLAT_ALIGN", "flat_offsets"]
