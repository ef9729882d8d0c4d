"""``python -m rmsprop_ops.paddle build|info``: the Paddle custom ops from the command line.

``build`` compiles the ops for the installed Paddle now (a no-op when they are cached) and prints where
they are: an image build or a CI step pays the compile, not the first training run. ``info`` says what
is installed and whether the ops are built, without building them.
"""

from __future__ import annotations

import sys

from .._toolkit import cli
from ._build import _paddle_facts, built_ops, cache_dir, load_ops
from ._codegen import CORE_OPS, paddle_op_name, registered_ops


def _rows(built: bool) -> list[cli.Row]:
    version, cuda = _paddle_facts()
    names = [paddle_op_name(op, flat=flat, twin=twin) for op, twin, flat in registered_ops(CORE_OPS)]
    return [
        *(r for r in cli.core_rows() if r.label in ("rmsprop_ops", "CUDA", "cache")),
        cli.Row("paddle", f"{version} ({'CUDA' if cuda else 'CPU'} build)"),
        cli.Row("ops", f"{'built' if built else 'not built yet (python -m rmsprop_ops.paddle build)'} in "
                       f"{cache_dir()}"),
        cli.Row("registered", ", ".join(f"custom_op.{n}" for n in names)),
    ]


def info() -> list[cli.Row]:
    return _rows(built_ops())


def build() -> list[cli.Row]:
    load_ops()
    return _rows(True)


def main(argv=None) -> int:
    return cli.main(argv, prog="python -m rmsprop_ops.paddle", description=__doc__.split("\n\n", 1)[1].strip(),
                    info=info, build_now=build)


if __name__ == "__main__":
    sys.exit(main())
