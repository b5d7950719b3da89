"""The notebooks' entry: open the store named by JOBRUNS_DB, or a cached demo store without one.

`open_or_demo` returns a read-only connection with the views ready (extractor.connect).
It never writes to a real store; the only file it creates is the demo store in the cache.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import duckdb

from extractor.config import resolve_db_path
from extractor.errors import StoreError, UsageError

# Small enough to build in a few seconds, large enough for every chart to have something to say.
DEMO_RUNS = 600
DEMO_JOBS = 25
DEMO_SEED = 7
DEMO_MAX_AGE = timedelta(days=1)


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the demo store lives: $XDG_CACHE_HOME/jobruns, else ~/.cache/jobruns."""
    environ: Mapping[str, str] = os.environ if env is None else env
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "jobruns"


def demo_store(
    directory: Path | None = None,
    *,
    runs: int = DEMO_RUNS,
    jobs: int = DEMO_JOBS,
    seed: int = DEMO_SEED,
    max_age: timedelta = DEMO_MAX_AGE,
) -> Path:
    """The cached demo store's path, built when missing or older than `max_age`.

    Built in a temporary file and moved into place, so notebooks started together never see a
    half-built store.
    """
    from extractor.dev.demo import build_demo_store

    directory = directory or cache_dir()
    path = directory / f"demo-{runs}-runs-{jobs}-jobs-seed-{seed}.duckdb"
    if path.exists() and time.time() - path.stat().st_mtime < max_age.total_seconds():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".building-") as scratch:
        building = Path(scratch) / path.name
        build_demo_store(building, runs=runs, jobs=jobs, seed=seed, quiet=True)
        os.replace(building, path)
    return path


def store_path(env: Mapping[str, str] | None = None, *, directory: Path | None = None) -> Path:
    """JOBRUNS_DB when it is set (the file must exist), else the cached demo store."""
    environ: Mapping[str, str] = os.environ if env is None else env
    if not _names_a_store(environ):
        return demo_store(directory or cache_dir(environ))
    path = resolve_db_path(None, env=environ)
    if not path.exists():
        raise UsageError(f"JOBRUNS_DB names {path}, which does not exist; run `jobruns extract`")
    return path


def _names_a_store(environ: Mapping[str, str]) -> bool:
    return bool((environ.get("JOBRUNS_DB") or "").strip())


def open_or_demo(
    env: Mapping[str, str] | None = None, *, directory: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """A read-only connection, views ready, to JOBRUNS_DB's store or else the demo store."""
    from extractor.analytics.connect import connect

    environ: Mapping[str, str] = os.environ if env is None else env
    path = store_path(environ, directory=directory)
    try:
        return connect(path, read_only=True)
    except StoreError:
        if _names_a_store(environ):
            raise
        # A demo store left by an older version of jobruns: build it again.
        path.unlink()
        return connect(store_path(environ, directory=directory), read_only=True)


def describe(con: duckdb.DuckDBPyConnection) -> str:
    """One line saying what the store holds: runs, jobs, workspaces and the time they cover."""
    row = con.execute(
        "SELECT count(*), count(DISTINCT job_id), count(DISTINCT workspace_id), "
        "min(run_date), max(run_date), (SELECT now_ts FROM stg_now) FROM stg_runs"
    ).fetchall()[0]
    runs, jobs, workspaces, first, last, now = row
    if not runs:
        return "the store holds no runs yet: run `jobruns extract`"
    return (
        f"{runs} runs of {jobs} jobs in {workspaces} workspace(s), started {first} to {last}; "
        f"'now' for the views is {now:%Y-%m-%d %H:%M} UTC (the last extract)"
    )


__all__ = ["cache_dir", "demo_store", "describe", "open_or_demo", "store_path"]
