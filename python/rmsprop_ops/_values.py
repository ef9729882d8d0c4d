"""Number checks of the framework-neutral layer: they live in ``_toolkit.checks`` with every other
argument check; this name stays for the modules that import it."""

from ._toolkit.checks import core_attr, flag, integer, optional_positive, real, real_in  # noqa: F401
