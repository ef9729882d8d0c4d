"""PaddlePaddle front end: custom RMSProp ops registered from the core, and a drop-in optimizer.

``RMSProp`` is a subclass of ``paddle.optimizer.Optimizer`` with the signature and defaults of
``paddle.optimizer.RMSProp``; with default arguments it computes what Paddle's RMSProp computes, in static
(PIR) and dynamic graphs, but through the core's kernels (``custom_op.rmsprop_ops_*`` in a program).

The custom ops are compiled against the installed Paddle the first time they are needed and cached (see
``cache_dir()``); later imports, in any process, load the cached library.

Example:
    >>> import paddle
    >>> from rmsprop_ops.paddle import RMSProp
    >>> layer = paddle.nn.Linear(4, 2)
    >>> opt = RMSProp(learning_rate=0.01, parameters=layer.parameters())
    >>> layer(paddle.ones([3, 4])).mean().backward()
    >>> opt.step(); opt.clear_grad()
"""

from .._toolkit.build import require_framework

require_framework("paddle", "paddle", __name__)  # a clear "pip install ..." instead of a bare ModuleNotFoundError

from ._build import CompilerNotFoundError, cache_dir, load_ops
from ._codegen import OP_PREFIX, paddle_op_name
from ._decay import DecoupledDecay
from ._optimizer import RMSProp
from ._schedule import ScheduleLR

__all__ = ["RMSProp", "ScheduleLR", "DecoupledDecay", "load_ops", "cache_dir", "CompilerNotFoundError",
           "paddle_op_name", "OP_PREFIX"]

