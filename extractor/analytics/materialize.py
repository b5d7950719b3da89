"""Materialized views: the rows of the expensive per-run views kept in tables mat_<view>.

A view file marked `-- materialized: <column>` is a function of its job run's data (and that of
the runs sharing its logical run), the rate card, billing rows of the run, stg_now and the views
kept whole (`-- materialized: *`, rebuilt by full refreshes only: billing and price imports
trigger one), so the rows of the runs an extract changed can be recomputed alone. This module only rewrites mat_*
tables, never run data; its callers commit the data first. A writer that commits data the mat_*
tables derive from marks a refresh owed (`owe_refresh`) no later than that commit: a process
that dies before its refresh leaves the mark, and the next refresh rebuilds everything.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import duckdb
import pyarrow as pa

from extractor.analytics.sqlfiles import WHOLE, ViewFile, materialized, sql_text, view_files
from extractor.errors import StoreError
from extractor.migrations import size_in_bytes
from extractor.schema import TABLES, row_count, table_ddl, table_names

log = logging.getLogger("jobruns.materialize")
_T = TypeVar("_T")

# Base tables a partial refresh copies for the runs in scope, without columns no view reads.
_SCOPED = {"runs": "run_id", "tasks": "job_run_id", "task_iterations": "job_run_id"}
_SCOPED |= {"repair_history": "job_run_id", "billing_usage": "job_run_id"}
_UNUSED = {"runs": ("raw",), "jobs": ("raw", "job_clusters")}
_UNUSED |= {"clusters": ("raw",)}
# Above this share of the store's runs (and this many), rebuilding everything is cheaper.
_FULL_REFRESH_SHARE = 0.2
_FULL_REFRESH_MIN_RUNS = 10_000
_SCRATCH = "jobruns_refresh"
# The suffix of the tables a full refresh fills before they replace the mat_* tables.
_FRESH = "__rebuilt"
# The views' joins and windows over every run need more than the small pool an extract's writer
# connection runs with: a refresh raises it to this, and doubles it (up to REFRESH_MEMORY_MAX)
# for a statement that runs out, which then runs again. DuckDB spills to disk what does not fit:
# a full refresh of 200,000 runs peaks at about 180 MB above the process's imports with this
# pool, 20 s on two threads (with a pool of 1 GiB, 1,100 MB in 13 s).
REFRESH_MEMORY_LIMIT = "144MiB"
REFRESH_MEMORY_MAX = "8GiB"
# The DuckDB threads of a refresh (an extract's held connection runs on one): each thread's
# operators take a share of the pool, so more threads would need a larger one.
REFRESH_THREADS = 2
# The jobruns_meta key of a refresh owed: data changed since the mat_* tables were last right.
_OWED = "refresh_owed"


def owe_refresh(con: duckdb.DuckDBPyConnection) -> bool:
    """Mark a refresh owed, in the transaction that writes the data (or one committed before it).

    True when one was owed already: a process wrote data and died before its refresh finished,
    so the caller's refresh must rebuild every row (refresh_materialized with None).
    """
    if "jobruns_meta" not in table_names(con):  # tables of some other origin, not a store
        return False
    owed = bool(con.execute("SELECT 1 FROM jobruns_meta WHERE key = ?", [_OWED]).fetchall())
    if not owed:
        con.execute("INSERT INTO jobruns_meta VALUES (?, '1')", [_OWED])
    return owed


def refresh_paid(con: duckdb.DuckDBPyConnection) -> None:
    """Clear the mark of `owe_refresh`: the mat_* tables are right again, or nothing was written."""
    if "jobruns_meta" not in table_names(con):
        return
    if con.execute("SELECT 1 FROM jobruns_meta WHERE key = ?", [_OWED]).fetchall():
        con.execute("DELETE FROM jobruns_meta WHERE key = ?", [_OWED])


def refresh_materialized(
    con: duckdb.DuckDBPyConnection, changed_runs: Iterable[tuple[str, int]] | None
) -> None:
    """Recompute the mat_* rows of the job runs in `changed_runs` ((workspace_id, run_id) pairs).

    None rebuilds every row: after the rate card, billing usage or list prices changed, or data
    was written some other way. An extract passes the runs it inserted, updated or marked
    deleted; runs that share a logical run with them (job-level retries) and active runs (whose
    elapsed time runs to stg_now) are recomputed with them. Call it outside a transaction, after
    the data is committed: readers see the new rows of every table at once, in one commit of
    its own. A statement that runs out of the refresh's pool runs again with a larger one.
    A refresh that completes clears the mark of `owe_refresh`.
    """
    views = {v.name: v for v in view_files()}
    mats = [v for v in views.values() if v.materialized_by is not None]
    with _refreshing(con):
        changed = None if changed_runs is None else _changed(con, changed_runs)
        scope = None if changed is None else _growing(con, lambda: _scope(con, changed))
        if scope is not None:
            if scope.num_rows:  # none changed, none active: every row is right as it is
                _growing(con, lambda: _refresh_scope(con, views, mats, scope))
        else:
            _refresh_all(con, views, mats)
    if not _mat_targets(con)[mats[0].name].startswith("temp."):
        refresh_paid(con)


@contextlib.contextmanager
def _refreshing(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The instance's settings for a refresh, put back after: a pool of REFRESH_MEMORY_LIMIT
    at least, REFRESH_THREADS, and no insertion order (no mat_* table promises an order, and
    keeping it holds rows back in memory)."""
    saved = {
        name: con.execute(f"SELECT current_setting('{name}')").fetchall()[0][0]
        for name in ("memory_limit", "threads", "preserve_insertion_order")
    }
    try:
        if size_in_bytes(str(saved["memory_limit"])) < size_in_bytes(REFRESH_MEMORY_LIMIT):
            con.execute(f"SET memory_limit = '{REFRESH_MEMORY_LIMIT}'")
        con.execute(f"SET threads = {max(1, min(REFRESH_THREADS, os.cpu_count() or 1))}")
        con.execute("SET preserve_insertion_order = false")
        yield
    finally:
        for name, value in saved.items():
            con.execute(f"SET {name} = '{value}'")


