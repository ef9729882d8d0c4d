"""rmsprop_ops: fast, faithful RMSProp.

The core is a C++/CUDA library with one update rule for every framework's convention; this package
exposes it on NumPy / DLPack arrays. Framework front ends live in ``rmsprop_ops.paddle`` and
``rmsprop_ops.mindspore`` (imported on demand, never both in one process).
"""

from . import reference, registry, schedules
from ._conventions import CONVENTIONS, Convention
from ._functional import rmsprop_, rmsprop_multi_
from ._optimizer import RMSProp
from ._rows import catch_up_rows_, rmsprop_rows_
from ._rows_optimizer import RowGrad
from .schedules import (Constant, CosineDecay, ExponentialDecay, LinearWarmup, PiecewiseConstant, StepDecay)
from ._runtime import (built_with_cuda, cuda_available, get_include, get_library, get_num_threads, op_stats,
                       reset_op_stats, set_num_threads)

__version__ = "0.1.0"

# Imported on first use (``rmsprop_ops.mxnet_compat``, ``rmsprop_ops.recipes``, ``rmsprop_ops.translate``):
# each is a leaf that imports what it uses from the modules, never from this package root.
_LAZY = ("mxnet_compat", "recipes", "translate")


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "rmsprop_",
    "rmsprop_multi_",
    "rmsprop_rows_",
    "catch_up_rows_",
    "RMSProp",
    "RowGrad",
    "CONVENTIONS",
    "Convention",
    "schedules",
    "mxnet_compat",
    "recipes",
    "translate",
    "Constant",
    "PiecewiseConstant",
    "ExponentialDecay",
    "StepDecay",
    "CosineDecay",
    "LinearWarmup",
    "built_with_cuda",
    "cuda_available",
    "set_num_threads",
    "get_num_threads",
    "get_include",
    "get_library",
    "op_stats",
    "reset_op_stats",
    "registry",
    "reference",
]
