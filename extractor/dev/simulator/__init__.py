"""A simulated Databricks workspace serving the Jobs 2.2 read API, for tests and demos.

Generates production-like runs deterministically per seed, moves them along a simulated clock and
knows the exact store rows an extraction must produce. Imports nothing from the rest of extractor.
"""

from __future__ import annotations

from ._model import ApiError
from .server import Faults, SimServer, serve
from .workspace import Workspace

__all__ = ["ApiError", "Faults", "SimServer", "Workspace", "serve"]