def _growing(con: duckdb.DuckDBPyConnection, step: Callable[[], _T]) -> _T:
    """Run `step` (one or more statements that leave nothing behind when they fail), doubling
    the instance's pool each time it runs out of memory, up to REFRESH_MEMORY_MAX."""
    while True:
        try:
            return step()
        except duckdb.OutOfMemoryException:
            limit = str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
            if size_in_bytes(limit) >= size_in_bytes(REFRESH_MEMORY_MAX):
                raise
            larger = min(2 * size_in_bytes(limit), size_in_bytes(REFRESH_MEMORY_MAX))
            log.info("the refresh ran out of %s of memory: trying again with twice that", limit)
            con.execute(f"SET memory_limit = '{int(larger // 2**20)}MiB'")


def _refresh_all(
    con: duckdb.DuckDBPyConnection, views: dict[str, ViewFile], mats: list[ViewFile]
) -> None:
    """Rebuild every mat_* table into a new one, then swap the new tables in at once.

    Each new table is filled and committed on its own: one transaction holding the new rows of
    every table would keep them in memory until its commit (over a gigabyte for 200,000 runs).
    The definitions read the new tables of the views before them through views of a scratch
    catalog; readers see the old tables until the swap commits, and a crash leaves them whole
    (the next full refresh drops what it left behind).
    """
    targets = _mat_targets(con)
    if any(target.startswith("temp.") for target in targets.values()):
        # A read-only store's TEMP views would hide the scratch catalog's from the definitions
        # (the temp catalog comes first); its TEMP tables are in memory anyway.
        _refresh_in_place(con, targets, mats)
        return
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    fresh = {name: f'"{database}".main.{target}{_FRESH}' for name, target in targets.items()}
    for table in fresh.values():
        con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute(f"ATTACH ':memory:' AS {_SCRATCH} (READ_WRITE)")
    try:
        last = max(list(views).index(v.name) for v in mats)
        for view in list(views.values())[: last + 1]:
            if view.materialized_by is None:
                con.execute(f"CREATE VIEW {_SCRATCH}.{view.name} AS\n{view.sql}")
                continue
            table = fresh[view.name]
            con.execute(f"CREATE VIEW {_SCRATCH}.def_{view.name} AS\n{view.sql}")
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM {targets[view.name]} LIMIT 0")
            insert = f"INSERT INTO {table} BY NAME SELECT * FROM {_SCRATCH}.def_{view.name}"
            _growing(con, functools.partial(con.execute, insert))
            con.execute(f"CREATE VIEW {_SCRATCH}.{view.name} AS SELECT * FROM {table}")
        con.execute("BEGIN TRANSACTION")
        try:
            for view in mats:
                con.execute(f"DROP TABLE {targets[view.name]}")
                con.execute(f"ALTER TABLE {fresh[view.name]} RENAME TO mat_{view.name}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    except BaseException:
        for table in fresh.values():
            with contextlib.suppress(duckdb.Error):
                con.execute(f"DROP TABLE IF EXISTS {table}")
        raise
    finally:
        con.execute(f"DETACH {_SCRATCH}")


def _refresh_in_place(
    con: duckdb.DuckDBPyConnection, targets: dict[str, str], mats: list[ViewFile]
) -> None:
    """Rebuild every mat_* table in one transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        for view in mats:
            con.execute(f"DELETE FROM {targets[view.name]}")
            insert = f"INSERT INTO {targets[view.name]} BY NAME SELECT * FROM ({view.sql})"
            con.execute(insert)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def has_materialized(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the views were created here, with the tables of the materialized ones."""
    tables = table_names(con)
    return all(f"mat_{name}" in tables for name in materialized())


def _mat_targets(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The table holding each materialized view's rows: this connection's TEMP one if it has one."""
    rows = con.execute(
        "SELECT database_name, table_name FROM duckdb_tables()"
        " WHERE database_name IN (current_database(), 'temp') AND table_name LIKE 'mat_%'"
    ).fetchall()
    found: dict[str, str] = {}
    for database, table in sorted(rows, key=lambda r: r[0] != "temp"):
        found.setdefault(str(table), "temp.main." + table if database == "temp" else str(table))
    names = materialized()
    missing = [name for name in names if f"mat_{name}" not in found]
    if missing:
        raise StoreError(f"the store has no table mat_{missing[0]}: create the views first")
    return {name: found[f"mat_{name}"] for name in names}


def _refresh_scope(
    con: duckdb.DuckDBPyConnection,
    views: dict[str, ViewFile],
    mats: list[ViewFile],
    scope: pa.Table,
) -> None:
    """Compute the materialized views over a copy of the scope's data, then swap their rows in."""
    targets = _mat_targets(con)
    now = con.execute("SELECT now_ts FROM stg_now").fetchall()[0][0]
    con.register("jobruns_scope", scope)
    con.execute(f"ATTACH ':memory:' AS {_SCRATCH} (READ_WRITE)")
    try:
        existing = table_names(con)
        for table, columns in TABLES.items():
            names = ", ".join(f't."{c}"' for c in columns if c not in _UNUSED.get(table, ()))
            source = table if table in existing else f"(SELECT * FROM {_SCRATCH}.{table}_empty)"
            if table not in existing:
                con.execute(table_ddl(table, as_name=f"{_SCRATCH}.{table}_empty"))
            join = ""
            if table in _SCOPED:
                join = (
                    " SEMI JOIN jobruns_scope AS s"
                    f" ON t.workspace_id = s.workspace_id AND t.{_SCOPED[table]} = s.run_id"
                )
            con.execute(
                f"CREATE TABLE {_SCRATCH}.{table} AS SELECT {names} FROM {source} AS t{join}"
            )
        # The scope's "now" is the store's, not the latest extracted_at among its runs.
        con.execute(f"CREATE TABLE {_SCRATCH}.stg_now AS SELECT ?::TIMESTAMPTZ AS now_ts", [now])
        last = max(list(views).index(v.name) for v in mats)
        for view in list(views.values())[: last + 1]:
            if view.name == "stg_now":
                continue
            if view.materialized_by == WHOLE:
                # Rows across runs (e.g. calibration factors): as the last full refresh left
                # them, since the scope's copy of the data holds only its own runs.
                con.execute(
                    f"CREATE TABLE {_SCRATCH}.{view.name} AS SELECT * FROM {targets[view.name]}"
                )
            elif view.materialized_by is not None:
                # Computed once into a table that the later definitions read.
                con.execute(f"CREATE VIEW {_SCRATCH}.def_{view.name} AS\n{view.sql}")
                con.execute(
                    f"CREATE TABLE {_SCRATCH}.{view.name} AS"
                    f" SELECT * FROM {_SCRATCH}.def_{view.name}"
                )
            else:
                con.execute(f"CREATE VIEW {_SCRATCH}.{view.name} AS\n{view.sql}")
        con.execute("BEGIN TRANSACTION")
        try:
            for view in mats:
                target, key = targets[view.name], view.materialized_by
                if key == WHOLE:
                    continue
                con.execute(
                    f"DELETE FROM {target} AS m USING jobruns_scope AS s"
                    f" WHERE m.workspace_id = s.workspace_id AND m.{key} = s.run_id"
                )
                con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {_SCRATCH}.{view.name}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.execute(f"DETACH {_SCRATCH}")
        con.unregister("jobruns_scope")


def _changed(
    con: duckdb.DuckDBPyConnection, changed_runs: Iterable[tuple[str, int]]
) -> pa.Table | None:
    """The distinct (workspace_id, run_id) pairs; None when there are so many that a full
    rebuild is cheaper (a cold extract: no need to hold every run it wrote)."""
    most = _most_scoped(con)
    unique: set[tuple[str, int]] = set()
    for pair in changed_runs:
        unique.add(pair)
        if len(unique) > most:
            return None
    pairs = sorted(unique)
    return pa.table(
        {
            "workspace_id": pa.array([w for w, _ in pairs], type=pa.string()),
            "run_id": pa.array([r for _, r in pairs], type=pa.int64()),
        }
    )


def _scope(con: duckdb.DuckDBPyConnection, changed: pa.Table) -> pa.Table | None:
    """The (workspace_id, run_id) of the job runs to recompute; None when a full rebuild is cheaper."""
    con.register("jobruns_changed_runs", changed)
    try:
        scope: pa.Table = con.sql(sql_text("materialize_scope.sql")).to_arrow_table()
    finally:
        con.unregister("jobruns_changed_runs")
    if scope.num_rows > _most_scoped(con):
        return None
    return scope


def _most_scoped(con: duckdb.DuckDBPyConnection) -> float:
    """Above this many runs to recompute, rebuilding everything is cheaper."""
    return max(_FULL_REFRESH_SHARE * row_count(con, "runs"), _FULL_REFRESH_MIN_RUNS)
