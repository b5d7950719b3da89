"""The simulated SQL warehouse: the Statement Execution API for the billing queries jobruns sends.

Statements move PENDING (while a stopped warehouse starts) -> RUNNING -> SUCCEEDED, or FAILED
with the error a principal without the system.billing grants, or a workspace without Unity
Catalog, would get. Results are ARROW_STREAM chunks behind presigned-style links (served by the
same server, refusing an Authorization header as cloud storage does) or JSON_ARRAY inline.
Only the shapes of query jobruns sends are understood; anything else fails like bad SQL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from ._billing import PRICE_COLUMNS, USAGE_COLUMNS
from ._model import ApiError

STATEMENTS_PATH = "/api/2.0/sql/statements"
STORAGE_PATH = "/_storage/results/"
LINK_TTL_S = 900  # external links live <= 15 minutes (StatementExecutionAPI docstring)

# Struct and map columns: the simulator serves them only through to_json(), as jobruns asks.
_JSON_COLUMNS = frozenset(
    {"custom_tags", "usage_metadata", "identity_metadata", "product_features", "pricing"}
)
_TIMESTAMPS = frozenset(
    {"usage_start_time", "usage_end_time", "price_start_time", "price_end_time"}
)
_DATES = frozenset({"usage_date", "ingestion_date"})
_TABLE_COLUMNS = {"usage": USAGE_COLUMNS, "list_prices": PRICE_COLUMNS}

_SELECT_RE = re.compile(
    r"^\s*SELECT\s+(?P<cols>.+?)\s+FROM\s+system\.billing\.(?P<table>usage|list_prices)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_TO_JSON_RE = re.compile(r"^to_json\((\w+)\)\s+AS\s+(\w+)$", re.IGNORECASE)
_WORKSPACES_RE = re.compile(r"workspace_id\s+IN\s*\(([^)]*)\)", re.IGNORECASE)
_SINCE_RE = re.compile(r"usage_date\s*>=\s*DATE\s*'(\d{4}-\d{2}-\d{2})'", re.IGNORECASE)
_WAIT_RE = re.compile(r"^(\d+)s$")

NO_GRANT = (
    "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have USE SCHEMA on "
    "Schema 'system.billing'. SQLSTATE: 42501",
    "42501",
)
# The wording for a workspace without a Unity Catalog metastore is our assumption; the error
# class and SQLSTATE are Databricks' for UC features on compute without Unity Catalog.
NO_UC = ("[UC_NOT_ENABLED] Unity Catalog is not enabled on this cluster. SQLSTATE: 56038", "56038")


class QueryError(Exception):
    """The statement cannot be analysed: it fails with BAD_REQUEST and this message."""

    def __init__(self, message: str, sql_state: str = "42601") -> None:
        super().__init__(message)
        self.message = message
        self.sql_state = sql_state


@dataclass(frozen=True)
class BillingQuery:
    """A parsed query: which table, which columns (name, as_json), which filters."""

    table: str
    columns: tuple[tuple[str, bool], ...]
    workspaces: frozenset[str] | None
    since: date | None


def parse_query(sql: str) -> BillingQuery:
    m = _SELECT_RE.match(sql)
    if m is None:
        raise QueryError(
            "[PARSE_SYNTAX_ERROR] the simulated warehouse answers only SELECTs of "
            "system.billing.usage and system.billing.list_prices shaped as jobruns sends them"
        )
    table = m.group("table").lower()
    known = _TABLE_COLUMNS[table]
    columns: list[tuple[str, bool]] = []
    for item in (part.strip() for part in m.group("cols").split(",")):
        j = _TO_JSON_RE.match(item)
        name, as_json = (j.group(1).lower(), True) if j else (item.lower(), False)
        if j and j.group(1).lower() != j.group(2).lower():
            raise QueryError(f"[PARSE_SYNTAX_ERROR] alias of {item!r} must be its column name")
        if name not in known:
            raise QueryError(
                f"[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column with name `{name}` cannot be "
                f"resolved. SQLSTATE: 42703",
                "42703",
            )
        if (name in _JSON_COLUMNS) != as_json:
            raise QueryError(
                f"[PARSE_SYNTAX_ERROR] the simulated warehouse serves {name} "
                + ("only as to_json(...)" if name in _JSON_COLUMNS else "as itself")
            )
        columns.append((name, as_json))
    where = m.group("where") or ""
    ws = _WORKSPACES_RE.search(where)
    since = _SINCE_RE.search(where)
    workspaces = None
    if ws is not None:
        workspaces = frozenset(v.strip().strip("'") for v in ws.group(1).split(",") if v.strip())
    rest = _SINCE_RE.sub("", _WORKSPACES_RE.sub("", where))
    if re.sub(r"\bAND\b", "", rest, flags=re.IGNORECASE).strip():
        raise QueryError(f"[PARSE_SYNTAX_ERROR] unsupported filter {where!r}")
    return BillingQuery(
        table,
        tuple(columns),
        workspaces,
        date.fromisoformat(since.group(1)) if since else None,
    )


def _arrow_type(name: str) -> tuple[pa.DataType, dict[str, Any]]:
    """The Arrow type of a served column and its manifest entry (ColumnInfo)."""
    if name in _TIMESTAMPS:
        return pa.timestamp("us", tz="UTC"), {"type_name": "TIMESTAMP", "type_text": "TIMESTAMP"}
    if name in _DATES:
        return pa.date32(), {"type_name": "DATE", "type_text": "DATE"}
    if name == "usage_quantity":
        return pa.decimal128(38, 18), {
            "type_name": "DECIMAL",
            "type_text": "DECIMAL(38,18)",
            "type_precision": 38,
            "type_scale": 18,
        }
    return pa.string(), {"type_name": "STRING", "type_text": "STRING"}


def _value(name: str, text: str | None) -> Any:
    if text is None or text == "":
        return None
    if name in _TIMESTAMPS:
        return datetime.fromisoformat(text).astimezone(UTC)
    if name in _DATES:
        return date.fromisoformat(text)
    if name == "usage_quantity":
        return Decimal(text).quantize(Decimal(1).scaleb(-18))
    return text


@dataclass
class Statement:
    statement_id: str
    query: BillingQuery | None
    format: str
    disposition: str
    pending_polls: int
    state: str = "PENDING"
    failure: tuple[str, str] | None = None  # (message, sql_state)
    chunks: list[pa.Table] = field(default_factory=list)
    blobs: dict[int, bytes] = field(default_factory=dict)
    columns: list[dict[str, Any]] = field(default_factory=list)


class Warehouse:
    """The SQL warehouse of the simulated workspace and the statements it ran."""

    def __init__(
        self,
        warehouse_id: str,
        url: Callable[[], str],
        rows: Callable[[str], list[dict[str, str]]],
        *,
        chunk_rows: int = 2000,
        seed: int = 0,
    ) -> None:
        self.warehouse_id = warehouse_id
        self.chunk_rows = chunk_rows
        self._url = url
        self._rows = rows
        self._key = hashlib.sha256(f"storage{seed}".encode()).digest()
        self._statements: dict[str, Statement] = {}
        self._lock = threading.Lock()
        self._seq = 0
        self.running = True
        self.start_polls = 0
        self.no_grant = False
        self.no_uc = False

    def configure(self, *, start_polls: int, no_grant: bool, no_uc: bool) -> None:
        """A new positive `start_polls` stops the warehouse: the next statement waits that
        many polls in PENDING while it starts, then it stays running (other changes of the
        faults leave it as it is)."""
        with self._lock:
            if start_polls != self.start_polls:
                self.running = start_polls <= 0
            self.start_polls = start_polls
            self.no_grant, self.no_uc = no_grant, no_uc

    # ------------------------------------------------------------------ API
    def call(self, path: str, request: Mapping[str, Any]) -> dict[str, Any]:
        rest = path[len(STATEMENTS_PATH) :].strip("/")
        parts = rest.split("/") if rest else []
        if not parts:
            return self.execute(request)
        with self._lock:
            stmt = self._statements.get(parts[0])
        if stmt is None:
            raise ApiError(404, "NOT_FOUND", f"Statement {parts[0]} not found.")
        if len(parts) == 1:
            return self._poll(stmt)
        if parts[1:] == ["cancel"]:
            with self._lock:
                if stmt.state in ("PENDING", "RUNNING"):
                    stmt.state = "CANCELED"
            return {}
        if len(parts) == 4 and parts[1:3] == ["result", "chunks"] and parts[3].isdigit():
            return self._chunk(stmt, int(parts[3]))
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{path}'")

    def execute(self, body: Mapping[str, Any]) -> dict[str, Any]:
        statement = body.get("statement")
        warehouse_id = body.get("warehouse_id")
        if not isinstance(statement, str) or not statement.strip():
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "statement is required")
        if not warehouse_id:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "warehouse_id is required")
        if warehouse_id != self.warehouse_id:
            # The status and code for an unknown warehouse are our assumption.
            raise ApiError(
                404, "RESOURCE_DOES_NOT_EXIST", f"SQL warehouse {warehouse_id} does not exist."
            )
        fmt = str(body.get("format") or "JSON_ARRAY")
        disposition = str(body.get("disposition") or "INLINE")
        if fmt not in ("JSON_ARRAY", "ARROW_STREAM", "CSV"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid format {fmt}")
        if fmt != "JSON_ARRAY" and disposition != "EXTERNAL_LINKS":
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"{fmt} format is only supported with EXTERNAL_LINKS disposition",
            )
        wait = _WAIT_RE.match(str(body.get("wait_timeout") or "10s"))
        seconds = int(wait.group(1)) if wait else -1
        if seconds != 0 and not 5 <= seconds <= 50:
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                "wait_timeout must be 0s or between 5s and 50s",
            )
        with self._lock:
            self._seq += 1
            sid = str(uuid.UUID(bytes=hashlib.sha256(f"{self._seq}".encode()).digest()[:16]))
            pending = 0 if self.running else max(self.start_polls, 1)
            self.running = True  # it starts now; later statements find it running
            stmt = Statement(sid, None, fmt, disposition, pending)
            self._statements[sid] = stmt
        try:
            stmt.query = parse_query(statement)
        except QueryError as exc:
            stmt.failure = (exc.message, exc.sql_state)
        if stmt.pending_polls == 0 and seconds > 0:
            self._finish(stmt)  # the call waited and the statement finished within it
        elif stmt.pending_polls == 0:
            stmt.state = "RUNNING"
        return self._response(stmt)

    def _poll(self, stmt: Statement) -> dict[str, Any]:
        with self._lock:
            if stmt.state == "PENDING":
                stmt.pending_polls -= 1
                if stmt.pending_polls <= 0:
                    stmt.state = "RUNNING"
                return self._response(stmt)
        if stmt.state == "RUNNING":
            self._finish(stmt)
        return self._response(stmt)

    def _finish(self, stmt: Statement) -> None:
        if stmt.failure is None and self.no_uc:
            stmt.failure = NO_UC
        elif stmt.failure is None and self.no_grant:
            stmt.failure = NO_GRANT
        if stmt.failure is not None:
            stmt.state = "FAILED"
            return
        assert stmt.query is not None
        query = stmt.query
        rows = self._rows(query.table)
        if query.workspaces is not None:
            rows = [r for r in rows if r["workspace_id"] in query.workspaces]
        if query.since is not None:
            since = query.since.isoformat()
            rows = [r for r in rows if r["usage_date"] >= since]
        names = [n for n, _ in query.columns]
        fields, infos = [], []
        for position, name in enumerate(names):
            arrow_type, info = _arrow_type(name)
            fields.append(pa.field(name, arrow_type))
            infos.append({"name": name, "position": position, **info})
        schema = pa.schema(fields)
        step = max(1, self.chunk_rows)
        for start in range(0, len(rows), step):
            part = rows[start : start + step]
            arrays = {n: [_value(n, r.get(n)) for r in part] for n in names}
            stmt.chunks.append(pa.Table.from_pydict(arrays, schema=schema))
        stmt.columns = infos
        if stmt.format == "ARROW_STREAM":
            for i, table in enumerate(stmt.chunks):
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, schema) as writer:
                    writer.write_table(table)
                stmt.blobs[i] = sink.getvalue().to_pybytes()
        stmt.state = "SUCCEEDED"

    # ------------------------------------------------------------------ responses
    def _response(self, stmt: Statement) -> dict[str, Any]:
        out: dict[str, Any] = {"statement_id": stmt.statement_id, "status": {"state": stmt.state}}
        if stmt.state == "FAILED" and stmt.failure is not None:
            message, sql_state = stmt.failure
            out["status"]["error"] = {"error_code": "BAD_REQUEST", "message": message}
            out["status"]["sql_state"] = sql_state
        if stmt.state != "SUCCEEDED":
            return out
        offsets = self._offsets(stmt)
        chunks = []
        for i, table in enumerate(stmt.chunks):
            info = {"chunk_index": i, "row_offset": offsets[i], "row_count": table.num_rows}
            if stmt.disposition == "EXTERNAL_LINKS":
                info["byte_count"] = len(stmt.blobs.get(i, b""))
            chunks.append(info)
        manifest: dict[str, Any] = {
            "format": stmt.format,
            "schema": {"column_count": len(stmt.columns), "columns": stmt.columns},
            "total_chunk_count": len(stmt.chunks),
            "chunks": chunks,
            "total_row_count": sum(t.num_rows for t in stmt.chunks),
            "truncated": False,
        }
        if stmt.disposition == "EXTERNAL_LINKS":
            manifest["total_byte_count"] = sum(len(b) for b in stmt.blobs.values())
        out["manifest"] = manifest
        out["result"] = self._chunk(stmt, 0) if stmt.chunks else {}
        return out

    @staticmethod
    def _offsets(stmt: Statement) -> list[int]:
        offsets, total = [], 0
        for table in stmt.chunks:
            offsets.append(total)
            total += table.num_rows
        return offsets

    def _chunk(self, stmt: Statement, index: int) -> dict[str, Any]:
        if stmt.state != "SUCCEEDED":
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"Statement {stmt.statement_id} is in state {stmt.state}: no result to fetch.",
            )
        if not 0 <= index < len(stmt.chunks):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Chunk index {index} is out of range.")
        table = stmt.chunks[index]
        info: dict[str, Any] = {
            "chunk_index": index,
            "row_offset": self._offsets(stmt)[index],
            "row_count": table.num_rows,
        }
        if index + 1 < len(stmt.chunks):
            info["next_chunk_index"] = index + 1
            info["next_chunk_internal_link"] = (
                f"{STATEMENTS_PATH}/{stmt.statement_id}/result/chunks/{index + 1}"
            )
        if stmt.disposition != "EXTERNAL_LINKS":
            info["data_array"] = [[_text(v) for v in row.values()] for row in table.to_pylist()]
            return info
        expires = int(time.time()) + LINK_TTL_S
        name = f"{stmt.statement_id}/{index}"
        signature = self._sign(name, expires)
        link = dict(info)
        link["byte_count"] = len(stmt.blobs[index])
        link["external_link"] = (
            f"{self._url()}{STORAGE_PATH}{name}?X-Amz-Expires={LINK_TTL_S}"
            f"&X-Amz-Date={expires}&X-Amz-Signature={signature}"
        )
        link["expiration"] = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {"external_links": [link]}

    def _sign(self, name: str, expires: int) -> str:
        return hmac.new(self._key, f"{name}/{expires}".encode(), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------------ cloud storage
    def download(
        self, name: str, params: Mapping[str, str], authorization: str | None
    ) -> tuple[int, bytes, str]:
        """GET of a presigned link: (status, body, content type), answered as S3 would."""
        if authorization:
            return _s3_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be specified",
            )
        try:
            expires = int(params.get("X-Amz-Date", ""))
        except ValueError:
            expires = -1
        signature = params.get("X-Amz-Signature", "")
        if not hmac.compare_digest(signature, self._sign(name, expires)):
            return _s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if time.time() > expires:
            return _s3_error(403, "AccessDenied", "Request has expired")
        sid, _, index = name.partition("/")
        with self._lock:
            stmt = self._statements.get(sid)
        blob = stmt.blobs.get(int(index)) if stmt is not None and index.isdigit() else None
        if blob is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return 200, blob, "application/vnd.apache.arrow.stream"


def _text(value: Any) -> str | None:
    """A JSON_ARRAY value: the string representation, or null."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _s3_error(status: int, code: str, message: str) -> tuple[int, bytes, str]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return status, body.encode(), "application/xml"
