"""Commands that read the store: status, init, views, query, report."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from extractor.cli._common import (
    cli,
    db_option,
    db_path,
    duration,
    now,
    open_for_reading,
    writable_store,
)
from extractor.errors import JobrunsError, UsageError


@cli.command()
@db_option
@click.option("--check", is_flag=True, help="Exit 1 when the last successful extract is too old.")
@click.option("--max-age", default="2h", show_default=True, help="Age allowed by --check.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def status(db: str | None, check: bool, max_age: str, fmt: str) -> None:
    """Rows per table, watermarks, last extract and rescan, active runs."""
    from extractor.analytics.status import read_status, render_status

    path = db_path(db)
    if not path.exists():
        raise UsageError(f"no store at {path}; run `jobruns extract` (or `jobruns demo`) first")
    info = read_status(path)
    render_status(info, fmt, click.echo)
    if check:
        limit = duration(max_age, "--max-age")
        assert limit is not None
        last = info.last_success_at
        if last is None or now() - last > limit:
            age = "never" if last is None else f"{(now() - last).total_seconds() / 3600:.1f} h ago"
            raise JobrunsError(f"last successful extract: {age} (allowed: {max_age})")


@cli.command()
@db_option
def init(db: str | None) -> None:
    """Create (or migrate) the store and its views, without extracting anything."""
    from extractor.analytics.views import create_views

    with writable_store(db) as store, store.connect() as con:
        create_views(con)
    click.echo(f"store ready: {store.path}")


@cli.command()
def views() -> None:
    """List the SQL views with what each answers."""
    from extractor.analytics.sqlfiles import list_views

    names = list_views()
    width = max(len(n) for n, _ in names)
    for name, description in names:
        click.echo(f"{name.ljust(width)}  {description}")


@cli.command()
@click.argument("sql")
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
def query(sql: str, db: str | None, fmt: str, output: Path | None) -> None:
    """Run one read-only SQL statement against the store (views included).

    \b
    jobruns query "SELECT * FROM job_reliability ORDER BY success_rate LIMIT 10"
    jobruns query "SELECT * FROM run_cost" --format parquet -o run_cost.parquet
    """
    from extractor.analytics.report import run_query

    if fmt == "parquet" and output is None:
        raise UsageError("--format parquet needs --output FILE")
    con = open_for_reading(db)
    try:
        run_query(con, sql, fmt, output, console=Console())  # type: ignore[arg-type]
    finally:
        con.close()


@cli.command()
@db_option
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True)
@click.option("--job", "job_id", type=int, help="Only this job.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
)
@click.option(
    "--html",
    "html",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Write the report with its charts as one self-contained HTML page instead of printing it.",
)
def report(db: str | None, days: int, job_id: int | None, fmt: str, html: Path | None) -> None:
    """The Monday report: spend, movers, reliability, waste, flaky tasks, stuck runs."""
    from extractor.analytics.report import build_report, render_json, render_markdown, render_text

    con = open_for_reading(db)
    try:
        if html is not None:
            from extractor.analytics.html_report import write_html_report

            write_html_report(con, html, days=days, job_id=job_id)
            click.echo(str(html), err=True)
            return
        data = build_report(con, days=days, job_id=job_id)
    finally:
        con.close()
    if fmt == "json":
        click.echo(render_json(data))
    elif fmt == "markdown":
        click.echo(render_markdown(data))
    else:
        render_text(data, Console())
