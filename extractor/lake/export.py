"""`jobruns export`: the store's tables copied to a lakehouse folder as Delta or Parquet.

Incremental: only partitions holding runs (or jobs, or other rows) changed since the last export
to the same destination are written, tracked in the store's export_state. Rows are streamed from
DuckDB in record batches, one partition at a time; nothing loads a whole table into memory.
It never changes run data in the store: it writes export_state alone, under the writer lock.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import duckdb
import pyarrow as pa

from extractor.errors import StoreError, UsageError
from extractor.extras import require
from extractor.lake.tables import EXPORT_TABLES, PARTITION_COLUMNS
from extractor.lock import ExtractLock
from extractor.schema import CHILDREN, KEYS, TABLES, table_ddl
from extractor.store import Store, open_connection

log = logging.getLogger("jobruns.export")

Format = Literal["delta", "parquet"]
FORMATS: tuple[Format, ...] = ("delta", "parquet")

DEFAULT_BATCH_ROWS = 10_000
# DuckDB's own memory while it streams (it spills beyond this); the rest is batches in flight.
DEFAULT_MEMORY_LIMIT = "256MB"
DELTA_CHUNK_ROWS = 100_000
# A Parquet file of a partition is closed and another begun past this many bytes (uncompressed).
PARQUET_FILE_BYTES = 256 * 1024 * 1024
# Commit conflicts with another writer of the same Delta table are retried this often.
COMMIT_ATTEMPTS = 10

RUN_TABLES = ("runs", *CHILDREN)
WATERMARK_TABLES = (*RUN_TABLES, "jobs")
UNKNOWN_MONTH = "unknown"


@dataclass
class TableExport:
    """What one export did to one table."""

    table: str
    partitions: int = 0
    rows: int = 0


@dataclass
class ExportResult:
    destination: str
    format: Format
    tables: list[TableExport] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def partitions(self) -> int:
        return sum(t.partitions for t in self.tables)


@dataclass(frozen=True)
class Partition:
    """One partition of one table to write, and how.

    mode: 'append' (absent at the destination: every row), 'overwrite' (every row, replacing the
    partition), 'merge' (only the changed rows, merged or replaced by key).
    """

    values: tuple[str, ...]
    mode: str
    changed: int


# -- destinations ----------------------------------------------------------------------------


def normalize_destination(path: str) -> str:
    """A local folder as an absolute path; an object-store URL as given, without a final '/'."""
    if "://" in path and not path.startswith("file://"):
        return path.rstrip("/")
    local = path.removeprefix("file://")
    return str(Path(local).expanduser().resolve())


def _is_local(destination: str) -> bool:
    return "://" not in destination


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- reading the store ------------------------------------------------------------------------


@contextmanager
def _reader(store: Store, memory_limit: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection; cost tables the store lacks are empty TEMP tables, and an empty
    rate card is shadowed by the shipped one, as the views see them."""
    from extractor.analytics.cost import ensure_cost_tables

    con = open_connection(store.path, read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute("SET preserve_insertion_order = false")
        ensure_cost_tables(con, temporary=True)
        yield con
    finally:
        con.close()


def _month(expr: str) -> str:
    return f"coalesce(strftime({expr}, '%Y-%m'), '{UNKNOWN_MONTH}')"


def _month_bounds(month: str) -> tuple[datetime, datetime] | None:
    if month == UNKNOWN_MONTH:
        return None
    year, mon = (int(p) for p in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _in_month(column: str, month: str) -> tuple[str, list[Any]]:
    bounds = _month_bounds(month)
    if bounds is None:
        return f"{column} IS NULL", []
    return f"{column} >= ? AND {column} < ?", list(bounds)


def _columns(table: str, fmt: Format) -> list[str]:
    """The table's columns as exported: JSON as text; Parquet files leave out partition columns."""
    out = []
    for column, sql_type in TABLES[table].items():
        if fmt == "parquet" and column in PARTITION_COLUMNS[table]:
            continue
        out.append(
            f'CAST("{column}" AS VARCHAR) AS "{column}"' if sql_type == "JSON" else f'"{column}"'
        )
    return out


@dataclass(frozen=True)
class Query:
    sql: str
    params: list[Any]


class Source:
    """The SQL that selects one table's rows, per partition and change set."""

    def __init__(self, table: str, fmt: Format, since: datetime | None) -> None:
        self.table = table
        self.fmt = fmt
        self.since = since

    def _run_filter(
        self, ws: str, month: str, watermark: datetime | None, changed_only: bool
    ) -> Query:
        where, params = _in_month("r.start_time", month)
        sql = f"r.workspace_id = ? AND {where} AND coalesce(r.start_time >= ?, true)"
        params = [ws, *params, self.since]
        if changed_only and watermark is not None:
            sql += " AND (r.extracted_at > ? OR r.deleted_at > ?)"
            params += [watermark, watermark]
        return Query(sql, params)

    def rows(
        self, values: tuple[str, ...], watermark: datetime | None, changed_only: bool
    ) -> Query:
        """The rows of one partition: all of them, or those of changed runs/jobs."""
        table = self.table
        cols = ", ".join(_columns(table, self.fmt))
        if table in RUN_TABLES:
            ws, month = values
            extra = f", {_sql_literal(month)} AS start_month" if self.fmt == "delta" else ""
            runs = self._run_filter(ws, month, watermark, changed_only)
            if table == "runs":
                return Query(f"SELECT {cols}{extra} FROM runs AS r WHERE {runs.sql}", runs.params)
            parent = CHILDREN[table]
            return Query(
                f"SELECT {cols}{extra} FROM {table} WHERE workspace_id = ? AND {parent} IN"
                f" (SELECT r.run_id FROM runs AS r WHERE {runs.sql})",
                [ws, *runs.params],
            )
        if table == "jobs":
            sql = f"SELECT {cols} FROM jobs WHERE workspace_id = ?"
            params: list[Any] = [values[0]]
            if changed_only and watermark is not None:
                sql += " AND (extracted_at > ? OR deleted_at > ?)"
                params += [watermark, watermark]
            return Query(sql, params)
        if table == "billing_usage":
            ws, month = values
            where, bounds = _in_month("usage_date", month)
            extra = f", {_sql_literal(month)} AS usage_month" if self.fmt == "delta" else ""
            return Query(
                f"SELECT {cols}{extra} FROM billing_usage WHERE workspace_id = ? AND {where}",
                [ws, *bounds],
            )
        return Query(f"SELECT {cols} FROM {table}", [])

    def changed_keys(self, values: tuple[str, ...], watermark: datetime | None) -> Query:
        """workspace_id and parent key of the changed runs of a partition (children's merge)."""
        ws, month = values
        runs = self._run_filter(ws, month, watermark, True)
        parent = CHILDREN[self.table]
        return Query(
            f"SELECT r.workspace_id, r.run_id AS {parent} FROM runs AS r WHERE {runs.sql}",
            runs.params,
        )


def _watermarks(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, datetime]:
    """Per workspace, the latest extracted_at or deleted_at of the rows deciding `table`."""
    source = "jobs" if table == "jobs" else "runs"
    rows = con.execute(
        f"SELECT workspace_id, greatest(max(extracted_at), max(deleted_at)) FROM {source}"
        " GROUP BY workspace_id"
    ).fetchall()
    return {str(ws): wm for ws, wm in rows if wm is not None}


def _changed_partitions(
    con: duckdb.DuckDBPyConnection,
    table: str,
    since: datetime | None,
    watermarks: dict[str, datetime | None],
) -> list[tuple[tuple[str, ...], int, int]]:
    """(partition values, changed rows, all rows) of partitions with changes, in order."""
    source = "jobs" if table == "jobs" else "runs"
    con.register(
        "export_wm",
        pa.table(
            {
                "workspace_id": pa.array(list(watermarks), pa.string()),
                "watermark": pa.array(list(watermarks.values()), pa.timestamp("us", tz="UTC")),
            }
        ),
    )
    try:
        if source == "jobs":
            part, where = "s.workspace_id", "true"
        else:
            part = f"s.workspace_id, {_month('s.start_time')}"
            where = "coalesce(s.start_time >= ?, true)"
        changed = (
            "w.watermark IS NULL OR s.extracted_at > w.watermark OR s.deleted_at > w.watermark"
        )
        rows = con.execute(
            f"SELECT {part}, count(*) FILTER (WHERE {changed}), count(*)"
            f" FROM {source} AS s LEFT JOIN export_wm AS w ON s.workspace_id = w.workspace_id"
            f" WHERE {where} GROUP BY ALL HAVING count(*) FILTER (WHERE {changed}) > 0"
            " ORDER BY ALL",
            [] if source == "jobs" else [since],
        ).fetchall()
    finally:
        con.unregister("export_wm")
    width = len(PARTITION_COLUMNS[table])
    return [(tuple(str(v) for v in r[:width]), int(r[width]), int(r[width + 1])) for r in rows]


def _fingerprints(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """A fingerprint (row count and sum of row hashes) of every partition of a table."""
    month = _month("usage_date")
    part = f"workspace_id || '/' || {month}" if table == "billing_usage" else "''"
    rows = con.execute(
        f"SELECT {part} AS p, count(*) || ':' || CAST(sum(hash(t)) AS VARCHAR)"
        f" FROM {table} AS t GROUP BY p"
    ).fetchall()
    return {str(p): str(fp) for p, fp in rows}


# -- export state -----------------------------------------------------------------------------


@dataclass
class TableState:
    since: datetime | None = None
    watermarks: dict[str, datetime | None] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    known: bool = False


def _load_state(store: Store, destination: str, fmt: Format) -> dict[str, TableState]:
    states: dict[str, TableState] = {}
    with store.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT table_name, workspace_id, since, watermark, CAST(fingerprints AS VARCHAR)"
            " FROM export_state WHERE destination = ? AND format = ?",
            [destination, fmt],
        ).fetchall()
    for table, ws, since, watermark, fingerprints in rows:
        state = states.setdefault(str(table), TableState(since=since, known=True))
        if ws is not None:
            state.watermarks[str(ws)] = watermark
        if fingerprints:
            state.fingerprints.update(json.loads(fingerprints))
    return states


def _save_state(
    store: Store, destination: str, fmt: Format, tables: list[tuple[str, TableState, int]]
) -> None:
    now = datetime.now(UTC)
    with store.transaction() as con:
        for table, state, rows_written in tables:
            con.execute(
                "DELETE FROM export_state WHERE destination = ? AND format = ? AND table_name = ?",
                [destination, fmt, table],
            )
            entries: list[tuple[str | None, datetime | None, str | None]]
            if table in WATERMARK_TABLES:
                entries = [(ws, wm, None) for ws, wm in sorted(state.watermarks.items())]
            else:
                entries = [(None, None, json.dumps(state.fingerprints, sort_keys=True))]
            for ws, watermark, fingerprints in entries:
                con.execute(
                    "INSERT INTO export_state (destination, format, table_name, workspace_id,"
                    " since, watermark, fingerprints, rows_written, exported_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        destination,
                        fmt,
                        table,
                        ws,
                        state.since,
                        watermark,
                        fingerprints,
                        rows_written,
                        now,
                    ],
                )


# -- writers ----------------------------------------------------------------------------------


ReaderFactory = Callable[[Query], pa.RecordBatchReader]


class Writer:
    """Writes the partitions of one table at a destination."""

    # True when a changed partition is written whole (Parquet), not merged by key.
    rewrites_partitions = False

    def __init__(self, destination: str, table: str, batch_rows: int) -> None:
        self.uri = f"{destination}/{table}"
        self.table = table
        self.partition_by = list(PARTITION_COLUMNS[table])
        self.batch_rows = batch_rows

    def exists(self) -> bool:
        raise NotImplementedError

    def present(self) -> set[tuple[str, ...]]:
        """Partitions that already hold files at the destination."""
        raise NotImplementedError

    def ensure(self, schema: pa.Schema) -> None:
        """Create the (empty) table when absent, so every table exists after an export."""

    def write(
        self,
        partition: Partition,
        rows: Callable[[], pa.RecordBatchReader],
        changed_keys: Callable[[], pa.RecordBatchReader] | None,
    ) -> int:
        raise NotImplementedError

    def drop(self, values: tuple[str, ...]) -> None:
        raise NotImplementedError


def _chunks(reader: pa.RecordBatchReader, rows: int) -> Iterator[list[pa.RecordBatch]]:
    """The reader's batches in lists of about `rows` rows."""
    chunk: list[pa.RecordBatch] = []
    size = 0
    for batch in reader:
        chunk.append(batch)
        size += batch.num_rows
        if size >= rows:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


class _Counting:
    """A RecordBatchReader's batches, counted as they pass."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self.reader = reader
        self.rows = 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self.reader:
            self.rows += batch.num_rows
            yield batch

    def as_reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.reader.schema, iter(self))


def _is_conflict(exc: Exception) -> bool:
    from deltalake.exceptions import CommitFailedError

    if isinstance(exc, CommitFailedError):
        return True
    text = str(exc).lower()
    return any(
        marker in text
        for marker in ("conflict", "version already exists", "already exists", "transaction failed")
    )


def with_retries(action: Callable[[], Any], what: str, *, attempts: int = COMMIT_ATTEMPTS) -> Any:
    """Run a Delta commit, again after a conflict with another writer (exponential backoff)."""
    from deltalake.exceptions import DeltaError

    delay = 0.05
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except (DeltaError, OSError) as exc:
            if attempt == attempts or not _is_conflict(exc):
                raise
            log.info("commit conflict on %s (attempt %d): %s; retrying", what, attempt, exc)
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


def _predicate(columns: Sequence[str], values: Sequence[str], alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return " AND ".join(
        f"{prefix}{c} = {_sql_literal(v)}" for c, v in zip(columns, values, strict=True)
    )


class DeltaWriter(Writer):
    """Delta Lake through delta-rs: appends, partition overwrites and merges by key.

    Its methods import deltalake where they use it: export() has required it before any writer.
    """

    def __init__(self, destination: str, table: str, batch_rows: int) -> None:
        super().__init__(destination, table, batch_rows)
        from deltalake import WriterProperties

        self.properties = WriterProperties(max_row_group_size=batch_rows)

    def _table(self) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(self.uri)

    def exists(self) -> bool:
        from deltalake import DeltaTable

        return bool(DeltaTable.is_deltatable(self.uri))

    def present(self) -> set[tuple[str, ...]]:
        if not self.exists() or not self.partition_by:
            return set()
        table = self._table()
        out = set()
        for part in table.partitions():
            out.add(tuple(str(part[c]) for c in self.partition_by))
        # partitions() also lists partitions whose files were all removed; keep those with data.
        actions = pa.table(table.get_add_actions(flatten=True))
        have = set()
        for row in actions.select([f"partition.{c}" for c in self.partition_by]).to_pylist():
            have.add(tuple(str(row[f"partition.{c}"]) for c in self.partition_by))
        return out & have

    def ensure(self, schema: pa.Schema) -> None:
        from deltalake import DeltaTable

        if self.exists():
            return

        def create() -> None:
            DeltaTable.create(
                self.uri, schema, mode="ignore", partition_by=self.partition_by or None
            )

        with_retries(create, f"creating {self.table}")

    def _append(self, rows: Callable[[], pa.RecordBatchReader], **kwargs: Any) -> int:
        """Write the rows in chunks of DELTA_CHUNK_ROWS, one commit each: delta-rs holds what
        it is given in memory, so a whole partition at once would not be bounded. The first
        chunk takes `kwargs` (an overwrite clears the partition); the rest are appended."""
        from deltalake import write_deltalake

        reader = rows()
        written = 0
        chunks = _chunks(reader, DELTA_CHUNK_ROWS)
        first = next(chunks, None)
        for chunk in [first] if first is None else itertools.chain([first], chunks):
            table = pa.Table.from_batches(chunk or [], schema=reader.schema)
            args = kwargs if written == 0 else {"mode": "append"}

            def write(table: pa.Table = table, args: dict[str, Any] = args) -> None:
                write_deltalake(
                    self.uri,
                    table,
                    partition_by=self.partition_by or None,
                    schema_mode="merge",
                    writer_properties=self.properties,
                    **args,
                )

            with_retries(write, f"writing {self.table}")
            written += table.num_rows
        return written

    def write(
        self,
        partition: Partition,
        rows: Callable[[], pa.RecordBatchReader],
        changed_keys: Callable[[], pa.RecordBatchReader] | None,
    ) -> int:
        where = _predicate(self.partition_by, partition.values)
        if partition.mode == "append":
            return self._append(rows, mode="append")
        if partition.mode == "overwrite":
            if where:
                return self._append(rows, mode="overwrite", predicate=where)
            return self._append(rows, mode="overwrite")
        if changed_keys is not None:
            # Children of changed runs are replaced whole: a repair's task rows are not doubled.
            self._delete_matching(changed_keys, partition.values)
            return self._append(rows, mode="append")
        return self._merge(rows, partition.values)

    def _merge(self, rows: Callable[[], pa.RecordBatchReader], values: tuple[str, ...]) -> int:
        keys = KEYS[self.table]
        on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        literal = _predicate(self.partition_by, values, "t")
        predicate = f"{on} AND {literal}" if literal else on
        counted: list[_Counting] = []

        def merge() -> None:
            counting = _Counting(rows())
            counted.append(counting)
            (
                self._table()
                .merge(
                    counting.as_reader(),
                    predicate=predicate,
                    source_alias="s",
                    target_alias="t",
                    merge_schema=True,
                    writer_properties=self.properties,
                )
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )

        with_retries(merge, f"merging into {self.table}")
        return counted[-1].rows

    def _delete_matching(
        self, changed_keys: Callable[[], pa.RecordBatchReader], values: tuple[str, ...]
    ) -> None:
        parent = CHILDREN[self.table]
        literal = _predicate(self.partition_by, values, "t")
        predicate = f"t.workspace_id = s.workspace_id AND t.{parent} = s.{parent} AND {literal}"

        def delete() -> None:
            (
                self._table()
                .merge(changed_keys(), predicate=predicate, source_alias="s", target_alias="t")
                .when_matched_delete()
                .execute()
            )

        with_retries(delete, f"deleting replaced rows of {self.table}")

    def drop(self, values: tuple[str, ...]) -> None:
        where = _predicate(self.partition_by, values)
        with_retries(lambda: self._table().delete(where or None), f"deleting from {self.table}")


class ParquetWriter(Writer):
    """A hive-partitioned Parquet dataset; a changed partition's files are rewritten whole."""

    rewrites_partitions = True

    def __init__(self, destination: str, table: str, batch_rows: int) -> None:
        super().__init__(destination, table, batch_rows)
        import pyarrow.fs as pafs

        if _is_local(destination):
            self.fs: Any = pafs.LocalFileSystem()
            self.root = f"{destination}/{table}"
        else:
            self.fs, base = pafs.FileSystem.from_uri(destination)
            self.root = f"{base.rstrip('/')}/{table}"
        self.token = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"

    def _dir(self, values: tuple[str, ...]) -> str:
        parts = [f"{c}={quote(v, safe='')}" for c, v in zip(self.partition_by, values, strict=True)]
        return "/".join([self.root, *parts])

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return bool(self.fs.get_file_info(self.root).type == pafs.FileType.Directory)

    def _files(self, directory: str) -> list[str]:
        import pyarrow.fs as pafs

        if self.fs.get_file_info(directory).type != pafs.FileType.Directory:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(directory, recursive=False))
        return [
            i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet")
        ]

    def present(self) -> set[tuple[str, ...]]:
        import pyarrow.fs as pafs

        if not self.partition_by or not self.exists():
            return set()
        infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True))
        out = set()
        depth = len(self.partition_by)
        for info in infos:
            if info.type != pafs.FileType.File or not info.path.endswith(".parquet"):
                continue
            rel = info.path[len(self.root) + 1 :].split("/")
            if len(rel) == depth + 1:
                from urllib.parse import unquote

                out.add(tuple(unquote(p.split("=", 1)[1]) for p in rel[:depth]))
        return out

    def ensure(self, schema: pa.Schema) -> None:
        self.fs.create_dir(self.root, recursive=True)

    def write(
        self,
        partition: Partition,
        rows: Callable[[], pa.RecordBatchReader],
        changed_keys: Callable[[], pa.RecordBatchReader] | None,
    ) -> int:
        import pyarrow.parquet as pq

        directory = self._dir(partition.values)
        old = self._files(directory)
        reader = rows()
        written = 0
        seq = 0
        out: pq.ParquetWriter | None = None
        size = 0
        try:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                if out is None or size > PARQUET_FILE_BYTES:
                    if out is not None:
                        out.close()
                    self.fs.create_dir(directory, recursive=True)
                    path = f"{directory}/part-{self.token}-{seq:05d}.parquet"
                    out = pq.ParquetWriter(path, reader.schema, filesystem=self.fs)
                    seq += 1
                    size = 0
                out.write_batch(batch)
                size += batch.nbytes
                written += batch.num_rows
        finally:
            if out is not None:
                out.close()
        # Readers may see old and new files together for a moment; never neither.
        for path in old:
            self.fs.delete_file(path)
        return written

    def drop(self, values: tuple[str, ...]) -> None:
        for path in self._files(self._dir(values)):
            self.fs.delete_file(path)


