"""`jobruns extract`: one workspace, several profiles, or every profile of the config file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from extractor.cli._common import (
    auth_type_option,
    cli,
    db_option,
    db_path,
    duration,
    host_token_options,
    now,
    stderr,
)
from extractor.cli.alerts import alert_options, run_alerts
from extractor.errors import JobrunsError, UsageError


@cli.command()
@host_token_options
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    help="Profile of ~/.databrickscfg (or DATABRICKS_CONFIG_FILE); repeat for several workspaces.",
)
@click.option(
    "--all-profiles", is_flag=True, help="Every profile of the config file that has a host."
)
@auth_type_option
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
@click.option(
    "--no-errors",
    is_flag=True,
    help="Do not read the errors of failed task runs (runs/get-output).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@click.option("--alerts", "with_alerts", is_flag=True, help="Then run `jobruns alerts`.")
@click.option(
    "--billing-sync",
    "billing_warehouse",
    metavar="WAREHOUSE_ID",
    help="Then run `jobruns billing sync` through this SQL warehouse of the (first) workspace.",
)
@alert_options("--alert-since")
def extract(
    host: str | None,
    token: str | None,
    profiles: tuple[str, ...],
    all_profiles: bool,
    auth_type: str | None,
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
    no_errors: bool,
    quiet: bool,
    with_alerts: bool,
    rules_file: Path | None,
    webhooks: tuple[str, ...],
    webhook_format: str | None,
    alert_since: str | None,
    max_per_call: int | None,
    billing_warehouse: str | None,
) -> None:
    """Extract new and changed job runs into the store.

    \b
    First run: the whole API retention (60 days). Then, each run reads from the watermark
    (minus --overlap), refreshes runs that were active, re-reads the last --repair-window
    for repairs every --repair-every, and the whole retention every --rescan-every.

    With --alerts, `jobruns alerts` runs after it with the same --rules, --webhook,
    --webhook-format and --max-per-call (--alert-since for its --since), when at least one
    workspace was extracted.

    With --billing-sync WAREHOUSE_ID, `jobruns billing sync` runs after a successful extract,
    through that warehouse of the workspace extracted (of the first, with several profiles).
    """
    from extractor.config import list_profiles, parse_since, resolve_workspace

    started = now()
    if not with_alerts and (
        rules_file or webhooks or webhook_format or alert_since or max_per_call
    ):
        raise UsageError(
            "--rules, --webhook, --webhook-format, --alert-since and --max-per-call need --alerts"
        )
    if with_alerts and rules_file:
        from extractor.analytics.alerts import load_rules

        load_rules(rules_file)  # a bad rules file stops the command before it extracts
    options = _extract_options(
        since=parse_since(since, started) if since else None,
        until=parse_since(until, started, option="--until") if until else None,
        rescan=rescan,
        full_refresh=full_refresh,
        repair_window=repair_window,
        repair_every=repair_every,
        rescan_every=rescan_every,
        overlap=overlap,
        concurrency=concurrency,
        errors=not no_errors,
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
        workspaces = [
            (name, resolve_workspace(profile=name, auth_type=auth_type, env=env)) for name in names
        ]
    else:
        profile = profiles[0] if profiles else None
        config = resolve_workspace(host=host, token=token, profile=profile, auth_type=auth_type)
        workspaces = [(profile or config.host, config)]
    outcomes = run_extract(workspaces, db_path(db), options, max_rps=max_rps, quiet=quiet)
    failed = [o for o in outcomes if o.error is not None]
    # A workspace that failed keeps its old data; the rules see it only up to its last success.
    alert_error: JobrunsError | None = None
    if with_alerts and len(failed) < len(outcomes):
        try:
            run_alerts(
                db,
                rules_file=rules_file,
                webhooks=webhooks,
                webhook_format=webhook_format,
                alert_since=alert_since,
                max_per_call=max_per_call,
            )
        except JobrunsError as exc:
            if not failed:
                raise
            alert_error = exc
    if alert_error is not None:
        stderr.print(f"[red]error:[/] {escape(str(alert_error))}", soft_wrap=True)
    if billing_warehouse and not failed:
        from extractor.cli.prices import run_billing_sync

        run_billing_sync(workspaces[0][1], db, billing_warehouse, quiet=quiet)
    if len(outcomes) == 1 and failed:
        raise failed[0].error
    if failed:
        raise JobrunsError(
            f"{len(failed)} of {len(outcomes)} workspaces failed: "
            + "; ".join(f"{o.name} ({o.host}): {o.error}" for o in failed)
        )


def _extract_options(**values: Any) -> Any:
    from extractor.plan import ExtractOptions

    for name in ("repair_window", "repair_every", "rescan_every", "overlap"):
        values[name] = duration(values[name], "--" + name.replace("_", "-"))
    if values["since"] and values["until"] and values["since"] >= values["until"]:
        raise UsageError("--since must be before --until")
    return ExtractOptions(**values)


def run_extract(
    workspaces: list[tuple[str, Any]], db: Path, options: Any, *, max_rps: float, quiet: bool
) -> list[Any]:
    """Extract workspaces into one store with progress bars on a terminal, then summarise."""
    from extractor.pipeline import extract_into, release_memory_promptly
    from extractor.progress import print_outcomes, progress_board

    release_memory_promptly()
    with progress_board(enabled=not quiet) as board:
        outcomes = extract_into(db, workspaces, options, max_rps=max_rps, board=board)
    if not quiet:
        print_outcomes(outcomes)
    return outcomes
