"""``python -m rmsprop_ops info``: what is installed, how it was built and what it will run on.

Prints the version, how the core was built (compiler, -march=native, CUDA and why), whether CUDA is
usable now, this CPU's vector features and thread count, the cache of compiled framework ops and, for
Paddle and MindSpore, whether they are installed and our ops are built for them. Imports no framework.
"""

from __future__ import annotations

import sys

from ._toolkit import cli


def info() -> list[cli.Row]:
    return cli.core_rows() + [row for fw in cli.FRAMEWORKS for row in cli.framework_rows(fw)]


def main(argv=None) -> int:
    return cli.main(argv, prog="python -m rmsprop_ops", description="rmsprop_ops: fast, faithful RMSProp (C++/CUDA core, Paddle and MindSpore ops).",
                    info=info, epilog="The demo: python -m rmsprop_ops.demo --help\n"
                    "Framework ops: python -m rmsprop_ops.paddle --help, python -m rmsprop_ops.mindspore --help")


if __name__ == "__main__":
    sys.exit(main())
