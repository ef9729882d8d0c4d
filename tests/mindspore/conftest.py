"""MindSpore fixtures. Collection is gated by ``tests/conftest.py`` (``pytest -m mindspore``, in a process
of its own: paddle must not be imported next to it)."""

import pytest


@pytest.fixture(params=["graph", "pynative"])
def mode(request):
    """Runs a test in GRAPH_MODE and in PYNATIVE_MODE."""
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE if request.param == "graph" else ms.PYNATIVE_MODE)
    yield request.param
    ms.set_context(mode=ms.GRAPH_MODE)