def _writer(fmt: Format, destination: str, table: str, batch_rows: int) -> Writer:
    if fmt == "delta":
        return DeltaWriter(destination, table, batch_rows)
    return ParquetWriter(destination, table, batch_rows)


# -- the export -------------------------------------------------------------------------------


def export(
    db: str | Path,
    destination: str,
    fmt: Format = "delta",
    *,
    since: datetime | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    tables: Sequence[str] = EXPORT_TABLES,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export the store at `db` to `destination` (a folder or an object-store URL).

    Holds the store's writer lock throughout, so the export sees no half-written extract.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose delta or parquet")
    if fmt == "delta":
        # Before anything is locked or written; DeltaWriter's own imports come after this.
        require("deltalake", "jobruns[export]", "the delta format (--format delta)")
    store = Store(db)
    if not store.path.exists():
        raise StoreError(f"no store at {store.path}; run `jobruns extract` first")
    dest = normalize_destination(destination)
    if _is_local(dest):
        Path(dest).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = ExportResult(destination=dest, format=fmt)
    with ExtractLock(store.path):
        with store.transaction() as con:
            con.execute(table_ddl("export_state"))
        states = _load_state(store, dest, fmt)
        finished: list[tuple[str, TableState, int]] = []
        with _reader(store, memory_limit) as con:
            for table in tables:
                writer = _writer(fmt, dest, table, batch_rows)
                state = states.get(table, TableState())
                if not state.known or not writer.exists() or _since_widened(state.since, since):
                    state = TableState(since=since)
                elif since is not None and (state.since is None or since < state.since):
                    state.since = since
                done = _export_table(con, writer, table, fmt, since, state, batch_rows)
                result.tables.append(done)
                finished.append((table, state, done.rows))
                if progress is not None:
                    progress(f"{table}: {done.rows} rows in {done.partitions} partitions")
        # Saved once all tables are written: an interrupted export is redone whole next time.
        _save_state(store, dest, fmt, finished)
    result.duration_s = time.monotonic() - started
    return result


def _since_widened(previous: datetime | None, since: datetime | None) -> bool:
    """True when this export asks for runs the destination was never given."""
    if previous is None:
        return False
    return since is None or since < previous


def _export_table(
    con: duckdb.DuckDBPyConnection,
    writer: Writer,
    table: str,
    fmt: Format,
    since: datetime | None,
    state: TableState,
    batch_rows: int,
) -> TableExport:
    done = TableExport(table)
    source = Source(table, fmt, since if table in RUN_TABLES else None)

    def reader(query: Query) -> Callable[[], pa.RecordBatchReader]:
        return lambda: con.sql(query.sql, params=query.params).to_arrow_reader(batch_rows)

    nothing = source.rows(_any_values(table), None, False)
    writer.ensure(con.sql(nothing.sql, params=nothing.params).to_arrow_reader(1).schema)
    present = writer.present()
    if table in WATERMARK_TABLES:
        new_watermarks = _watermarks(con, table)
        partitions = _changed_partitions(con, table, since, dict(state.watermarks))
        for values, changed, total in partitions:
            watermark = state.watermarks.get(values[0])
            if writer.partition_by and values not in present:
                mode = "append"
            elif changed == total and _whole_month(values, since, table):
                mode = "overwrite"
            else:
                mode = "merge"
            part = Partition(values, mode, changed)
            # Parquet rewrites a changed partition whole; Delta merges the changed rows.
            changed_only = mode == "merge" and not writer.rewrites_partitions
            rows = source.rows(values, watermark, changed_only=changed_only)
            keys = (
                reader(source.changed_keys(values, watermark))
                if changed_only and table in CHILDREN
                else None
            )
            done.rows += writer.write(part, reader(rows), keys)
            done.partitions += 1
        state.watermarks.update(new_watermarks)
    else:
        fingerprints = _fingerprints(con, table)
        for key in sorted(set(fingerprints) | set(state.fingerprints)):
            if fingerprints.get(key) == state.fingerprints.get(key):
                continue
            values = tuple(key.split("/")) if writer.partition_by else ()
            if key not in fingerprints:
                writer.drop(values)
            else:
                mode = "overwrite" if values in present or not writer.partition_by else "append"
                done.rows += writer.write(
                    Partition(values, mode, 0), reader(source.rows(values, None, False)), None
                )
            done.partitions += 1
        state.fingerprints = fingerprints
    return done


def _any_values(table: str) -> tuple[str, ...]:
    """Partition values that select nothing, for reading a table's exported schema."""
    return ("\x00", UNKNOWN_MONTH)[: len(PARTITION_COLUMNS[table])]


def _whole_month(values: tuple[str, ...], since: datetime | None, table: str) -> bool:
    """Whether `since` leaves the partition whole (so it may be replaced by what is selected)."""
    if table == "jobs" or since is None:
        return True
    bounds = _month_bounds(values[1])
    return bounds is not None and bounds[0] >= since


__all__ = [
    "FORMATS",
    "ExportResult",
    "TableExport",
    "export",
    "normalize_destination",
    "with_retries",
]
