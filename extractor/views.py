"""The analytics views: load sql/*.sql in order and open a store with them ready.

Each file holds one SELECT; its name (without the numeric prefix that orders the files) is the
view's name and its leading `-- ` comment the view's description. This module never writes run
data: at most it seeds the rate card, creates views and refreshes the tables (mat_*) that keep
the rows of the expensive per-run views (MATERIALIZED).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from extractor.errors import StoreError
from extractor.schema import TABLES

_FILE_NAME = re.compile(r"^(?P<order>\d+)_(?P<name>[a-z][a-z0-9_]*)\.sql$")

# Tables the views read that an older store may lack, or that a read-only store cannot fill.
_COST_TABLES = ("rate_card", "billing_usage", "list_prices")

# Views whose rows DuckDB keeps in a table mat_<view> (the view then reads the table), with the
# column naming the job run each row belongs to. Each is a function of its job run's data (and
# that of the runs sharing its logical run), the rate card, billing rows of the run and stg_now,
# so refresh_materialized can recompute the rows of the runs an extract changed. Their sql/
# definitions stay plain SELECTs (the Spark SQL export uses them as ordinary views).
MATERIALIZED: dict[str, str] = {
    "int_work_items": "job_run_id",
    "int_cluster_instances": "job_run_id",
    "int_run_cost": "run_id",
    "int_task_cost": "job_run_id",
    "int_task_attempts": "job_run_id",
    "int_run_tasks": "job_run_id",
    "int_rerun_cost": "job_run_id",
    "int_durations": "job_run_id",
    "task_cost": "job_run_id",
}
# Base tables a partial refresh copies for the runs in scope, without columns no view reads.
_SCOPED = {"runs": "run_id", "tasks": "job_run_id", "task_iterations": "job_run_id"}
_SCOPED |= {"repair_history": "job_run_id", "billing_usage": "job_run_id"}
_UNUSED = {"runs": ("raw",), "tasks": ("raw",), "jobs": ("raw", "job_clusters")}
# Above this share of the store's runs (and this many), rebuilding everything is cheaper.
_FULL_REFRESH_SHARE = 0.2
_FULL_REFRESH_MIN_RUNS = 10_000
_SCRATCH = "jobruns_refresh"
# A refresh holds the new rows of every mat_* table until it commits: far more than the small
# pool an extract's writer connection runs with. Below this limit it is raised while refreshing.
REFRESH_MEMORY_LIMIT = "1GiB"
_UNITS = {"": 1, "B": 1, "BYTES": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


@dataclass(frozen=True)
class ViewFile:
    """One sql/ file: the view it defines, what it answers, and its SELECT."""

    name: str
    description: str
    sql: str


def sql_dir() -> Path:
    """The sql/ directory: extractor/sql inside an installed wheel, else repo_root/sql."""
    packaged = importlib.resources.files("extractor") / "sql"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "sql"


def view_files(directory: Path | None = None) -> list[ViewFile]:
    """The view files in dependency order (their numeric prefix)."""
    directory = directory or sql_dir()
    found: list[tuple[int, ViewFile]] = []
    for path in directory.glob("*.sql"):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise StoreError(f"{path.name}: view files are named NNN_view_name.sql")
        text = path.read_text(encoding="utf-8")
        found.append((int(match["order"]), _parse(match["name"], text)))
    if not found:
        raise StoreError(f"no view definitions found in {directory}")
    return [view for _, view in sorted(found, key=lambda item: (item[0], item[1].name))]


def _parse(name: str, text: str) -> ViewFile:
    lines = text.splitlines()
    comment = []
    for line in lines:
        if not line.startswith("--"):
            break
        comment.append(line.removeprefix("--").strip())
    body = "\n".join(lines[len(comment) :]).strip().rstrip(";").strip()
    return ViewFile(name=name, description=" ".join(comment), sql=body)


def list_views() -> list[tuple[str, str]]:
    """(name, description) of every view, in dependency order."""
    return [(view.name, view.description) for view in view_files()]


def views_digest() -> str:
    """A digest of every view definition: a store whose views carry it needs no re-creation."""
    text = "\n".join(f"{v.name}\n{v.sql}" for v in view_files())
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def views_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store's own views were created from exactly these definitions."""
    if "jobruns_meta" not in _tables(con):
        return False
    row = con.execute("SELECT value FROM jobruns_meta WHERE key = 'views_digest'").fetchall()
    return bool(row) and row[0][0] == views_digest()


