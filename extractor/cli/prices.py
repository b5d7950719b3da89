"""`jobruns rates` and `jobruns billing`: the prices and billed usage the cost views use."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from extractor.cli._common import (
    auth_type_option,
    cli,
    db_option,
    db_path,
    duration,
    now,
    workspace_options,
    writable_store,
)


@cli.group()
def rates() -> None:
    """The rate card: DBU per hour of node types and prices per DBU."""


@rates.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
def rates_import(file: Path, db: str | None) -> None:
    """Load negotiated prices or node DBU rates from a CSV (kind,cloud,name,value,...)."""
    from extractor.analytics.cost import import_rates

    with writable_store(db) as store, store.connect() as con:
        count = import_rates(con, file)
    click.echo(f"imported {count} rates into {store.path}")


@cli.group()
def billing() -> None:
    """Billed usage from system.billing, exported or synced (preferred over estimates)."""


@billing.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--prices",
    "prices",
    is_flag=True,
    help="FILE is an export of system.billing.list_prices, not of system.billing.usage.",
)
@db_option
def billing_import(file: Path, prices: bool, db: str | None) -> None:
    """Load an export of system.billing.usage (or list_prices), CSV or Parquet."""
    from extractor.analytics.cost import import_billing, import_list_prices

    with writable_store(db) as store, store.connect() as con:
        count = (import_list_prices if prices else import_billing)(con, file)
    what = "price rows" if prices else "usage rows"
    click.echo(f"imported {count} {what} into {store.path}")


@billing.command("sync")
@click.option(
    "--warehouse-id",
    required=True,
    metavar="ID",
    help="SQL warehouse that runs the queries (a stopped one is started).",
)
@click.option(
    "--since",
    metavar="DATE|DURATION",
    help="Read usage from this date (default: the latest stored minus --overlap; 30d at first).",
)
@click.option(
    "--overlap",
    default="7d",
    show_default=True,
    help="Re-read this much before the latest usage_date stored (late corrections).",
)
@click.option(
    "--wait",
    default="15m",
    show_default=True,
    help="How long a query may wait for the warehouse to start and answer.",
)
@workspace_options
@auth_type_option
@db_option
def billing_sync(
    warehouse_id: str,
    since: str | None,
    overlap: str,
    wait: str,
    host: str | None,
    token: str | None,
    profile: str | None,
    auth_type: str | None,
    db: str | None,
) -> None:
    """Read system.billing.usage and list_prices through a SQL warehouse (no export files).

    \b
    Only the workspaces of the store, only usage from the latest usage_date stored minus
    --overlap; rows replace those with the same record_id. The principal needs CAN USE on the
    warehouse and, in Unity Catalog, USE CATALOG on system, USE SCHEMA on system.billing and
    SELECT on system.billing.usage and system.billing.list_prices.
    """
    from extractor.config import resolve_workspace

    config = resolve_workspace(host=host, token=token, profile=profile, auth_type=auth_type)
    run_billing_sync(config, db, warehouse_id, since=since, overlap=overlap, wait=wait)


def run_billing_sync(
    config: Any,
    db: str | None,
    warehouse_id: str,
    *,
    since: str | None = None,
    overlap: str = "7d",
    wait: str = "15m",
    quiet: bool = False,
) -> None:
    """Sync billing through the warehouse of the workspace `config` names; print a summary."""
    from extractor.billing_sync import sync_billing
    from extractor.client import JobsClient
    from extractor.config import parse_since

    start = parse_since(since, now()).date() if since else None
    overlap_td = duration(overlap, "--overlap")
    wait_td = duration(wait, "--wait")
    assert overlap_td is not None and wait_td is not None

    @contextlib.contextmanager
    def store() -> Iterator[Any]:
        with writable_store(db) as opened, opened.connect() as con:
            yield con

    with JobsClient(config) as client:
        result = sync_billing(
            client,
            store,
            warehouse_id,
            since=start,
            overlap=overlap_td,
            wait_s=wait_td.total_seconds(),
        )
    if quiet:
        return
    click.echo(
        f"billing sync: {result.usage_read} usage rows since {result.since.isoformat()} "
        f"({result.usage_new} new) for {len(result.workspaces)} workspace"
        f"{'' if len(result.workspaces) == 1 else 's'}, {result.prices_read} price rows, "
        f"through warehouse {warehouse_id} in {result.seconds:.0f} s into {db_path(db)}"
    )
