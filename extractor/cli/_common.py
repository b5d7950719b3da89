"""What every command shares: the group, the --db option, durations, opening the store.

Nothing here knows a command; the command modules register themselves on `cli`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from extractor._version import __version__
from extractor.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def now() -> datetime:
    return datetime.now(UTC)


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db",
        metavar="PATH",
        help="DuckDB store (default: $JOBRUNS_DB, else ./jobruns.duckdb).",
    )(func)


def host_token_options(func: F) -> F:
    """--host and --token, as every command that signs in to one workspace takes them."""
    func = click.option(
        "--token", help="Personal access token (else DATABRICKS_TOKEN or the profile)."
    )(func)
    return click.option(
        "--host", help="Workspace URL (else DATABRICKS_HOST or the profile's host)."
    )(func)


def workspace_options(func: F) -> F:
    """--host, --token and --profile: the one workspace a command signs in to."""
    func = click.option(
        "--profile", help="Profile of ~/.databrickscfg (or DATABRICKS_CONFIG_FILE)."
    )(func)
    return host_token_options(func)


def db_path(db: str | None) -> Path:
    from extractor.config import resolve_db_path

    return resolve_db_path(db)


def duration(value: str | None, option: str) -> timedelta | None:
    if value is None:
        return None
    from extractor.config import parse_duration

    try:
        return parse_duration(value)
    except UsageError as exc:
        raise UsageError(f"{option}: {exc}") from exc


def auth_type_option(func: F) -> F:
    from extractor.config import AUTH_TYPES

    return click.option(
        "--auth-type",
        type=click.Choice(AUTH_TYPES),
        help="Force one sign-in method (else the first whose settings are present; "
        "$DATABRICKS_AUTH_TYPE or the profile's auth_type also set it).",
    )(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="jobruns")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("-v", "--verbose", is_flag=True, help="Show informational logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """Know what your Databricks jobs cost and how reliable they are.

    jobruns extracts job runs from the Jobs API 2.2 into a local DuckDB file, incrementally,
    and answers cost and reliability questions with SQL views.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )


def open_for_reading(db: str | None) -> Any:
    from extractor.analytics.connect import connect

    path = db_path(db)
    if not path.exists():
        raise UsageError(f"no store at {path}; run `jobruns extract` (or `jobruns demo`) first")
    # Commands hold the file for a moment only: read it directly (an extract waits for us)
    # rather than copying it as a notebook's long-lived connection does.
    return connect(path, read_only=True, snapshot=False)


@contextlib.contextmanager
def writable_store(db: str | None) -> Iterator[Any]:
    """The store, initialised, with the writer lock held: imports never race an extract."""
    from extractor.lock import ExtractLock
    from extractor.store import Store

    store = Store(db_path(db))
    with ExtractLock(store.path):
        store.initialize()
        yield store
