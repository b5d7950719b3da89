"""One SQL query on a SQL warehouse through the Statement Execution API, as an Arrow table.

Submits with a server-side wait, polls while the statement is PENDING (a stopped warehouse
starting) or RUNNING, fetches every ARROW_STREAM chunk behind its external link, and turns
FAILED statements into errors a user can act on. Knows no DuckDB; never logs a result link.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import pyarrow as pa

from extractor.client import JobsClient, JsonDict
from extractor.errors import (
    ApiError,
    JobrunsError,
    NotFoundError,
    PermissionDeniedError,
    UsageError,
)

logger = logging.getLogger("jobruns.statements")

# The server waits this long before answering the submission (5..50 s are allowed).
SUBMIT_WAIT: Final = "30s"
# Poll intervals grow from the first to the last (GET statements/{id} can lag ~5 s anyway).
POLL_FIRST_S: Final = 0.1
POLL_MAX_S: Final = 5.0
ACTIVE_STATES: Final = ("PENDING", "RUNNING")
# A warehouse still starting after this long is worth a line on stderr.
START_NOTICE_S: Final = 10.0

# What a principal needs to read the billing system tables (Unity Catalog privileges; an
# account admin who is also a metastore admin grants them). USE SCHEMA must be granted on the
# schema itself: on the system catalog it does not cascade.
BILLING_GRANTS: Final = (
    "GRANT USE CATALOG ON CATALOG system TO `<principal>`",
    "GRANT USE SCHEMA ON SCHEMA system.billing TO `<principal>`",
    "GRANT SELECT ON TABLE system.billing.usage TO `<principal>`",
    "GRANT SELECT ON TABLE system.billing.list_prices TO `<principal>`",
)

_ARROW_TYPES: Final[Mapping[str, pa.DataType]] = {
    "STRING": pa.string(),
    "CHAR": pa.string(),
    "BOOLEAN": pa.bool_(),
    "BYTE": pa.int8(),
    "SHORT": pa.int16(),
    "INT": pa.int32(),
    "LONG": pa.int64(),
    "FLOAT": pa.float32(),
    "DOUBLE": pa.float64(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


class StatementTimeout(ApiError):
    """The statement did not finish within the wait; it was canceled."""


def query_arrow(
    client: JobsClient,
    warehouse_id: str,
    sql: str,
    *,
    wait_s: float = 900.0,
    what: str = "the query",
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> pa.Table:
    """Run `sql` on the warehouse and return its whole result (every chunk, in order).

    `what` names the query in messages (e.g. "system.billing.usage"). Waits at most `wait_s`
    for a PENDING or RUNNING statement, then cancels it and raises StatementTimeout."""
    body = {
        "warehouse_id": warehouse_id,
        "statement": sql,
        "wait_timeout": SUBMIT_WAIT,
        "on_wait_timeout": "CONTINUE",
        "format": "ARROW_STREAM",
        "disposition": "EXTERNAL_LINKS",
    }
    started = monotonic()
    try:
        response = client.execute_statement(body)
    except NotFoundError as exc:
        raise UsageError(
            f"no SQL warehouse {warehouse_id} on {client.host} ({exc}); the ID is in the "
            "warehouse's Connection details (or `databricks warehouses list`)"
        ) from None
    except PermissionDeniedError as exc:
        raise PermissionDeniedError(
            f"the principal may not use SQL warehouse {warehouse_id} on {client.host}: it needs "
            f"the CAN USE permission on the warehouse ({exc})",
            status=exc.status,
            error_code=exc.error_code,
        ) from None
    statement_id = str(response.get("statement_id") or "")
    interval = POLL_FIRST_S
    announced = ""
    told = False
    while _state(response) in ACTIVE_STATES:
        state = _state(response)
        waited = monotonic() - started
        if state != announced:
            logger.info(
                "statement %s on warehouse %s is %s%s",
                statement_id,
                warehouse_id,
                state,
                " (the warehouse is starting)" if state == "PENDING" else "",
            )
            announced = state
        if state == "PENDING" and waited >= START_NOTICE_S and not told:
            logger.warning(
                "SQL warehouse %s is starting; waiting for it (at most %s)",
                warehouse_id,
                _seconds(wait_s),
            )
            told = True
        if waited + interval > wait_s:
            _cancel(client, statement_id)
            doing = (
                "waiting for the warehouse to start"
                if state == "PENDING"
                else "still running on the warehouse"
            )
            raise StatementTimeout(
                f"{what} was {doing} after {_seconds(waited)} (state {state}); it was canceled. "
                "Run again when the warehouse is up, or allow longer with --wait"
            )
        sleep(interval)
        interval = min(POLL_MAX_S, interval * 2)
        response = client.get_statement(statement_id)
    state = _state(response)
    if state == "FAILED":
        raise statement_error(response, warehouse_id, what)
    if state != "SUCCEEDED":
        raise ApiError(f"{what} ended {state} on warehouse {warehouse_id} without a result")
    return _result(client, response, what)


def _state(response: Mapping[str, Any]) -> str:
    return str((response.get("status") or {}).get("state") or "")


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def _cancel(client: JobsClient, statement_id: str) -> None:
    if not statement_id:
        return
    try:
        client.cancel_statement(statement_id)
    except JobrunsError as exc:
        logger.warning("could not cancel statement %s: %s", statement_id, exc)


def statement_error(response: Mapping[str, Any], warehouse_id: str, what: str) -> JobrunsError:
    """The error for a FAILED statement, naming what the user must change where we know it."""
    status = response.get("status") or {}
    error = status.get("error") or {}
    code = str(error.get("error_code") or "")
    message = str(error.get("message") or "(no message)")
    sql_state = str(status.get("sql_state") or "")
    upper = message.upper()
    if "INSUFFICIENT_PERMISSIONS" in upper or sql_state == "42501":
        grants = ";\n  ".join(BILLING_GRANTS)
        return PermissionDeniedError(
            f"the principal may not read {what}: {message}\nAn account admin who is also a "
            f"metastore admin must grant it:\n  {grants};",
            status=200,
            error_code=code or None,
        )
    no_system_catalog = "system" in message.lower() and (
        "TABLE_OR_VIEW_NOT_FOUND" in upper
        or "NO_SUCH_CATALOG" in upper
        or "SCHEMA_NOT_FOUND" in upper
    )
    if "UC_NOT_ENABLED" in upper or sql_state == "56038" or no_system_catalog:
        return ApiError(
            f"{what} cannot be read here: {message}\nSystem tables live in Unity Catalog: use a "
            "SQL warehouse of a workspace attached to a Unity Catalog metastore (any workspace "
            "of the same account sees every workspace's billing: pick it with --host or "
            "--profile), or export the tables and load them with `jobruns billing import`",
            status=200,
            error_code=code or None,
        )
    detail = f"{code}: {message}" if code else message
    return ApiError(
        f"{what} failed on warehouse {warehouse_id}: {detail}"
        + (f" (SQLSTATE {sql_state})" if sql_state else ""),
        status=200,
        error_code=code or None,
    )


def _result(client: JobsClient, response: JsonDict, what: str) -> pa.Table:
    manifest = response.get("manifest") or {}
    if manifest.get("format") not in (None, "ARROW_STREAM"):
        raise ApiError(f"{what}: the warehouse answered {manifest.get('format')}, not ARROW_STREAM")
    if manifest.get("truncated"):
        raise ApiError(
            f"{what}: the result was truncated by the warehouse (over 100 GiB); sync a shorter "
            "period with --since"
        )
    schema = _schema(manifest)
    statement_id = str(response.get("statement_id") or "")
    total = int(manifest.get("total_chunk_count") or 0)
    tables: list[pa.Table] = []
    first = response.get("result") or {}
    for index in range(total):
        data = first if index == 0 and first.get("external_links") else None
        tables.append(_chunk(client, statement_id, index, data, what))
    if not tables:
        return schema.empty_table()
    table = pa.concat_tables(tables, promote_options="permissive")
    expected = manifest.get("total_row_count")
    if expected is not None and table.num_rows != int(expected):
        raise ApiError(
            f"{what}: {table.num_rows} rows in the chunks but the manifest says {expected}"
        )
    return table


def _chunk(
    client: JobsClient, statement_id: str, index: int, data: JsonDict | None, what: str
) -> pa.Table:
    """Chunk `index`: download its links; an expired link is asked for again, once."""
    for attempt in (1, 2):
        if data is None:
            data = client.get_statement_chunk(statement_id, index)
        links = [link for link in data.get("external_links") or [] if link.get("external_link")]
        if not links:
            raise ApiError(f"{what}: chunk {index} of the result came without an external link")
        try:
            parts = [_read_link(client, link, index) for link in links]
        except ApiError as exc:
            if attempt == 2 or exc.status not in (400, 403):
                raise
            logger.info(
                "result link of chunk %d was refused (%s); asking for a new one", index, exc
            )
            data = None
            continue
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    raise AssertionError("unreachable")


def _read_link(client: JobsClient, link: Mapping[str, Any], index: int) -> pa.Table:
    if link.get("chunk_index") not in (None, index):
        raise ApiError(f"asked for chunk {index}, got chunk {link.get('chunk_index')}")
    headers = {str(k): str(v) for k, v in (link.get("http_headers") or {}).items()}
    blob = client.download(str(link["external_link"]), headers)
    try:
        return pa.ipc.open_stream(blob).read_all()
    except pa.ArrowInvalid as exc:
        raise ApiError(f"chunk {index} of the result is not an Arrow stream: {exc}") from None


def _schema(manifest: Mapping[str, Any]) -> pa.Schema:
    """The manifest's columns as an Arrow schema (for a result without chunks)."""
    columns = sorted(
        (manifest.get("schema") or {}).get("columns") or [], key=lambda c: c.get("position", 0)
    )
    fields = []
    for column in columns:
        name = str(column.get("name"))
        kind = str(column.get("type_name") or "STRING")
        if kind == "DECIMAL":
            arrow_type = pa.decimal128(
                int(column.get("type_precision") or 38), int(column.get("type_scale") or 0)
            )
        else:
            arrow_type = _ARROW_TYPES.get(kind, pa.string())
        fields.append(pa.field(name, arrow_type))
    return pa.schema(fields)
