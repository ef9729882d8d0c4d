"""rmsprop_ops for MindSpore: a registered custom RMSProp op and a drop-in ``nn.Optimizer``.

* :class:`RMSProp` — ``mindspore.nn.RMSProp`` with the same contract, each parameter group updated by one
  launch of our kernel (GRAPH_MODE and PYNATIVE_MODE); falls back to MindSpore's own ops on Ascend.
* :mod:`rmsprop_ops.mindspore.experimental` — ``RMSprop``, ``mindspore.experimental.optim.RMSprop`` (the
  torch-style optimizer its ``lr_scheduler`` drives) on our kernel.
* :func:`rmsprop_multi_` — the custom op as a function: one in-place step on lists of Parameters.
* :func:`make_op` / :func:`make_config` / :func:`config_layout` / :func:`flat_offsets` — the
  ``ops.Custom(func_type="aot")`` primitive, its config tensor and that tensor's layout (from the core's
  registry), and the layout of flat state buffers, for use inside your own Cells.
* :func:`kernel_library`, :func:`kernel_stats`, :func:`last_error` — the built library (compiled on first
  use into :func:`cache_dir`), its launch counters and the core's last error message.

Import this module only in processes that do not import paddle (their oneDNN builds clash).
"""

from .._toolkit.build import require_framework

require_framework("mindspore", "mindspore", __name__)  # a clear "pip install ..." instead of a bare ModuleNotFoundError

from ._build import cache_dir, kernel_library, mindspore_cxx11_abi
from ._op import (config_layout, flat_offsets, kernel_available, kernel_stats, last_error, make_config, make_op,
                  rmsprop_multi_)
from ._optimizer import RMSProp
from . import experimental  # noqa: E402 - rmsprop_ops.mindspore.experimental.RMSprop after importing the package

__all__ = [
    "RMSProp",
    "rmsprop_multi_",
    "make_op",
    "make_config",
    "config_layout",
    "flat_offsets",
    "kernel_available",
    "kernel_library",
    "kernel_stats",
    "last_error",
    "cache_dir",
    "mindspore_cxx11_abi",
]
