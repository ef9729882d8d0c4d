"""Type checks for Python-level arguments (the registry-driven ones of ``_toolkit.checks``)."""

from ._toolkit.checks import (as_bool, as_float, as_optional_clip, as_tuple, describe,  # noqa: F401
                              weight_decay_mode_code)
