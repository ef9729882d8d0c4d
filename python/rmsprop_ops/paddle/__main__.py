"""``python -m rmsprop_ops.paddle``: build (or load) the Paddle custom ops now and print where they live.

Useful in an image build or CI step, so the first training run does not pay the ~20 s compile.
"""

from ._build import cache_dir, load_ops
from ._codegen import CORE_OPS, paddle_op_name

if __name__ == "__main__":
    load_ops()
    print(f"rmsprop_ops.paddle: ops {[paddle_op_name(op) for op in CORE_OPS]} ready in {cache_dir()}")
