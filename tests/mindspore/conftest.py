"""MindSpore tests: run in their own process with ``pytest -m mindspore`` (paddle must not be imported).

The whole directory is skipped cleanly when MindSpore is not installed.
"""

import importlib.util
import os
import tempfile

import pytest

if importlib.util.find_spec("mindspore") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    # MindSpore writes rank_0/om/analyze_fail.ir for failed compiles (the error tests) under $MS_OM_PATH,
    # the working directory by default: keep them out of the checkout.
    os.environ.setdefault("MS_OM_PATH", tempfile.mkdtemp(prefix="mindspore_om_"))


@pytest.fixture(params=["graph", "pynative"])
def mode(request):
    """Runs a test in GRAPH_MODE and in PYNATIVE_MODE."""
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE if request.param == "graph" else ms.PYNATIVE_MODE)
    yield request.param
    ms.set_context(mode=ms.GRAPH_MODE)
