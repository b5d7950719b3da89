"""`billing sync`: system.billing.usage and list_prices read through a SQL warehouse into the store.

Reads only the workspaces the store holds and only new usage: from the latest usage_date stored
minus an overlap (corrections arrive days later under the original date), rows replacing those
with the same record_id, so a repeated sync adds nothing. Loads through the same code as
`billing import`; the SQL it sends is built here, the HTTP lives in statements and client.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import duckdb

from extractor.analytics.cost import JSON_COLUMNS, load_system_tables
from extractor.client import JobsClient
from extractor.errors import UsageError
from extractor.statements import query_arrow

DEFAULT_SINCE = timedelta(days=30)
DEFAULT_OVERLAP = timedelta(days=7)

# The columns of the system tables, in their order.
_USAGE = (
    "record_id account_id workspace_id sku_name cloud usage_start_time usage_end_time usage_date"
    " custom_tags usage_unit usage_quantity usage_metadata identity_metadata record_type"
    " ingestion_date billing_origin_product product_features usage_type"
)
_PRICES = (
    "price_start_time price_end_time account_id sku_name cloud currency_code usage_unit pricing"
)
USAGE_COLUMNS = tuple(_USAGE.split())
PRICE_COLUMNS = tuple(_PRICES.split())
# Struct and map columns are asked for as JSON text (cost.JSON_COLUMNS), the form the loader
# reads from CSV exports: Arrow results of complex types differ between warehouses and connectors.


@dataclass(frozen=True)
class SyncResult:
    workspaces: tuple[str, ...]
    since: date
    usage_read: int
    usage_new: int
    prices_read: int
    seconds: float


def _select(columns: tuple[str, ...], table: str) -> str:
    listed = ", ".join(f"to_json({c}) AS {c}" if c in JSON_COLUMNS else c for c in columns)
    return f"SELECT {listed} FROM system.billing.{table}"


def usage_query(workspaces: tuple[str, ...], since: date) -> str:
    ids = ", ".join(f"'{w}'" for w in workspaces)
    return (
        f"{_select(USAGE_COLUMNS, 'usage')} WHERE workspace_id IN ({ids})"
        f" AND usage_date >= DATE '{since.isoformat()}'"
    )


def prices_query() -> str:
    return _select(PRICE_COLUMNS, "list_prices")


def store_workspaces(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """The numeric ids of the workspaces extracted into the store (a host-keyed one, whose id
    was never seen, cannot be matched to billing)."""
    rows = con.execute("SELECT DISTINCT workspace_id FROM extract_state ORDER BY 1").fetchall()
    ids = tuple(str(r[0]) for r in rows if str(r[0]).isdigit())
    if not ids:
        raise UsageError(
            "the store holds no extracted workspace to sync billing for; run `jobruns extract` "
            "first (billing sync reads only the workspaces of the store)"
        )
    return ids


def sync_start(
    con: duckdb.DuckDBPyConnection,
    workspaces: tuple[str, ...],
    today: date,
    *,
    overlap: timedelta = DEFAULT_OVERLAP,
    default_since: timedelta = DEFAULT_SINCE,
) -> date:
    """The first usage_date to read: the latest stored minus the overlap, for the workspace
    that is furthest behind; a workspace without billing rows starts `default_since` ago."""
    marks = ", ".join("?" for _ in workspaces)
    latest = dict(
        con.execute(
            f"SELECT workspace_id, max(usage_date) FROM billing_usage WHERE workspace_id IN "
            f"({marks}) GROUP BY workspace_id",
            list(workspaces),
        ).fetchall()
    )
    first = today - default_since
    starts = [latest[w] - overlap if latest.get(w) else first for w in workspaces]
    return max(min(starts), date(1970, 1, 1))


def sync_billing(
    client: JobsClient,
    store: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
    warehouse_id: str,
    *,
    since: date | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
    wait_s: float = 900.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> SyncResult:
    """Read new billing of the store's workspaces through `warehouse_id` and store it.

    `store()` opens the store for a moment, twice: to plan the queries and to load their
    results. It is not held while the warehouse starts and answers (minutes, maybe), so an
    extract is not kept waiting for its writer lock meanwhile."""
    started = monotonic()
    with store() as con:
        workspaces = store_workspaces(con)
        start = since or sync_start(con, workspaces, now().date(), overlap=overlap)
    usage, prices = (
        query_arrow(
            client, warehouse_id, sql, what=what, wait_s=wait_s, sleep=sleep, monotonic=monotonic
        )
        for sql, what in (
            (usage_query(workspaces, start), "system.billing.usage"),
            (prices_query(), "system.billing.list_prices"),
        )
    )
    with store() as con:
        before = int(con.execute("SELECT count(*) FROM billing_usage").fetchall()[0][0])
        read, priced = load_system_tables(
            con, usage, prices, origin=f"warehouse {warehouse_id} on {client.host}"
        )
        after = int(con.execute("SELECT count(*) FROM billing_usage").fetchall()[0][0])
    return SyncResult(
        workspaces=workspaces,
        since=start,
        usage_read=read,
        usage_new=after - before,
        prices_read=priced,
        seconds=monotonic() - started,
    )
