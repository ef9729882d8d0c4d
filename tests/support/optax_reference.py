"""optax.rmsprop trajectories for the tests, computed by tests/scripts/optax_trajectories.py in a process of
its own (JAX starts threads; a test process that forks later must not have it imported)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "optax_trajectories.py")
_spec = importlib.util.spec_from_file_location("optax_trajectories", SCRIPT)
trajectories = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trajectories)


def compute(tmp_path_factory) -> dict:
    """``{"<case id>|<dtype>": params after the problem's steps}``; skips the test without optax."""
    pytest.importorskip("optax")
    out = tmp_path_factory.mktemp("optax") / "trajectories.npz"
    subprocess.run([sys.executable, SCRIPT, str(out)], check=True, timeout=600,
                   env=dict(os.environ, JAX_PLATFORMS="cpu"))
    return dict(np.load(out))
