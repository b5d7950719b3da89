"""Schema versions of the store and the steps between them.

Each migration moves a store from one version to the next in place, without losing rows.
A store written by a newer jobruns is refused rather than guessed at.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator

import duckdb

from extractor.errors import StoreError
from extractor.schema import ALL_TABLES, SCHEMA_VERSION, create_tables, table_ddl

log = logging.getLogger("jobruns.migrations")

# What each schema version was. The version is kept in jobruns_meta (key 'schema_version').
SCHEMA_HISTORY: dict[int, str] = {
    0: "pre-release layout: no tasks.iteration_count, jobs.listing_hash, "
    "task_iterations.state_message or extract_state.last_repair_sweep_at",
    1: "first release: the tables of extractor.schema and extractor.schema.STATE_TABLES",
    2: "the clusters table (clusters/get of the all-purpose clusters job tasks ran on)",
    3: "no tasks.raw: a task run's JSON is the one in its run's raw (runs.raw, $.tasks)",
}

Migration = Callable[[duckdb.DuckDBPyConnection], None]


def _v0_to_v1(con: duckdb.DuckDBPyConnection) -> None:
    """Add the four columns and fill what the stored rows already tell.

    jobs.listing_hash stays NULL, so the next extract reads every job again with jobs/get;
    extract_state.last_repair_sweep_at stays NULL, so the next extract sweeps for repairs.
    """
    _add_column(con, "tasks", "iteration_count", "INTEGER")
    _add_column(con, "jobs", "listing_hash", "VARCHAR")
    _add_column(con, "task_iterations", "state_message", "VARCHAR")
    _add_column(con, "extract_state", "last_repair_sweep_at", "TIMESTAMPTZ")
    # A for-each task's iterations were stored beside it: their number is its iteration_count.
    con.execute(
        "UPDATE tasks SET iteration_count = (SELECT count(*) FROM task_iterations i"
        " WHERE i.workspace_id = tasks.workspace_id AND i.parent_task_run_id = tasks.run_id)"
        " WHERE task_type = 'for_each_task'"
    )
    # The same rule as extractor.flatten: the termination message, else the state message.
    con.execute(
        "UPDATE task_iterations SET state_message = coalesce("
        "nullif(raw->>'$.status.termination_details.message', ''),"
        " nullif(raw->>'$.state.state_message', ''))"
    )


def _v1_to_v2(con: duckdb.DuckDBPyConnection) -> None:
    """Create the clusters table, empty: the next extract reads the clusters its tasks used."""
    con.execute(table_ddl("clusters"))


def _v2_to_v3(con: duckdb.DuckDBPyConnection) -> None:
    """Drop tasks.raw: it repeated the task runs that their run's raw JSON holds."""
    con.execute("ALTER TABLE tasks DROP COLUMN IF EXISTS raw")


def _pool_fill(table: str, column: str) -> str:
    """UPDATE filling an instance-pool column from raw JSON, as extractor.flatten reads it: a
    task's own new_cluster, else its job cluster in the run, else a legacy run's cluster_spec;
    a cluster's clusters/get answer. A task run's JSON is the one in its run's raw JSON."""
    if table == "clusters":
        return f"UPDATE clusters SET {column} = raw->>'$.{column}' WHERE raw IS NOT NULL"
    return (
        f"UPDATE tasks SET {column} = coalesce((SELECT max(t.new_cluster.{column}) FROM runs r,"
        ' unnest(json_transform(r.raw, \'{"tasks": [{"run_id": "BIGINT",'
        f' "new_cluster": {{"{column}": "VARCHAR"}}}}]}}\').tasks) AS u(t)'
        " WHERE r.workspace_id = tasks.workspace_id AND r.run_id = tasks.job_run_id"
        " AND t.run_id = tasks.run_id),"
        f" (SELECT max(jc->>'$.new_cluster.{column}') FROM runs r,"
        " unnest(CAST(coalesce(r.raw->'$.job_clusters', '[]') AS JSON[])) AS u(jc)"
        " WHERE r.workspace_id = tasks.workspace_id AND r.run_id = tasks.job_run_id"
        " AND jc->>'$.job_cluster_key' = tasks.job_cluster_key),"
        f" (SELECT r.raw->>'$.cluster_spec.new_cluster.{column}' FROM runs r"
        " WHERE r.workspace_id = tasks.workspace_id AND r.run_id = tasks.job_run_id"
        " AND tasks.run_id = tasks.job_run_id))"
        " WHERE node_type_id IS NULL AND compute_kind IN ('job_cluster', 'new_cluster')"
    )


