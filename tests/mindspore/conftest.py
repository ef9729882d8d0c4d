"""MindSpore tests: run in their own process with ``pytest -m mindspore`` (paddle must not be imported).

The whole directory is skipped cleanly when MindSpore is not installed.
"""

import importlib.util

import pytest

if importlib.util.find_spec("mindspore") is None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(params=["graph", "pynative"])
def mode(request):
    """Runs a test in GRAPH_MODE and in PYNATIVE_MODE."""
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE if request.param == "graph" else ms.PYNATIVE_MODE)
    yield request.param
    ms.set_context(mode=ms.GRAPH_MODE)
