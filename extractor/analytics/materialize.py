"""Materialized views: the rows of the expensive per-run views kept in tables mat_<view>.

A view file marked `-- materialized: <column>` is a function of its job run's data (and that of
the runs sharing its logical run), the rate card, billing rows of the run, stg_now and the views
kept whole (`-- materialized: *`, rebuilt by full refreshes only: billing and price imports
trigger one), so the rows of the runs an extract changed can be recomputed alone. This module only rewrites mat_*
tables, never run data; its callers commit the data first.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa

from extractor.analytics.sqlfiles import WHOLE, ViewFile, materialized, sql_text, view_files
from extractor.errors import StoreError
from extractor.migrations import memory_at_least
from extractor.schema import TABLES, row_count, table_ddl, table_names

# Base tables a partial refresh copies for the runs in scope, without columns no view reads.
_SCOPED = {"runs": "run_id", "tasks": "job_run_id", "task_iterations": "job_run_id"}
_SCOPED |= {"repair_history": "job_run_id", "billing_usage": "job_run_id"}
_UNUSED = {"runs": ("raw",), "jobs": ("raw", "job_clusters")}
_UNUSED |= {"clusters": ("raw",)}
# Above this share of the store's runs (and this many), rebuilding everything is cheaper.
_FULL_REFRESH_SHARE = 0.2
_FULL_REFRESH_MIN_RUNS = 10_000
_SCRATCH = "jobruns_refresh"
# A refresh holds the new rows of every mat_* table until it commits: far more than the small
# pool an extract's writer connection runs with. Below this limit it is raised while refreshing.
REFRESH_MEMORY_LIMIT = "1GiB"


def refresh_materialized(
    con: duckdb.DuckDBPyConnection, changed_runs: Iterable[tuple[str, int]] | None
) -> None:
    """Recompute the mat_* rows of the job runs in `changed_runs` ((workspace_id, run_id) pairs).

    None rebuilds every row: after the rate card, billing usage or list prices changed, or data
    was written some other way. An extract passes the runs it inserted, updated or marked
    deleted; runs that share a logical run with them (job-level retries) and active runs (whose
    elapsed time runs to stg_now) are recomputed with them. Call it outside a transaction, after
    the data is committed: it commits the new rows in one transaction of its own.
    """
    views = {v.name: v for v in view_files()}
    mats = [v for v in views.values() if v.materialized_by is not None]
    with memory_at_least(con, REFRESH_MEMORY_LIMIT):
        scope = None if changed_runs is None else _scope(con, changed_runs)
        if scope is not None:
            _refresh_scope(con, views, mats, scope)
        else:
            _refresh_all(con, mats)


def _refresh_all(con: duckdb.DuckDBPyConnection, mats: list[ViewFile]) -> None:
    targets = _mat_targets(con)
    con.execute("BEGIN TRANSACTION")
    try:
        for view in mats:
            con.execute(f"DELETE FROM {targets[view.name]}")
            con.execute(f"INSERT INTO {targets[view.name]} BY NAME SELECT * FROM ({view.sql})")
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
    con.execute(f"ATTACH ':memory:' AS {_SCRATCH}")
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


def _scope(
    con: duckdb.DuckDBPyConnection, changed_runs: Iterable[tuple[str, int]]
) -> pa.Table | None:
    """The (workspace_id, run_id) of the job runs to recompute; None when a full rebuild is cheaper."""
    pairs = sorted(set(changed_runs))
    changed = pa.table(
        {
            "workspace_id": pa.array([w for w, _ in pairs], type=pa.string()),
            "run_id": pa.array([r for _, r in pairs], type=pa.int64()),
        }
    )
    con.register("jobruns_changed_runs", changed)
    try:
        scope: pa.Table = con.sql(sql_text("materialize_scope.sql")).to_arrow_table()
        total = row_count(con, "runs")
    finally:
        con.unregister("jobruns_changed_runs")
    if scope.num_rows > max(_FULL_REFRESH_SHARE * total, _FULL_REFRESH_MIN_RUNS):
        return None
    return scope
