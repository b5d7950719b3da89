"""The DuckDB store: schema, migrations, upserts, extraction state and the extract log.

It knows nothing of HTTP. Writes happen in short transactions; an extract keeps the file open
across them for about a second at a time, then lets go of it so that readers in other processes
get in. Upserts never rely on key constraints.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from extractor.errors import StoreError
from extractor.flatten import FLATTENED, RunBatch, flattened, flattened_rows
from extractor.migrations import check_version, migrate
from extractor.schema import CHILDREN, SCHEMA_VERSION, STATE_COLUMNS, TABLES

log = logging.getLogger("jobruns.store")

# DuckDB's buffer pool defaults to 80% of the machine's memory. The extract writes small
# batches, so its connections get a small pool: a cron extract stays small however big the store.
WRITER_MEMORY_LIMIT = "64MB"

# The most one transaction of an extract's writer stores (several prepared batches): runs, and
# bytes of their JSON text (DuckDB flattens a transaction's runs within WRITER_MEMORY_LIMIT).
WRITER_BATCH_RUNS = 2000
WRITER_BATCH_BYTES = 16 * 2**20

# DuckDB's Python client takes the GIL back between the small tasks of every statement, and a
# thread waiting for the GIL gets it after Python's switch interval (5 ms by default) while the
# extract's threads run Python. While runs are written the interval is this short.
WRITER_SWITCH_INTERVAL_S = 0.00005

# How long an open waits for another process (a reader or the writer) to let go of the file.
LOCK_WAIT_S = 30.0
# An extract keeps the file open across its write transactions until another process waits
# for it (see WAITING_SUFFIX), or for HOLD_S at most (for programs that do not say so), then
# closes it (closing checkpoints) and leaves it closed for GAP_S at least.
HOLD_S = 10.0
GAP_S = 0.15
# How often an open tries again while the file is held: well within GAP_S.
RETRY_MAX_S = 0.05
# The WAL a held file may grow to before DuckDB checkpoints it (DuckDB's default, made
# explicit). What is committed and not yet checkpointed sits in the writer's small pool: a
# larger WAL spills it to disk and reads it back, and letting go of the file for a reader waits
# for what is left of it.
HELD_WAL_LIMIT = "16MB"
# While the file is held its checkpoints do not vacuum, that is, merge the tables' small row
# groups into full ones: each merge rewrites the last row group (up to 122,880 rows, the runs'
# JSON included), and a held file checkpoints every few seconds. The checkpoint when the file is
# let go of merges what the hold wrote, once.
HELD_VACUUM_TASKS = 0
# A held file (an extract) is written on one DuckDB thread: its batches are small, and a
# second thread costs more than it brings while the extract's own thread prepares the next.
HELD_THREADS = 1
# A jobruns process waiting for the file touches STORE.waiting; the holder lets go on seeing it.
WAITING_SUFFIX = ".waiting"


def waiting_path(path: Path) -> Path:
    return path.with_name(path.name + WAITING_SUFFIX)


def _say_waiting(path: Path) -> None:
    with contextlib.suppress(OSError):
        waiting_path(path).touch()


_SWITCH_GUARD = threading.Lock()
_SWITCH_USERS = 0
_SWITCH_SAVED = 0.0


@contextlib.contextmanager
def _short_switch_interval() -> Iterator[None]:
    """Python's switch interval at WRITER_SWITCH_INTERVAL_S at most within the block (nested
    and concurrent blocks, a fleet's writers, share it); the previous value afterwards."""
    global _SWITCH_USERS, _SWITCH_SAVED
    with _SWITCH_GUARD:
        if _SWITCH_USERS == 0:
            _SWITCH_SAVED = sys.getswitchinterval()
            sys.setswitchinterval(min(_SWITCH_SAVED, WRITER_SWITCH_INTERVAL_S))
        _SWITCH_USERS += 1
    try:
        yield
    finally:
        with _SWITCH_GUARD:
            _SWITCH_USERS -= 1
            if _SWITCH_USERS == 0:
                sys.setswitchinterval(_SWITCH_SAVED)


@dataclass
class StoredRuns:
    """What storing runs saw: unknown fields and enum values, and the all-purpose clusters and
    instance pools their task runs name."""

    unknown: set[tuple[str, str]] = field(default_factory=set)
    clusters: set[str] = field(default_factory=set)
    pools: set[str] = field(default_factory=set)

    def add(self, other: StoredRuns) -> None:
        self.unknown |= other.unknown
        self.clusters |= other.clusters
        self.pools |= other.pools


