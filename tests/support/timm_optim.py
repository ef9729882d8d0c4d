"""timm's optimizer files without the rest of timm.

timm's package imports torchvision, whose wheels pull another torch; ``timm/optim/rmsprop_tf.py`` needs
only torch and its sibling ``_types.py``, so it is loaded from an installed timm (``pip install --no-deps
timm``) under a private package name, without running ``timm/__init__``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import pathlib
import sys
import types

PRIVATE = "_timm_optim_for_tests"


@contextlib.contextmanager
def timm_optim_module(name: str):
    """Yield ``timm.optim.<name>`` loaded privately, or None when timm (or that file) is missing."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        yield None
        return
    optim_dir = pathlib.Path(list(spec.submodule_search_locations)[0]) / "optim"
    if not (optim_dir / f"{name}.py").exists():
        yield None
        return
    pkg = types.ModuleType(PRIVATE)
    pkg.__path__ = [str(optim_dir)]
    sys.modules[PRIVATE] = pkg
    try:
        yield importlib.import_module(f"{PRIVATE}.{name}")
    finally:
        for mod in [n for n in sys.modules if n.startswith(PRIVATE)]:
            del sys.modules[mod]
