"""``python -m rmsprop_ops.mindspore build|info``: the MindSpore kernel from the command line.

``build`` compiles the aot kernel for the installed MindSpore and its device target now (a no-op when it
is cached) and prints where it is: an image build or a CI step pays the compile, not the first training
run. ``info`` says what is installed and whether the kernel is built, without building it.
"""

from __future__ import annotations

import sys

from .._toolkit import cli
from ._build import built_kernels, kernel_library, mindspore_cxx11_abi
from ._op import device_target, kernel_available


def _rows() -> list[cli.Row]:
    import mindspore

    target = device_target()
    built = built_kernels()
    return [
        *(r for r in cli.core_rows() if r.label in ("rmsprop_ops", "CUDA", "cache")),
        cli.Row("mindspore", f"{mindspore.__version__} (device target {target}, "
                             f"_GLIBCXX_USE_CXX11_ABI={mindspore_cxx11_abi()})"),
        cli.Row("kernel", f"{'yes' if kernel_available(target) else 'none'} for {target}; built for "
                          f"{', '.join(built) or 'nothing yet (python -m rmsprop_ops.mindspore build)'}"),
    ]


def info() -> list[cli.Row]:
    return _rows()


def build() -> list[cli.Row]:
    target = device_target()
    if not kernel_available(target):
        raise SystemExit(f"rmsprop_ops.mindspore: no kernel of ours for device target {target} "
                         "(RMSProp falls back to MindSpore's own ops there)")
    path = kernel_library(target)
    return _rows() + [cli.Row("library", path)]


def main(argv=None) -> int:
    return cli.main(argv, prog="python -m rmsprop_ops.mindspore", description=__doc__.split("\n\n", 1)[1].strip(),
                    info=info, build_now=build)


if __name__ == "__main__":
    sys.exit(main())
