"""The `jobruns` command: parses options, calls the library, prints results.

No business logic lives here. Exit codes: 0 ok, 1 runtime failure, 2 usage error,
130 interrupted. Tracebacks only with --debug; tokens are never printed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from extractor import __version__
from extractor.errors import Interrupted, JobrunsError, UsageError

log = logging.getLogger("jobruns")
F = TypeVar("F", bound=Callable[..., Any])

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def _now() -> datetime:
    return datetime.now(UTC)


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db",
        metavar="PATH",
        help="DuckDB store (default: $JOBRUNS_DB, else ./jobruns.duckdb).",
    )(func)


def _db_path(db: str | None) -> Path:
    from extractor.config import resolve_db_path

    return resolve_db_path(db)


def _duration(value: str | None, option: str) -> timedelta | None:
    if value is None:
        return None
    from extractor.config import parse_duration

    try:
        return parse_duration(value)
    except UsageError as exc:
        raise UsageError(f"{option}: {exc}") from exc


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


# -- extract -------------------------------------------------------------------------------


@cli.command()
@click.option("--host", help="Workspace URL (else DATABRICKS_HOST or the profile's host).")
@click.option("--token", help="Personal access token (else DATABRICKS_TOKEN or the profile).")
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    help="Profile of ~/.databrickscfg (or DATABRICKS_CONFIG_FILE); repeat for several workspaces.",
)
@click.option(
    "--all-profiles", is_flag=True, help="Every profile of the config file that has a host."
)
@db_option
@click.option("--since", metavar="DATE|DURATION", help="Start of the window: 2025-05-01, 14d, 6h.")
@click.option("--until", metavar="DATE|DURATION", help="End of the window (default: now).")
@click.option("--rescan", is_flag=True, help="Re-read the whole 60-day retention now.")
@click.option("--full-refresh", is_flag=True, help="Re-fetch every run in the retention.")
@click.option(
    "--repair-window", default="7d", show_default=True, help="How far back repairs are looked for."
)
@click.option(
    "--repair-every",
    default="1h",
    show_default=True,
    help="How often the repair window is re-read.",
)
@click.option(
    "--rescan-every",
    default="24h",
    show_default=True,
    help="How often the whole retention is re-read.",
)
@click.option(
    "--overlap", default="1h", show_default=True, help="Re-read this much before the watermark."
)
@click.option(
    "--max-rps", type=float, default=28.0, show_default=True, help="Client-side request rate limit."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 32),
    default=10,
    show_default=True,
    help="Requests in flight.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
def extract(
    host: str | None,
    token: str | None,
    profiles: tuple[str, ...],
    all_profiles: bool,
    db: str | None,
    since: str | None,
    until: str | None,
    rescan: bool,
    full_refresh: bool,
    repair_window: str,
    repair_every: str,
    rescan_every: str,
    overlap: str,
    max_rps: float,
    concurrency: int,
    quiet: bool,
) -> None:
    """Extract new and changed job runs into the store.

    \b
    First run: the whole API retention (60 days). Then, each run reads from the watermark
    (minus --overlap), refreshes runs that were active, re-reads the last --repair-window
    for repairs every --repair-every, and the whole retention every --rescan-every.
    """
    from extractor.config import list_profiles, parse_since, resolve_workspace

    now = _now()
    options = _extract_options(
        since=parse_since(since, now) if since else None,
        until=parse_since(until, now, option="--until") if until else None,
        rescan=rescan,
        full_refresh=full_refresh,
        repair_window=repair_window,
        repair_every=repair_every,
        rescan_every=rescan_every,
        overlap=overlap,
        concurrency=concurrency,
    )
    if all_profiles or len(profiles) > 1:
        if host or token:
            raise UsageError("--host/--token name one workspace; drop them with several profiles")
        names = list_profiles() if all_profiles else list(profiles)
        if not names:
            raise UsageError("no profile with a host in the config file (DATABRICKS_CONFIG_FILE)")
        # Each profile stands alone: DATABRICKS_* variables would otherwise apply to all of them.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DATABRICKS_") or k == "DATABRICKS_CONFIG_FILE"
        }
        workspaces = [(name, resolve_workspace(profile=name, env=env)) for name in names]
    else:
        profile = profiles[0] if profiles else None
        config = resolve_workspace(host=host, token=token, profile=profile)
        workspaces = [(profile or config.host, config)]
    outcomes = run_extract(workspaces, _db_path(db), options, max_rps=max_rps, quiet=quiet)
    failed = [o for o in outcomes if o.error is not None]
    if len(outcomes) == 1 and failed:
        raise failed[0].error
    if failed:
        raise JobrunsError(
            f"{len(failed)} of {len(outcomes)} workspaces failed: "
            + "; ".join(f"{o.name} ({o.host}): {o.error}" for o in failed)
        )


def _extract_options(**values: Any) -> Any:
    from extractor.extract import ExtractOptions

    for name in ("repair_window", "repair_every", "rescan_every", "overlap"):
        values[name] = _duration(values[name], "--" + name.replace("_", "-"))
    if values["since"] and values["until"] and values["since"] >= values["until"]:
        raise UsageError("--since must be before --until")
    return ExtractOptions(**values)


def run_extract(
    workspaces: list[tuple[str, Any]], db: Path, options: Any, *, max_rps: float, quiet: bool
) -> list[Any]:
    """Extract workspaces into one store with progress bars on a terminal, then summarise."""
    from extractor.extract import release_memory_promptly
    from extractor.fleet import extract_fleet
    from extractor.lock import ExtractLock
    from extractor.progress import progress_board
    from extractor.store import Store
    from extractor.views import ensure_views, refresh_materialized

    release_memory_promptly()
    with ExtractLock(db), progress_board(enabled=not quiet) as board:
        outcomes = extract_fleet(workspaces, db, options, max_rps=max_rps, board=board)
        done = [o.result for o in outcomes if o.result is not None]
        if done:
            with Store(db).connect() as con:
                # New view definitions rebuild every derived table; else only changed runs.
                if not ensure_views(con):
                    changed = [(r.workspace_id, run) for r in done for run in r.changed_run_ids]
                    refresh_materialized(con, changed)
    if not quiet:
        for outcome in outcomes:
            if outcome.result is not None:
                _print_summary(outcome.result)
            elif len(outcomes) > 1:  # a single workspace's error is the command's error
                stderr.print(
                    f"[red]workspace {escape(outcome.name)} ({escape(outcome.host)}) failed:[/] "
                    f"{escape(str(outcome.error))}"
                )
    return outcomes


def _print_summary(result: Any) -> None:
    seconds = (result.finished_at - result.started_at).total_seconds()
    parts = [
        f"{result.runs_new} new",
        f"{result.runs_changed} changed",
        f"{result.runs_refreshed} refreshed",
        f"{result.runs_deleted} deleted",
    ]
    extra = []
    if result.rescan:
        extra.append("full rescan")
    elif result.repair_sweep:
        extra.append("repair sweep")
    stderr.print(
        f"extracted workspace {result.workspace_id}: {', '.join(parts)} runs; "
        f"{result.jobs_seen} jobs; {result.pages} pages, {result.requests} requests in {seconds:.1f} s"
        + (f" ({', '.join(extra)})" if extra else "")
    )
    if result.skipped_runs:
        stderr.print(
            f"[yellow]skipped {len(result.skipped_runs)} runs without permission:[/] "
            + ", ".join(str(r) for r in result.skipped_runs[:20])
            + (" ..." if len(result.skipped_runs) > 20 else "")
        )


# -- demo ------------------------------------------------------------------------------------


@cli.command()
@db_option
@click.option("--runs", type=click.IntRange(1, 1_000_000), default=2000, show_default=True)
@click.option("--jobs", type=click.IntRange(1, 10_000), default=25, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--quiet", "-q", is_flag=True)
def demo(db: str | None, runs: int, jobs: int, seed: int, quiet: bool) -> None:
    """Extract a simulated workspace into a store, with nothing to configure.

    Starts the built-in simulated Databricks workspace on 127.0.0.1 and runs the real
    extraction against it over HTTP.
    """
    from extractor.demo import run_demo

    path = Path(db) if db else Path(os.environ.get("JOBRUNS_DB") or "jobruns-demo.duckdb")
    run_demo(path, runs=runs, jobs=jobs, seed=seed, quiet=quiet)


# -- status ----------------------------------------------------------------------------------


@cli.command()
@db_option
@click.option("--check", is_flag=True, help="Exit 1 when the last successful extract is too old.")
@click.option("--max-age", default="2h", show_default=True, help="Age allowed by --check.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def status(db: str | None, check: bool, max_age: str, fmt: str) -> None:
    """Rows per table, watermarks, last extract and rescan, active runs."""
    from extractor.status import read_status, render_status

    path = _db_path(db)
    if not path.exists():
        raise UsageError(f"no store at {path}; run `jobruns extract` (or `jobruns demo`) first")
    info = read_status(path)
    render_status(info, fmt, click.echo)
    if check:
        limit = _duration(max_age, "--max-age")
        assert limit is not None
        last = info.last_success_at
        if last is None or _now() - last > limit:
            age = "never" if last is None else f"{(_now() - last).total_seconds() / 3600:.1f} h ago"
            raise JobrunsError(f"last successful extract: {age} (allowed: {max_age})")


# -- analytics ------------------------------------------------------------------------------


def _open_for_reading(db: str | None) -> Any:
    from extractor.views import connect

    path = _db_path(db)
    if not path.exists():
        raise UsageError(f"no store at {path}; run `jobruns extract` (or `jobruns demo`) first")
    # Commands hold the file for a moment only: read it directly (an extract waits for us)
    # rather than copying it as a notebook's long-lived connection does.
    return connect(path, read_only=True, snapshot=False)


@cli.command()
@db_option
def init(db: str | None) -> None:
    """Create (or migrate) the store and its views, without extracting anything."""
    from extractor.views import create_views

    with _writable_store(db) as store, store.connect() as con:
        create_views(con)
    click.echo(f"store ready: {store.path}")


@cli.command()
def views() -> None:
    """List the SQL views with what each answers."""
    from extractor.views import list_views

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
    from extractor.report import run_query

    if fmt == "parquet" and output is None:
        raise UsageError("--format parquet needs --output FILE")
    con = _open_for_reading(db)
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
    from extractor.report import build_report, render_json, render_markdown, render_text

    con = _open_for_reading(db)
    try:
        if html is not None:
            from extractor.html_report import write_html_report

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


@cli.group()
def rates() -> None:
    """The rate card: DBU per hour of node types and prices per DBU."""


@rates.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
def rates_import(file: Path, db: str | None) -> None:
    """Load negotiated prices or node DBU rates from a CSV (kind,cloud,name,value,...)."""
    from extractor.cost import import_rates

    with _writable_store(db) as store, store.transaction() as con:
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
    from extractor.cost import import_billing, import_list_prices

    with _writable_store(db) as store, store.transaction() as con:
        count = (import_list_prices if prices else import_billing)(con, file)
    what = "price rows" if prices else "usage rows"
    click.echo(f"imported {count} {what} into {store.path}")


@contextlib.contextmanager
def _writable_store(db: str | None) -> Iterator[Any]:
    """The store, initialised, with the writer lock held: imports never race an extract."""
    from extractor.lock import ExtractLock
    from extractor.store import Store

    store = Store(_db_path(db))
    with ExtractLock(store.path):
        store.initialize()
        yield store


@cli.command()
@click.option("--runs", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--latency-ms", type=click.IntRange(0), default=300, show_default=True)
@click.option("--jitter-ms", type=click.IntRange(0), default=50, show_default=True)
@click.option("--rps", type=float, default=30.0, show_default=True, help="Simulator rate limit.")
@click.option("--max-rps", type=float, default=28.0, show_default=True, help="jobruns' own limit.")
@click.option("--concurrency", type=click.IntRange(1, 32), default=10, show_default=True)
@click.option("--sdk-runs", type=click.IntRange(1), help="Run the SDK loop on the newest N runs.")
@click.option("--new-runs", type=click.IntRange(1), default=500, show_default=True)
@click.option("--load-runs", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--memory-runs", default="50000,200000", show_default=True)
@click.option("--view-runs", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option("--tiny", is_flag=True, help="Every section at a tiny size, in seconds (CI).")
@click.option(
    "--skip", default="", help="Sections to skip: cold,sdk,incremental,load,memory,views."
)
@click.option("--only", default="", help="Only these sections (same names as --skip).")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the table here (Markdown).",
)
def bench(
    runs: int,
    latency_ms: int,
    jitter_ms: int,
    rps: float,
    max_rps: float,
    concurrency: int,
    sdk_runs: int | None,
    new_runs: int,
    load_runs: int,
    memory_runs: str,
    view_runs: int,
    tiny: bool,
    skip: str,
    only: str,
    output: Path | None,
) -> None:
    """Measure extraction, load, memory and view speed against the simulator; print one table."""
    from extractor.bench import bench_config, run_bench

    cfg = bench_config(
        runs=runs,
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        rps=rps,
        max_rps=max_rps,
        concurrency=concurrency,
        sdk_runs=sdk_runs,
        new_runs=new_runs,
        load_runs=load_runs,
        memory_runs=memory_runs,
        view_runs=view_runs,
        tiny=tiny,
        skip=skip,
        only=only,
    )
    text = run_bench(cfg).markdown()
    click.echo(text)
    if output is not None:
        output.write_text(text, encoding="utf-8")


@cli.command("export")
@click.argument("path")
@click.option(
    "--format", "fmt", type=click.Choice(["delta", "parquet"]), default="delta", show_default=True
)
@click.option("--since", metavar="DATE|DURATION", help="Only runs started since: 2025-05-01, 90d.")
@db_option
@click.option(
    "--batch-rows", type=click.IntRange(100, 1_000_000), default=10_000, show_default=True
)
@click.option(
    "--sql-dialect",
    type=click.Choice(["databricks", "spark"]),
    help="Also write the views as CREATE OR REPLACE VIEW statements in this dialect.",
)
@click.option(
    "--sql-file", type=click.Path(dir_okay=False, path_type=Path), help="Where (- for stdout)."
)
@click.option("--table-prefix", metavar="CATALOG.SCHEMA", help="Qualify tables and views.")
@click.option("--sql-only", is_flag=True, help="Write the SQL file, export no data.")
@click.option("--quiet", "-q", is_flag=True)
def export_command(
    path: str,
    fmt: str,
    since: str | None,
    db: str | None,
    batch_rows: int,
    sql_dialect: str | None,
    sql_file: Path | None,
    table_prefix: str | None,
    sql_only: bool,
    quiet: bool,
) -> None:
    """Export the store to PATH (a folder, s3://, abfss://, gs://) as Delta or Parquet tables."""
    from extractor.config import parse_since
    from extractor.export import export, normalize_destination
    from extractor.spark_sql import generate_sql

    if sql_only and sql_dialect is None:
        raise UsageError("--sql-only needs --sql-dialect databricks or spark")
    if not sql_only:
        start = parse_since(since, _now()) if since else None
        result = export(
            _db_path(db),
            path,
            fmt,  # type: ignore[arg-type]
            since=start,
            batch_rows=batch_rows,
            progress=None if quiet else lambda line: stderr.print(line, highlight=False),
        )
        if not quiet:
            stderr.print(
                f"exported {result.rows} rows in {result.partitions} partitions to"
                f" {result.destination} ({fmt}) in {result.duration_s:.1f} s",
                highlight=False,
            )
    if sql_dialect is not None:
        script = generate_sql(
            sql_dialect,  # type: ignore[arg-type]
            prefix=table_prefix,
            location=normalize_destination(path),
            fmt=fmt,  # type: ignore[arg-type]
        )
        target = sql_file or Path("jobruns_views.sql")
        if str(target) == "-":
            click.echo(script, nl=False)
        else:
            target.write_text(script, encoding="utf-8")
            if not quiet:
                stderr.print(f"wrote the {sql_dialect} views to {target}", highlight=False)


# -- entry point --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Console entry: run the group and turn errors into messages and exit codes."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    _stop_on_sigterm()
    try:
        cli.main(args=args, prog_name="jobruns", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, Interrupted, click.exceptions.Abort):
        if debug:
            traceback.print_exc()
        stderr.print("interrupted: what was committed is kept; run again to continue")
        _exit_now(Interrupted.exit_code)
    except JobrunsError as exc:
        if debug:
            traceback.print_exc()
        stderr.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        stderr.print(
            f"[red]internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}\n"
            "run again with --debug for the traceback, and please report it",
            soft_wrap=True,
        )
        sys.exit(1)
    sys.exit(0)


def _stop_on_sigterm() -> None:
    """SIGTERM (systemd, docker stop, timeout) stops like Ctrl-C: committed work is kept."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def _exit_now(code: int) -> None:
    """Exit without waiting for worker threads still inside an HTTP call or a backoff sleep.

    Python joins pool threads at exit; after an interrupt that could take a request timeout.
    Everything worth keeping is committed already, so flush the streams and leave at once.
    """
    busy = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and t.is_alive() and not t.daemon
    ]
    if not busy:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
