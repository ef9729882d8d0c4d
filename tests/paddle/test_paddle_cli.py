"""``python -m rmsprop_ops.paddle build|info`` and the shared cache seen from Paddle: --help builds
nothing, build announces its compile time, info tells what is built, and one cache entry serves another
installation of the package (another virtual environment) without compiling."""

from __future__ import annotations

import os
import re
import warnings

import pytest

paddle = pytest.importorskip("paddle")

import framework_cli
from rmsprop_ops._toolkit import build
from rmsprop_ops.paddle import _build, cache_dir, load_ops


@pytest.mark.parametrize("args", framework_cli.HELP_AND_INFO)
def test_help_and_info_build_nothing(tmp_path, args):
    framework_cli.check_help_and_info_build_nothing("paddle", args, tmp_path,
                                                    "not built yet (python -m rmsprop_ops.paddle build)")


def test_build_compiles_once_and_says_how_long(tmp_path):
    out = framework_cli.check_build_compiles_once("paddle", paddle.__version__, tmp_path, "the Paddle custom ops")
    assert re.search(rf"ops +built in {re.escape(str(tmp_path))}", out)
    assert "custom_op.rmsprop_ops_rmsprop_multi" in out


def test_another_installation_reuses_the_cache_and_runs_its_own_core(tmp_path):
    load_ops()  # the entry exists in this suite's cache
    code = """
import paddle
from rmsprop_ops.paddle import RMSProp, cache_dir
w = paddle.create_parameter([3], "float32", default_initializer=paddle.nn.initializer.Constant(1.0))
opt = RMSProp(learning_rate=0.1, parameters=[w])
(w * paddle.to_tensor([1.0, 2.0, 3.0])).sum().backward()
opt.step()
print(cache_dir())
print(w.numpy().tolist())
"""
    entry, values = framework_cli.run_in_copy(tmp_path, code, "paddle")[-2:]
    assert entry == cache_dir()
    # Paddle's rule, first step from a zero accumulator: w -= lr * g / sqrt((1 - rho) g^2 + eps).
    expected = [1.0 - 0.1 * g / ((1 - 0.95) * g * g + 1e-6) ** 0.5 for g in (1.0, 2.0, 3.0)]
    assert [round(v, 5) for v in eval(values)] == [round(v, 5) for v in expected]


def test_deprecated_cache_variable_still_works(monkeypatch, tmp_path):
    monkeypatch.delenv(build.CACHE_ENV, raising=False)
    monkeypatch.setenv(build.DEPRECATED_CACHE_ENV, str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        where = cache_dir()
    assert where.startswith(str(tmp_path) + os.sep)
    assert any(issubclass(w.category, FutureWarning) and "RMSPROP_OPS_PADDLE_CACHE is deprecated" in str(w.message)
               for w in caught)


def test_build_module_does_not_import_the_package_root():
    assert not framework_cli.imports_package_root(_build.__file__)
