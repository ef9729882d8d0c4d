"""``python -m rmsprop_ops.mindspore build|info`` and the shared cache seen from MindSpore: --help
builds nothing, build announces its compile time, info tells what is built, and one cache entry serves
another installation of the package (another virtual environment) without compiling."""

from __future__ import annotations

import os
import re

import pytest

ms = pytest.importorskip("mindspore")

import framework_cli
from rmsprop_ops.mindspore import _build, kernel_library


@pytest.mark.parametrize("args", framework_cli.HELP_AND_INFO)
def test_help_and_info_build_nothing(tmp_path, args):
    framework_cli.check_help_and_info_build_nothing("mindspore", args, tmp_path,
                                                    "nothing yet (python -m rmsprop_ops.mindspore build)")


def test_build_compiles_once_and_says_how_long(tmp_path):
    out = framework_cli.check_build_compiles_once("mindspore", ms.__version__, tmp_path,
                                                  "the MindSpore cpu kernel")
    library = re.search(r"library +(\S+)", out).group(1)
    assert library.startswith(str(tmp_path)) and os.path.exists(library)
    assert "built for cpu" in out


def test_another_installation_reuses_the_cache_and_runs_its_own_core(tmp_path):
    path = kernel_library()  # the entry exists in this suite's cache
    code = """
import numpy as np, mindspore as ms
from rmsprop_ops.mindspore import kernel_library, rmsprop_multi_
ms.set_context(mode=ms.PYNATIVE_MODE)
p = ms.Parameter(ms.Tensor(np.ones(2, np.float32)), name="p")
s = ms.Parameter(ms.Tensor(np.ones(2, np.float32)), name="s")
m = ms.Parameter(ms.Tensor(np.zeros(2, np.float32)), name="m")
rmsprop_multi_([p], [ms.Tensor(np.full(2, 0.5, np.float32))], [s], [m], 0.1)
print(kernel_library())
print(p.asnumpy().tolist())
"""
    library, values = framework_cli.run_in_copy(tmp_path, code, "mindspore")[-2:]
    assert library == path
    # MindSpore's rule from its ones-initialised accumulator: s = 0.9 + 0.1 * 0.25; p -= 0.1 * 0.5 / sqrt(s + eps).
    expected = 1.0 - 0.1 * 0.5 / (0.9 + 0.1 * 0.25 + 1e-10) ** 0.5
    assert [round(v, 6) for v in eval(values)] == [round(expected, 6)] * 2


def test_build_module_does_not_import_the_package_root():
    assert not framework_cli.imports_package_root(_build.__file__)