def ensure_views(con: duckdb.DuckDBPyConnection) -> bool:
    """Create the views in the store unless they are already current; True when created."""
    if views_current(con):
        return False
    create_views(con)
    con.execute("DELETE FROM jobruns_meta WHERE key = 'views_digest'")
    con.execute("INSERT INTO jobruns_meta VALUES ('views_digest', ?)", [views_digest()])
    return True


def create_views(con: duckdb.DuckDBPyConnection, *, temporary: bool = False) -> None:
    """Create or replace every view in order; seed the rate card when it is empty.

    With `temporary`, the views (and any cost table the store lacks) are created as TEMP objects
    of this connection only, which is how a read-only store gets its views.
    """
    from extractor.cost import load_shipped_rate_card

    existing = _tables(con)
    for table in _COST_TABLES:
        if table not in existing:
            kind = "TEMP TABLE" if temporary else "TABLE"
            columns = ", ".join(f'"{c}" {t}' for c, t in TABLES[table].items())
            con.execute(f"CREATE {kind} {table} ({columns})")
    if _count(con, "rate_card") == 0:
        if temporary and "rate_card" in existing:
            # The store's empty table cannot be written: shadow it with a seeded temp table.
            columns = ", ".join(f'"{c}" {t}' for c, t in TABLES["rate_card"].items())
            con.execute(f"CREATE TEMP TABLE rate_card ({columns})")
        load_shipped_rate_card(con)
    kind = "TEMP VIEW" if temporary else "VIEW"
    for view in view_files():
        try:
            if view.name in MATERIALIZED:
                table = _mat_table(view.name, temporary)
                # Created empty with the definition's columns; filled below.
                con.execute(
                    f"CREATE OR REPLACE {kind.replace('VIEW', 'TABLE')} mat_{view.name} AS"
                    f" SELECT * FROM ({view.sql}) LIMIT 0"
                )
                con.execute(f"CREATE OR REPLACE {kind} {view.name} AS SELECT * FROM {table}")
            else:
                con.execute(f"CREATE OR REPLACE {kind} {view.name} AS\n{view.sql}")
        except duckdb.Error as exc:
            raise StoreError(f"view {view.name} could not be created: {exc}") from exc
    refresh_materialized(con, None)


def _mat_table(name: str, temporary: bool) -> str:
    return f"temp.main.mat_{name}" if temporary else f"mat_{name}"


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
    mats = [views[name] for name in views if name in MATERIALIZED]
    with _memory_at_least(con, REFRESH_MEMORY_LIMIT):
        scope = None if changed_runs is None else _scope(con, changed_runs)
        if scope is not None:
            _refresh_scope(con, views, mats, scope)
        else:
            _refresh_all(con, mats)


@contextlib.contextmanager
def _memory_at_least(con: duckdb.DuckDBPyConnection, limit: str) -> Iterator[None]:
    """Raise the instance's memory_limit to `limit` if it is lower, and put it back after."""
    current = str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
    if _bytes(current) >= _bytes(limit):
        yield
        return
    con.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{current}'")


def _bytes(size: str) -> float:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", size)
    if match is None or match[2].upper() not in _UNITS:
        return float("inf")  # unlimited, or a form we do not know: leave it alone
    return float(match[1]) * _UNITS[match[2].upper()]


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
    return all(f"mat_{name}" in _tables(con) for name in MATERIALIZED)


