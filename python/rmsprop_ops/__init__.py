"""rmsprop_ops: fast, faithful RMSProp.

The core is a C++/CUDA library with one update rule for every framework's convention; this package
exposes it on NumPy / DLPack arrays. Framework front ends live in ``rmsprop_ops.paddle`` and
``rmsprop_ops.mindspore`` (imported on demand, never both in one process).
"""

from . import reference, registry
from ._functional import rmsprop_, rmsprop_multi_
from ._runtime import (built_with_cuda, cuda_available, get_include, get_library, get_num_threads,
                       set_num_threads)

__version__ = "0.1.0"

__all__ = [
    "rmsprop_",
    "rmsprop_multi_",
    "built_with_cuda",
    "cuda_available",
    "set_num_threads",
    "get_num_threads",
    "get_include",
    "get_library",
    "registry",
    "reference",
]
