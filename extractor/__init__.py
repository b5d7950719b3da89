"""jobruns: an incremental extractor of Databricks job runs into DuckDB.

The public Python entry is :func:`connect`, which opens a store with its views ready.
"""

from __future__ import annotations

from extractor._version import __version__

__all__ = ["__version__", "connect"]


def __getattr__(name: str) -> object:
    # Imported lazily so `import extractor` stays cheap for the CLI and the simulator.
    if name == "connect":
        from extractor.analytics.connect import connect

        return connect
    raise AttributeError(name)
