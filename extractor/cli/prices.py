"""`jobruns rates` and `jobruns billing`: the prices and billed usage the cost views use."""

from __future__ import annotations

from pathlib import Path

import click

from extractor.cli._common import cli, db_option, writable_store


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
    """Billed usage exported from system.billing (preferred over estimates)."""


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