@dataclass(frozen=True)
class RunSignature:
    """What the cheap listing tells about a run, enough to see that it changed."""

    end_time: int | None
    life_cycle_state: str | None
    result_state: str | None
    status_state: str | None
    run_duration_ms: int | None
    is_active: bool
    deleted: bool


def is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C or SIGTERM: a KeyboardInterrupt, or the error DuckDB raises for one that landed
    inside a query."""
    return isinstance(exc, KeyboardInterrupt | duckdb.InterruptException) or (
        isinstance(exc, RuntimeError) and str(exc) == "Query interrupted"
    )


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


def open_connection(
    path: Path, *, read_only: bool = False, wait_s: float = LOCK_WAIT_S
) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting while another process holds it; clear errors for bad files."""
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if _is_lock_error(exc) and time.monotonic() < deadline:
                _say_waiting(path)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if _is_lock_error(exc):
                raise StoreError(
                    f"the store {path} stayed locked by another process for {wait_s:.0f} s; "
                    "try again when the other jobruns command has finished"
                ) from exc
            raise StoreError(_describe_open_error(path, exc)) from exc
        except (duckdb.Error, OSError) as exc:
            raise StoreError(_describe_open_error(path, exc)) from exc


def store_files(path: Path) -> tuple[Path, Path]:
    """The store's file and its write-ahead log (which exists only between checkpoints)."""
    return path, path.with_name(path.name + ".wal")


