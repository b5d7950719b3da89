"""Optional packages: each is imported where a feature needs it, through `needs` or `require`.

A package left out of a plain `pip install jobruns` is a UsageError (exit 2) naming the extra that
installs it, never an internal error. Nothing here imports an optional package by itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from extractor.errors import UsageError

# Where the name pip installs differs from the name Python imports.
_DISTRIBUTIONS = {"databricks.sdk": "databricks-sdk"}


@contextmanager
def needs(module: str, extra: str | tuple[str, ...], feature: str) -> Iterator[None]:
    """Imports inside the block that fail because `module` is not installed name `extra`.

    `extra` is what to pip install (`"jobruns[export]"`), or several alternatives.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        # Only the package itself (or its parent namespace) being absent is a missing extra;
        # an installed package that fails on one of its own imports is a broken install.
        if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
            raise
        first, *others = (extra,) if isinstance(extra, str) else extra
        install = f"pip install '{first}'" + "".join(f" (or '{e}')" for e in others)
        package = _DISTRIBUTIONS.get(module, module.split(".")[0])
        raise UsageError(f"{feature} needs {package}, which is not installed: {install}") from exc


def require(module: str, extra: str | tuple[str, ...], feature: str) -> ModuleType:
    """`module`, imported; or a UsageError naming the extra when it is not installed."""
    with needs(module, extra, feature):
        return importlib.import_module(module)
    raise AssertionError("unreachable")  # mypy cannot see that `needs` re-raises
