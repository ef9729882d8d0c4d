"""The GRAPH_MODE example runs end to end and learns; the docstring examples run."""

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.mindspore

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "mindspore_graph_train.py")


def test_graph_mode_example_trains_with_a_schedule():
    proc = subprocess.run([sys.executable, EXAMPLE],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    before = float(re.search(r"before training: \{'mse': ([0-9.e-]+)\}", out).group(1))
    after = float(re.search(r"after training: \{'mse': ([0-9.e-]+)\}", out).group(1))
    assert after < 0.5 * before
    assert "optimizer steps: 100, kernel launches: 100" in out
    assert "learning_rate=CosineDecayLR, decay=0.9, momentum=0.9, epsilon=1e-10, centered=True" in out
    assert "kernel='rmsprop_ops', launches=1, flat_state=False" in out
    lrs = [float(v) for v in re.findall(r"epoch \d: lr ([0-9.]+)", out)]
    assert len(lrs) == 5 and all(a > b for a, b in zip(lrs, lrs[1:]))


def test_docstring_examples_run():
    import doctest

    import mindspore as ms
    from rmsprop_ops.mindspore import _op, _optimizer

    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        for module in (_op, _optimizer):
            result = doctest.testmod(module)
            assert result.attempted > 0 and result.failed == 0, module.__name__
    finally:
        ms.set_context(mode=ms.GRAPH_MODE)