def open_snapshot(path: Path, *, wait_s: float = LOCK_WAIT_S) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a private copy of the store as it is now.

    The copy is taken while a read-only connection to the store is open, so no writer can be
    half way through a transaction; the connection then holds no lock on the store, and an
    extract can write while it stays open. The copy is migrated to the current schema, and its
    file is unlinked once open: it disappears when the connection closes (or the process dies).
    """

    folder = Path(tempfile.mkdtemp(prefix="jobruns-snapshot-"))
    copy = folder / path.name
    try:
        source = open_connection(path, read_only=True, wait_s=wait_s)
        try:
            version = check_version(source)
            for original, target in zip(store_files(path), store_files(copy), strict=True):
                if original.exists():
                    shutil.copyfile(original, target)
        except OSError as exc:
            raise StoreError(
                f"cannot copy the store {path} to {folder} for a snapshot: {exc.strerror}; "
                "set TMPDIR to a folder with room for it"
            ) from exc
        finally:
            source.close()
        if version is not None and version < SCHEMA_VERSION:
            con = duckdb.connect(str(copy))
            try:
                con.execute("BEGIN TRANSACTION")
                migrate(con)
                con.execute("COMMIT")
            finally:
                con.close()
        return duckdb.connect(str(copy), read_only=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _describe_open_error(path: Path, exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if path.exists() and not os.access(path, os.W_OK):
        return f"cannot write the store {path}: permission denied"
    if not path.parent.exists():
        return f"cannot create the store {path}: folder {path.parent} does not exist"
    if path.is_dir():
        return (
            f"{path} is a folder, not a DuckDB file; pass a file path such as {path}/jobruns.duckdb"
        )
    if "not a valid DuckDB database" in text or "Magic" in text or "not a DuckDB" in text:
        return f"{path} is not a DuckDB file; pass another --db path"
    return f"cannot open the store {path}: {text}"


_FILE_LOCKS: dict[Path, threading.RLock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.RLock:
    """The lock the threads of this process take turns on for one store file.

    Connections of one process to one file share a DuckDB instance, and registering Arrow
    tables on one connection while another opens or closes has failed with "Table Function with
    name python_arrow_scan does not exist" (a fleet extract, several workspaces in threads).
    So every connection of the process to the file, reader or writer, is used in turn.
    """
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(path.resolve(), threading.RLock())


class _Holder:
    """Keeps a store file open in this process across write transactions, a second at a time.

    Connections of one process to one file share a DuckDB instance, which checkpoints and lets go
    of the file when its last connection closes. A transaction on a connection of its own thus
    paid for an open, a checkpoint and a close. While held, a transaction's open and close cost
    nothing, and the checkpoints come from the WAL's size alone (HELD_WAL_LIMIT, which also
    bounds what letting go has left to checkpoint), without merging row groups until the file is
    let go of (HELD_VACUUM_TASKS), on one DuckDB thread (HELD_THREADS). A thread closes the
    held connection (after the transaction in progress) as soon as another jobruns process says
    it waits for the file, or after HOLD_S, and the file then stays closed for GAP_S (the
    process's next open waits) so that the other process gets its turn.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.users = 0
        self.con: duckdb.DuckDBPyConnection | None = None
        self.opened_at = self.opened_wall = 0.0
        self.closed_at = -GAP_S
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def hold(self, wait_s: float) -> None:
        """Open the file unless it is held already, first waiting out what is left of the gap
        since it was let go of. Called under the file lock, before a connection of the process
        opens."""
        if self.con is None:
            time.sleep(max(0.0, self.closed_at + GAP_S - time.monotonic()))
            self.con = open_connection(self.path, wait_s=wait_s)
            self.con.execute(f"SET checkpoint_threshold = '{HELD_WAL_LIMIT}'")
            self.con.execute(f"SET threads = {HELD_THREADS}")
            self.con.execute(f"SET max_vacuum_tasks = {HELD_VACUUM_TASKS}")
            self.opened_at, self.opened_wall = time.monotonic(), time.time()

    def release(self) -> None:
        """Close the held connection (under the file lock): the checkpoint happens here."""
        if self.con is not None:
            con, self.con = self.con, None
            try:
                # The checkpoint at close merges the row groups the hold wrote.
                with contextlib.suppress(duckdb.Error):
                    con.execute("RESET max_vacuum_tasks")
                con.close()
            finally:
                self.closed_at = time.monotonic()

    def watch(self) -> None:
        lock = _file_lock(self.path)
        note = waiting_path(self.path)
        while not self.stop.wait(0.05):
            if self.con is not None and (
                time.monotonic() - self.opened_at >= HOLD_S or self._waited_on(note)
            ):
                with lock:
                    self.release()

    def _waited_on(self, note: Path) -> bool:
        """Whether another process said it waits for the file since it was opened."""
        try:
            touched = note.stat().st_mtime
        except OSError:
            return False
        return touched >= self.opened_wall


_HOLDERS: dict[Path, _Holder] = {}


class Store:
    """A jobruns DuckDB file. Connections are opened per unit of work and closed after it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- connections -------------------------------------------------------------------

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Keep the file open across the write transactions of the block, a second at a time
        (see _Holder): what an extract does. Nested and concurrent blocks (a fleet's threads)
        share one holder; the file is let go of when the last block ends."""
        key = self.path.resolve()
        with _file_lock(self.path):
            holder = _HOLDERS.get(key)
            if holder is None:
                holder = _HOLDERS[key] = _Holder(self.path)
                holder.thread = threading.Thread(
                    target=holder.watch, name="store-holder", daemon=True
                )
                holder.thread.start()
            holder.users += 1
        try:
            yield
        finally:
            with _file_lock(self.path):
                holder.users -= 1
                last = holder.users == 0
                if last:
                    del _HOLDERS[key]
                    holder.stop.set()
                    holder.release()
                    with contextlib.suppress(OSError):
                        waiting_path(self.path).unlink()
            if last and holder.thread is not None:
                holder.thread.join()

    @contextlib.contextmanager
    def connect(
        self, *, read_only: bool = False, wait_s: float = LOCK_WAIT_S
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        with _file_lock(self.path):
            holder = _HOLDERS.get(self.path.resolve())
            if holder is not None:
                # A read-only open needs the file closed in this process (DuckDB refuses
                # connections of one process to one file with different settings).
                if read_only:
                    holder.release()
                else:
                    holder.hold(wait_s)
            con = open_connection(self.path, read_only=read_only, wait_s=wait_s)
            # A setting of the database instance, not of a file: set per open, not at connect
            # (a connect-time setting would refuse other connections of this process to it).
            con.execute(f"SET memory_limit = '{WRITER_MEMORY_LIMIT}'")
            try:
                yield con
            finally:
                con.close()

    @contextlib.contextmanager
    def transaction(self, *, wait_s: float = LOCK_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction on a fresh connection, closed afterwards so readers get in.

        Threads of one process (several workspaces extracted at once) take turns: one writer.
        """
        with _file_lock(self.path), self.connect(wait_s=wait_s) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def initialize(self) -> None:
        """Create or migrate the schema; refuse a store written by a newer jobruns."""
        with self.transaction() as con:
            migrate(con)

    # -- reads ---------------------------------------------------------------------------

    def state(self, workspace_id: str) -> dict[str, Any]:
        with self.connect() as con:
            return read_state(con, workspace_id)

    def signatures(
        self, con: duckdb.DuckDBPyConnection, workspace_id: str, start_ms: int, end_ms: int
    ) -> dict[int, RunSignature]:
        """What the store holds of every run that started in [start_ms, end_ms]."""
        rows = con.execute(
            "SELECT run_id, epoch_ms(end_time), life_cycle_state, result_state, status_state,"
            " run_duration_ms, is_active, deleted_at IS NOT NULL FROM runs"
            " WHERE workspace_id = ? AND start_time BETWEEN make_timestamptz(? * 1000)"
            " AND make_timestamptz(? * 1000)",
            [workspace_id, start_ms, end_ms],
        ).fetchall()
        return {r[0]: RunSignature(*r[1:]) for r in rows}

    def workspace_of_host(self, host: str) -> str | None:
        """The workspace id an earlier extract of `host` found, if any."""
        with self.connect() as con:
            row = con.execute(
                "SELECT workspace_id FROM extract_state WHERE host = ? LIMIT 1", [host]
            ).fetchone()
        return None if row is None else str(row[0])

    def active_runs(self, workspace_id: str) -> dict[int, int | None]:
        """Stored runs not yet finished (run_id -> job_id), oldest first."""
        with self.connect() as con:
            rows = con.execute(
                "SELECT run_id, job_id FROM runs WHERE workspace_id = ? AND is_active"
                " AND deleted_at IS NULL ORDER BY start_time",
                [workspace_id],
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    # -- writes --------------------------------------------------------------------------

    def upsert_runs(
        self, con: duckdb.DuckDBPyConnection, workspace_id: str, batch: RunBatch
    ) -> StoredRuns:
        """Replace each run of the batch, and all its child rows, by key: flattened by DuckDB
        on this connection, then deleted and inserted one set-based statement per table."""
        stored = StoredRuns()
        if not len(batch):
            return stored
        with flattened(con, batch, workspace_id) as unknown:
            stored.unknown = unknown
            con.execute(
                "DELETE FROM runs WHERE workspace_id = ? AND run_id IN (SELECT run_id FROM flat_runs)",
                [workspace_id],
            )
            for child, parent_col in CHILDREN.items():
                con.execute(
                    f"DELETE FROM {child} WHERE workspace_id = ?"
                    f" AND {parent_col} IN (SELECT run_id FROM flat_runs)",
                    [workspace_id],
                )
            # A task run id belongs to one job run; delete by own key too, in case a
            # run's tasks were first seen under a different parent (never expected).
            for child in ("tasks", "task_iterations"):
                con.execute(
                    f"DELETE FROM {child} WHERE workspace_id = ?"
                    f" AND run_id IN (SELECT run_id FROM flat_{child})",
                    [workspace_id],
                )
            for table in FLATTENED:
                con.execute(
                    f"INSERT INTO {table} ({', '.join(TABLES[table])}) {flattened_rows(table)}"
                )
            stored.clusters = {
                str(r[0])
                for r in con.execute(
                    "SELECT DISTINCT existing_cluster_id FROM flat_tasks"
                    " WHERE existing_cluster_id IS NOT NULL"
                ).fetchall()
            }
            stored.pools = {
                str(r[0])
                for r in con.execute(
                    "SELECT DISTINCT pool FROM (SELECT unnest([instance_pool_id,"
                    " driver_instance_pool_id]) AS pool FROM flat_tasks) WHERE pool <> ''"
                ).fetchall()
            }
        return stored

    def upsert_jobs(
        self,
        con: duckdb.DuckDBPyConnection,
        workspace_id: str,
        jobs: pa.Table,
        listed_ids: Sequence[int],
        now: datetime,
    ) -> int:
        """Replace the given jobs; mark jobs not in `listed_ids` deleted. Returns jobs deleted."""
        con.register("job_keys", pa.table({"job_id": jobs.column("job_id")}))
        con.register("listed_keys", pa.table({"job_id": pa.array(list(listed_ids), pa.int64())}))
        try:
            con.execute(
                "DELETE FROM jobs WHERE workspace_id = ? AND job_id IN (SELECT job_id FROM job_keys)",
                [workspace_id],
            )
            if jobs.num_rows:
                insert_arrow(con, "jobs", jobs)
            row = con.execute(
                "UPDATE jobs SET deleted_at = ? WHERE workspace_id = ? AND deleted_at IS NULL"
                " AND job_id NOT IN (SELECT job_id FROM listed_keys) RETURNING job_id",
                [now, workspace_id],
            ).fetchall()
        finally:
            con.unregister("job_keys")
            con.unregister("listed_keys")
        return len(row)

    def clusters_to_fetch(
        self,
        con: duckdb.DuckDBPyConnection,
        workspace_id: str,
        used: Iterable[str],
        stale_before: datetime,
    ) -> list[str]:
        """All-purpose clusters to read with clusters/get: those `used` by runs just stored
        whose row is missing or older than `stale_before`, and any cluster a stored task names
        that has no row at all (a store written before the clusters table existed)."""
        # A list parameter, not a registered Arrow table: this read runs outside the write
        # lock, beside other workspaces' writers in this process.
        rows = con.execute(
            "SELECT cluster_id FROM unnest(?::VARCHAR[]) AS u(cluster_id) WHERE NOT EXISTS"
            " (SELECT 1 FROM clusters c WHERE c.workspace_id = ? AND c.cluster_id = u.cluster_id"
            " AND c.fetched_at >= ?)"
            " UNION SELECT DISTINCT existing_cluster_id FROM tasks t WHERE workspace_id = ?"
            " AND existing_cluster_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM clusters c"
            " WHERE c.workspace_id = t.workspace_id AND c.cluster_id = t.existing_cluster_id)"
            " ORDER BY 1",
            [sorted(set(used)), workspace_id, stale_before, workspace_id],
        ).fetchall()
        return [str(r[0]) for r in rows]

    def failures_without_error(
        self, con: duckdb.DuckDBPyConnection, workspace_id: str, ended_after: datetime
    ) -> list[dict[str, Any]]:
        """Finished task runs and for-each iterations that failed, timed out or hit an internal
        error after `ended_after` and have no task_errors row yet, oldest first. A job run id
        (a multi-task parent) is never among them: those are not task runs."""
        failed = (
            "(result_state IN ('FAILED', 'TIMEDOUT') OR life_cycle_state = 'INTERNAL_ERROR')"
            " AND NOT coalesce(is_active, false) AND end_time >= ?"
            " AND workspace_id = ? AND run_id NOT IN (SELECT run_id FROM task_errors"
            " WHERE workspace_id = ?) AND run_id NOT IN (SELECT run_id FROM runs"
            " WHERE workspace_id = ? AND task_count > 1)"
        )
        cols = (
            "run_id, job_run_id, job_id, task_key, {it} AS is_iteration, end_time AS failed_at,"
            " state_message, termination_code, result_state"
        )
        params = [ended_after, workspace_id, workspace_id, workspace_id]
        return fetch_dicts(
            con,
            f"SELECT {cols.format(it='false')} FROM tasks WHERE {failed} UNION ALL"
            f" SELECT {cols.format(it='true')} FROM task_iterations WHERE {failed}"
            " ORDER BY failed_at, run_id",
            params * 2,
        )

    def insert_task_errors(
        self, con: duckdb.DuckDBPyConnection, workspace_id: str, rows: pa.Table
    ) -> None:
        """Store task errors; a row already stored for a task run is replaced."""
        if rows.num_rows == 0:
            return
        con.register("error_keys", pa.table({"run_id": rows.column("run_id")}))
        try:
            con.execute(
                "DELETE FROM task_errors WHERE workspace_id = ?"
                " AND run_id IN (SELECT run_id FROM error_keys)",
                [workspace_id],
            )
        finally:
            con.unregister("error_keys")
        insert_arrow(con, "task_errors", rows)

    def upsert_clusters(
        self, con: duckdb.DuckDBPyConnection, workspace_id: str, clusters: pa.Table
    ) -> set[int]:
        """Replace the given clusters' rows by key. Returns the job runs whose cost may change:
        those with a task on a cluster that is new or whose node types, size or engine changed."""
        if clusters.num_rows == 0:
            return set()
        con.register("cluster_batch", clusters)
        con.register("cluster_keys", pa.table({"cluster_id": clusters.column("cluster_id")}))
        try:
            rows = con.execute(
                "SELECT DISTINCT t.job_run_id FROM tasks t JOIN cluster_batch b"
                " ON t.existing_cluster_id = b.cluster_id LEFT JOIN clusters c"
                " ON c.workspace_id = t.workspace_id AND c.cluster_id = b.cluster_id"
                " WHERE t.workspace_id = ? AND (c.cluster_id IS NULL"
                " OR (c.node_type_id, c.driver_node_type_id, c.num_workers, c.autoscale_min_workers,"
                " c.autoscale_max_workers, c.runtime_engine) IS DISTINCT FROM (b.node_type_id,"
                " b.driver_node_type_id, b.num_workers, b.autoscale_min_workers,"
                " b.autoscale_max_workers, b.runtime_engine))",
                [workspace_id],
            ).fetchall()
            con.execute(
                "DELETE FROM clusters WHERE workspace_id = ?"
                " AND cluster_id IN (SELECT cluster_id FROM cluster_keys)",
                [workspace_id],
            )
        finally:
            con.unregister("cluster_batch")
            con.unregister("cluster_keys")
        insert_arrow(con, "clusters", clusters)
        return {int(r[0]) for r in rows}

    def pools_to_fetch(
        self,
        con: duckdb.DuckDBPyConnection,
        workspace_id: str,
        used: Iterable[str],
        stale_before: datetime,
    ) -> list[str]:
        """Instance pools to read with instance-pools/get: those `used` by clusters just seen
        whose row is missing or older than `stale_before`, and any pool a stored task or
        cluster names that has no row at all."""
        rows = con.execute(
            "SELECT pool FROM unnest(?::VARCHAR[]) AS u(pool) WHERE NOT EXISTS"
            " (SELECT 1 FROM instance_pools p WHERE p.workspace_id = ?"
            " AND p.instance_pool_id = u.pool AND p.fetched_at >= ?)"
            " UNION SELECT pool FROM (SELECT unnest([instance_pool_id, driver_instance_pool_id])"
            " AS pool FROM tasks WHERE workspace_id = ? AND instance_pool_id IS NOT NULL"
            " UNION SELECT unnest([instance_pool_id, driver_instance_pool_id]) FROM clusters"
            " WHERE workspace_id = ? AND instance_pool_id IS NOT NULL) AS n"
            " WHERE pool IS NOT NULL AND NOT EXISTS (SELECT 1 FROM instance_pools p"
            " WHERE p.workspace_id = ? AND p.instance_pool_id = n.pool)"
            " ORDER BY 1",
            [sorted(set(used)), workspace_id, stale_before, *[workspace_id] * 3],
        ).fetchall()
        return [str(r[0]) for r in rows]

    def unknown_node_types(self, con: duckdb.DuckDBPyConnection, workspace_id: str) -> list[str]:
        """Node types that stored tasks, clusters or pools use and that neither the rate card
        nor the workspace's stored node facts know: what clusters/list-node-types is read for."""
        rows = con.execute(
            "SELECT DISTINCT n FROM (SELECT unnest([node_type_id, driver_node_type_id]) AS n"
            " FROM tasks WHERE workspace_id = ? UNION ALL SELECT unnest([node_type_id,"
            " driver_node_type_id]) FROM clusters WHERE workspace_id = ? UNION ALL"
            " SELECT node_type_id FROM instance_pools WHERE workspace_id = ?) AS u"
            " WHERE n IS NOT NULL"
            " AND n NOT IN (SELECT name FROM rate_card WHERE kind = 'node_type')"
            " AND n NOT IN (SELECT node_type_id FROM node_types WHERE workspace_id = ?)"
            " ORDER BY 1",
            [workspace_id] * 4,
        ).fetchall()
        return [str(r[0]) for r in rows]

    def autoscale_instances_to_read(
        self, con: duckdb.DuckDBPyConnection, workspace_id: str
    ) -> list[tuple[str, int, datetime, datetime]]:
        """Autoscaling job-cluster instances of ended runs whose events were never read:
        (cluster_id, job_run_id, first task start, last task end)."""
        rows = con.execute(
            "SELECT t.cluster_id, max(t.job_run_id), min(t.start_time), max(t.end_time)"
            " FROM tasks t JOIN runs r ON r.workspace_id = t.workspace_id"
            " AND r.run_id = t.job_run_id"
            " WHERE t.workspace_id = ? AND t.cluster_id IS NOT NULL"
            " AND t.autoscale_min_workers IS NOT NULL"
            " AND t.compute_kind IN ('job_cluster', 'new_cluster')"
            " AND NOT r.is_active AND r.deleted_at IS NULL AND t.start_time IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM cluster_event_reads e"
            " WHERE e.workspace_id = t.workspace_id AND e.cluster_id = t.cluster_id)"
            " GROUP BY t.cluster_id HAVING max(t.end_time) IS NOT NULL ORDER BY 1",
            [workspace_id],
        ).fetchall()
        return [(str(r[0]), int(r[1]), r[2], r[3]) for r in rows]

    def replace_rows(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        workspace_id: str,
        key: str,
        batch: pa.Table,
        *,
        keys: Iterable[str] | None = None,
    ) -> None:
        """Replace a workspace's rows of `table` whose `key` is in the batch (or in `keys`)."""
        ids = sorted(set(keys if keys is not None else batch.column(key).to_pylist()))
        if not ids:
            return
        con.execute(
            f"DELETE FROM {table} WHERE workspace_id = ? AND {key} IN (SELECT unnest(?))",
            [workspace_id, ids],
        )
        if batch.num_rows:
            insert_arrow(con, table, batch)

    def runs_using(
        self,
        con: duckdb.DuckDBPyConnection,
        workspace_id: str,
        *,
        pools: Iterable[str] = (),
        node_types: Iterable[str] = (),
    ) -> set[int]:
        """Job runs with a task on one of these pools or node types (directly or through an
        all-purpose cluster): the runs whose cost changes when their rows do."""
        rows = con.execute(
            "SELECT DISTINCT t.job_run_id FROM tasks t LEFT JOIN clusters c"
            " ON c.workspace_id = t.workspace_id AND c.cluster_id = t.existing_cluster_id"
            " WHERE t.workspace_id = ? AND (list_has_any([t.instance_pool_id,"
            " t.driver_instance_pool_id, c.instance_pool_id, c.driver_instance_pool_id], ?)"
            " OR list_has_any([t.node_type_id, t.driver_node_type_id, c.node_type_id,"
            " c.driver_node_type_id], ?)"
            " OR EXISTS (SELECT 1 FROM instance_pools p WHERE p.workspace_id = t.workspace_id"
            " AND p.instance_pool_id IN (t.instance_pool_id, t.driver_instance_pool_id,"
            " c.instance_pool_id, c.driver_instance_pool_id) AND list_has_any([p.node_type_id], ?)))",
            [workspace_id, sorted(set(pools)), *[sorted(set(node_types))] * 2],
        ).fetchall()
        return {int(r[0]) for r in rows}

    def job_signatures(self, con: duckdb.DuckDBPyConnection, workspace_id: str) -> dict[int, str]:
        """The listing hash of every stored, not deleted job."""
        rows = con.execute(
            "SELECT job_id, listing_hash FROM jobs WHERE workspace_id = ? AND deleted_at IS NULL",
            [workspace_id],
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def mark_deleted(
        self,
        con: duckdb.DuckDBPyConnection,
        workspace_id: str,
        run_ids: Iterable[int],
        now: datetime,
    ) -> int:
        ids = sorted(set(run_ids))
        if not ids:
            return 0
        con.register("gone_keys", pa.table({"run_id": pa.array(ids, type=pa.int64())}))
        try:
            rows = con.execute(
                "UPDATE runs SET deleted_at = ?, is_active = false WHERE workspace_id = ?"
                " AND deleted_at IS NULL AND run_id IN (SELECT run_id FROM gone_keys)"
                " RETURNING run_id",
                [now, workspace_id],
            ).fetchall()
        finally:
            con.unregister("gone_keys")
        return len(rows)

    def save_state(
        self, con: duckdb.DuckDBPyConnection, workspace_id: str, host: str, **values: Any
    ) -> None:
        """Update some of the workspace's state columns (datetimes), creating its row."""
        unknown = set(values) - set(STATE_COLUMNS)
        if unknown:
            raise ValueError(f"unknown state columns {unknown}")
        exists = con.execute(
            "SELECT count(*) FROM extract_state WHERE workspace_id = ?", [workspace_id]
        ).fetchone()
        if not exists or exists[0] == 0:
            con.execute(
                "INSERT INTO extract_state (workspace_id, host) VALUES (?, ?)", [workspace_id, host]
            )
        for column, value in values.items():
            con.execute(
                f"UPDATE extract_state SET {column} = ?, host = ? WHERE workspace_id = ?",
                [value, host, workspace_id],
            )

    def log_extract(self, con: duckdb.DuckDBPyConnection, entry: dict[str, Any]) -> None:
        columns = list(entry)
        placeholders = ", ".join("?" for _ in columns)
        con.execute(
            f"INSERT INTO extract_log ({', '.join(columns)}) VALUES ({placeholders})",
            [entry[c] for c in columns],
        )


class RunWriter:
    """Stores batches of runs (flattened by DuckDB, see `Store.upsert_runs`) on a thread of its
    own, in order, while the caller (the extract) goes on reading and preparing the next: DuckDB
    works without Python's lock (and takes it back often: Python's switch interval is short
    meanwhile, see WRITER_SWITCH_INTERVAL_S), so a second core is used. The writer takes every
    batch waiting when it gets to them, up to `max_runs` runs, into one transaction (or several of
    WRITER_BATCH_BYTES of JSON text at most): under load few large transactions, when idle each
    batch at once. The caller waits while `max_runs` runs are waiting. `stored` gathers what
    the transactions' StoredRuns said. Leaving the block waits for every batch to be stored
    and raises the writer's error, if any; leaving it on an error or Ctrl-C drops the waiting
    batches and lets the transaction in progress finish.
    """

    def __init__(self, store: Store, workspace_id: str, *, max_runs: int = WRITER_BATCH_RUNS):
        self._store, self._workspace_id, self._max_runs = store, workspace_id, max_runs
        self._waiting: list[RunBatch] = []
        self._waiting_runs = 0
        self._closed = False
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self.stored = StoredRuns()
        self._thread = threading.Thread(target=self._write, name="store-writer", daemon=True)
        self._switch = _short_switch_interval()

    def __enter__(self) -> RunWriter:
        self._switch.__enter__()
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        with self._cond:
            if exc_type is not None:
                self._waiting, self._waiting_runs = [], 0
            self._closed = True
            self._cond.notify_all()
        try:
            self._thread.join()
        finally:
            self._switch.__exit__(None, None, None)
        if exc_type is None:
            self._raise()

    def store(self, batch: RunBatch) -> None:
        with self._cond:
            while self._waiting_runs >= self._max_runs and self._error is None:
                self._cond.wait()
            self._raise()
            self._waiting.append(batch)
            self._waiting_runs += len(batch)
            self._cond.notify_all()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _take(self) -> list[RunBatch] | None:
        with self._cond:
            while not self._waiting and not self._closed:
                self._cond.wait()
            if not self._waiting:
                return None
            taken: list[RunBatch] = []
            runs = 0
            while self._waiting and (not taken or runs + len(self._waiting[0]) <= self._max_runs):
                runs += len(self._waiting[0])
                taken.append(self._waiting.pop(0))
            self._waiting_runs -= runs
            self._cond.notify_all()
            return taken

    def _write(self) -> None:
        while (taken := self._take()) is not None:
            if self._error is None:
                try:
                    for part in RunBatch.concat(taken).parts(WRITER_BATCH_BYTES):
                        with self._store.transaction() as con:
                            self.stored.add(self._store.upsert_runs(con, self._workspace_id, part))
                        del part
                except BaseException as exc:  # raised again on the extract's thread
                    with self._cond:
                        self._error = exc
                        self._cond.notify_all()
            del taken


def read_state(con: duckdb.DuckDBPyConnection, workspace_id: str) -> dict[str, Any]:
    row = con.execute(
        f"SELECT {', '.join(STATE_COLUMNS)} FROM extract_state WHERE workspace_id = ?",
        [workspace_id],
    ).fetchone()
    if row is None:
        return dict.fromkeys(STATE_COLUMNS)
    return dict(zip(STATE_COLUMNS, row, strict=True))


def insert_arrow(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> None:
    con.register("arrow_batch", data)
    try:
        cols = ", ".join(f'"{c}"' for c in data.column_names)
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM arrow_batch")
    finally:
        con.unregister("arrow_batch")


def fetch_dicts(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()
) -> list[dict[str, Any]]:
    """The rows of a query as dicts keyed by column name."""
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


__all__ = [
    "RunSignature",
    "RunWriter",
    "Store",
    "StoredRuns",
    "fetch_dicts",
    "insert_arrow",
    "open_connection",
    "open_snapshot",
    "read_state",
]