def _mat_targets(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The table holding each materialized view's rows: this connection's TEMP one if it has one."""
    rows = con.execute(
        "SELECT database_name, table_name FROM duckdb_tables()"
        " WHERE database_name IN (current_database(), 'temp') AND table_name LIKE 'mat_%'"
    ).fetchall()
    found: dict[str, str] = {}
    for database, table in sorted(rows, key=lambda r: r[0] != "temp"):
        found.setdefault(str(table), "temp.main." + table if database == "temp" else str(table))
    missing = [name for name in MATERIALIZED if f"mat_{name}" not in found]
    if missing:
        raise StoreError(f"the store has no table mat_{missing[0]}: create the views first")
    return {name: found[f"mat_{name}"] for name in MATERIALIZED}


# The job runs to recompute: the changed ones, the active ones and those with active work (their
# elapsed time runs to stg_now), and every run sharing a logical run with one of them.
_SCOPE_SQL = """
WITH touched AS (
    SELECT workspace_id, run_id FROM jobruns_changed_runs
    UNION SELECT workspace_id, run_id FROM runs WHERE coalesce(is_active, end_time IS NULL)
    UNION SELECT workspace_id, job_run_id FROM tasks WHERE coalesce(is_active, end_time IS NULL)
    UNION SELECT workspace_id, job_run_id FROM task_iterations
        WHERE coalesce(is_active, end_time IS NULL)
),
logical AS (
    SELECT DISTINCT r.workspace_id, coalesce(r.original_attempt_run_id, r.run_id) AS logical_id
    FROM runs AS r SEMI JOIN touched AS t ON r.workspace_id = t.workspace_id AND r.run_id = t.run_id
)
SELECT r.workspace_id, r.run_id
FROM runs AS r
SEMI JOIN logical AS l
    ON r.workspace_id = l.workspace_id
    AND coalesce(r.original_attempt_run_id, r.run_id) = l.logical_id
UNION
SELECT workspace_id, run_id FROM touched
"""


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
        existing = _tables(con)
        for table, columns in TABLES.items():
            names = ", ".join(f't."{c}"' for c in columns if c not in _UNUSED.get(table, ()))
            source = table if table in existing else f"(SELECT * FROM {_SCRATCH}.{table}_empty)"
            if table not in existing:
                typed = ", ".join(f'"{c}" {t}' for c, t in columns.items())
                con.execute(f"CREATE TABLE {_SCRATCH}.{table}_empty ({typed})")
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
            if view.name in MATERIALIZED:
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
                target, key = targets[view.name], MATERIALIZED[view.name]
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
        scope: pa.Table = con.sql(_SCOPE_SQL).to_arrow_table()
        total = _count(con, "runs")
    finally:
        con.unregister("jobruns_changed_runs")
    if scope.num_rows > max(_FULL_REFRESH_SHARE * total, _FULL_REFRESH_MIN_RUNS):
        return None
    return scope


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name IN (current_database(), 'temp')"
    ).fetchall()
    return {str(row[0]) for row in rows}


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def connect(
    db: str | Path | None = None, *, read_only: bool = True, snapshot: bool | None = None
) -> duckdb.DuckDBPyConnection:
    """Open a store with the views ready, e.g. for a notebook.

    `db` None opens an empty in-memory store. A read-only connection (the default) gets the views
    as TEMP views of this connection, so the file is never written; a writable one stores them
    in the file (usable from the duckdb CLI afterwards).

    A read-only connection is by default a snapshot: a private copy of the store as of this call
    (see extractor.store.open_snapshot), so holding it for hours never blocks the extract that
    cron runs. Call connect() again to see newer data. `snapshot=False` reads the file itself,
    which is right for a short query but makes an extract wait while the connection is open.
    """
    from extractor.migrations import check_version, migrate
    from extractor.schema import SCHEMA_VERSION
    from extractor.store import create_tables, open_connection, open_snapshot

    if snapshot is None:
        snapshot = read_only
    try:
        if db is None:
            con = duckdb.connect(":memory:")
            create_tables(con)
            read_only = False
        elif read_only and snapshot:
            con = open_snapshot(Path(db))
        else:
            con = open_connection(Path(db), read_only=read_only)
            if read_only:
                version = check_version(con)
                if version is not None and version < SCHEMA_VERSION:
                    # An older store cannot be migrated read-only: its copy can.
                    con.close()
                    con = open_snapshot(Path(db))
            else:
                con.execute("BEGIN TRANSACTION")
                migrate(con)
                con.execute("COMMIT")
    except duckdb.Error as exc:
        raise StoreError(f"cannot open the store {db}: {exc}") from exc
    if "runs" not in _tables(con):
        con.close()
        raise StoreError(f"{db} is not a jobruns store (no runs table); run `jobruns extract`")
    if not views_current(con):
        # The store's own views are missing or from another jobruns version.
        create_views(con, temporary=read_only)
    return con


__all__ = [
    "MATERIALIZED",
    "ViewFile",
    "connect",
    "create_views",
    "has_materialized",
    "list_views",
    "refresh_materialized",
    "sql_dir",
    "view_files",
]