# Columns added after a store was written whose value its raw JSON already holds: filled when
# the column is added (no version step: the fill only reads what is stored, and is idempotent).
FILLS: dict[tuple[str, str], str] = {
    (table, column): _pool_fill(table, column)
    for table in ("tasks", "clusters")
    for column in ("instance_pool_id", "driver_instance_pool_id")
}

# MIGRATIONS[n] moves a store from version n - 1 to version n.
MIGRATIONS: dict[int, Migration] = {1: _v0_to_v1, 2: _v1_to_v2, 3: _v2_to_v3}


# Filling a column from the stored JSON reads every run's: more than the small pool an
# extract's writer connection runs with. Below this limit it is raised while filling.
FILL_MEMORY_LIMIT = "1GiB"
_UNITS = {"": 1, "B": 1, "BYTES": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


@contextlib.contextmanager
def memory_at_least(con: duckdb.DuckDBPyConnection, limit: str) -> Iterator[None]:
    """Raise the instance's memory_limit to `limit` if it is lower, and put it back after."""
    current = str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
    if size_in_bytes(current) >= size_in_bytes(limit):
        yield
        return
    con.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{current}'")


def size_in_bytes(size: str) -> float:
    """A DuckDB memory size ("64MB", "1.5 GiB") in bytes; infinite for a form it does not know."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", size)
    if match is None or match[2].upper() not in _UNITS:
        return float("inf")  # unlimited, or a form we do not know: leave it alone
    return float(match[1]) * _UNITS[match[2].upper()]


def stored_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The schema version recorded in the file, None for a file jobruns never wrote."""
    if "jobruns_meta" not in _tables(con):
        return None
    row = con.execute("SELECT value FROM jobruns_meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        return None
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise StoreError(
            f"this store records an unreadable schema version {row[0]!r}; pass another --db path"
        ) from None


def check_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The stored version, refusing a store written by a newer jobruns."""
    version = stored_version(con)
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(
            f"this store was written by a newer jobruns (schema version {version}; this jobruns "
            f"knows up to {SCHEMA_VERSION}); upgrade jobruns to use it"
        )
    return version


def migrate(con: duckdb.DuckDBPyConnection) -> int | None:
    """Bring the schema to SCHEMA_VERSION in place; returns the version found (None: new file).

    Runs inside the caller's transaction, so a failed step leaves the file as it was.
    """

    version = check_version(con)
    if version is None and {"runs", "tasks"} & _tables(con):
        raise StoreError(
            "this DuckDB file has tables named like jobruns' but no jobruns schema version; "
            "pass another --db path"
        )
    if version is not None:
        for target in range(version + 1, SCHEMA_VERSION + 1):
            log.info("migrating the store from schema version %d to %d", target - 1, target)
            MIGRATIONS[target](con)
    # Safety net for additive changes: any column the current schema has and the file lacks,
    # filled from the stored raw JSON where that tells its value.
    have = _columns(con)
    for table, columns in ALL_TABLES.items():
        for column, sql_type in columns.items():
            if table in have and column not in have[table]:
                _add_column(con, table, column, sql_type)
                if (table, column) in FILLS:
                    with memory_at_least(con, FILL_MEMORY_LIMIT):
                        con.execute(FILLS[(table, column)])
    create_tables(con)
    con.execute(
        "UPDATE jobruns_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)]
    )
    return version


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'main' AND table_catalog = current_database()"
    ).fetchall()
    return {str(r[0]) for r in rows}


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'main' AND table_catalog = current_database()"
    ).fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(str(table), set()).add(str(column))
    return out


def _add_column(con: duckdb.DuckDBPyConnection, table: str, column: str, sql_type: str) -> None:
    if column not in _columns(con).get(table, set()):
        con.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {sql_type}')


__all__ = [
    "MIGRATIONS",
    "SCHEMA_HISTORY",
    "check_version",
    "memory_at_least",
    "migrate",
    "stored_version",
]
