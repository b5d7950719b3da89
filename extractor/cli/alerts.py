"""`jobruns alerts`: evaluate the alert rules over the store, print the new alerts and send them
to each webhook once; also what `jobruns extract --alerts` runs after an extract.

Webhook URLs are secrets: only their masked form is ever printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from extractor.cli._common import cli, db_option, duration, now, stderr, writable_store
from extractor.errors import JobrunsError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SINCE = timedelta(hours=24)


def alert_options(since_option: str) -> Callable[[F], F]:
    """The options `jobruns alerts` and `jobruns extract --alerts` share."""

    def wrap(func: F) -> F:
        for option in reversed(
            [
                click.option(
                    "--rules",
                    "rules_file",
                    type=click.Path(dir_okay=False, path_type=Path),
                    help="TOML rules file (rule settings, webhooks).",
                ),
                click.option(
                    "--webhook",
                    "webhooks",
                    multiple=True,
                    metavar="URL",
                    help="Send alerts here (Slack, Teams workflow or any JSON webhook); repeatable.",
                ),
                click.option(
                    "--webhook-format",
                    type=click.Choice(["slack", "teams", "json"]),
                    help="Payload format (default: from the URL's host).",
                ),
                click.option(
                    since_option,
                    "alert_since",
                    metavar="DURATION",
                    help="Only events of this last period (default 24h).",
                ),
                click.option(
                    "--max-per-call",
                    type=click.IntRange(1),
                    help="Send at most this many alerts per destination; the rest stay pending.",
                ),
            ]
        ):
            func = option(func)
        return func

    return wrap


@cli.command()
@db_option
@alert_options("--since")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--dry-run", is_flag=True, help="Print what would be sent; record and send nothing.")
def alerts(
    db: str | None,
    rules_file: Path | None,
    webhooks: tuple[str, ...],
    webhook_format: str | None,
    alert_since: str | None,
    max_per_call: int | None,
    fmt: str,
    dry_run: bool,
) -> None:
    """Alert on failure streaks, new failure causes, slow, stuck and costly runs, missed schedules.

    \b
    Prints every new alert and sends it to each --webhook once (a failed delivery stays pending
    and is retried by the next call). Exit 1 when a delivery failed.
    """
    run_alerts(
        db,
        rules_file=rules_file,
        webhooks=webhooks,
        webhook_format=webhook_format,
        alert_since=alert_since,
        max_per_call=max_per_call,
        fmt=fmt,
        dry_run=dry_run,
    )


def run_alerts(
    db: str | None,
    *,
    rules_file: Path | None,
    webhooks: tuple[str, ...],
    webhook_format: str | None,
    alert_since: str | None,
    max_per_call: int | None,
    fmt: str = "text",
    dry_run: bool = False,
    at: datetime | None = None,
) -> None:
    from extractor.analytics.alerts import AlertsConfig, evaluate, load_rules
    from extractor.analytics.notify import Destination, deliver, destination
    from extractor.analytics.views import ensure_views

    config = load_rules(rules_file) if rules_file else AlertsConfig.model_validate({})
    since = duration(alert_since, "--since") or config.since or DEFAULT_SINCE
    cap = max_per_call or config.max_per_call
    dests = [destination(url, webhook_format) for url in webhooks]
    dests += [destination(w.url, w.format or webhook_format) for w in config.webhook_list()]
    if not dests:
        dests = [Destination(None, "json")]
    moment = at or now()
    cooldowns = {
        name: getattr(config.rules, name).cooldown for name in type(config.rules).model_fields
    }
    printed: set[str] = set()

    def show(dest: Destination, chosen: list[Any]) -> None:
        for alert in chosen:
            if alert.key in printed:
                continue
            printed.add(alert.key)
            if fmt == "json":
                click.echo(json.dumps(alert.to_json(), default=str))
            else:
                url = f"  {alert.run_page_url}" if alert.run_page_url else ""
                click.echo(
                    f"{alert.fired_at:%Y-%m-%d %H:%M} {alert.severity:<7} {alert.rule:<19} "
                    f"{alert.title}{url}"
                )

    with writable_store(db) as store:
        with store.connect() as con:
            ensure_views(con)
            found = evaluate(con, config.rules, now=moment, since=since)
        for note in found.notes:
            stderr.print(f"note: {note}", markup=False)
        outcomes = deliver(
            store,
            found.alerts,
            dests,
            now=moment,
            cooldowns=cooldowns,
            max_per_call=cap,
            dry_run=dry_run,
            printer=show,
        )
    failed = []
    for o in outcomes:
        if o.destination.url is None and not o.held:
            continue
        verb = "would send" if dry_run else "sent"
        line = f"{o.destination.format} {o.destination.label}: {verb} {len(o.sent)}"
        if o.held:
            line += f", {o.held} held for a later call (cooldown or --max-per-call)"
        if o.failed:
            line += f", {o.failed} failed and stay pending ({o.error})"
            failed.append(o)
        stderr.print(line, markup=False, highlight=False)
    if failed:
        raise JobrunsError(
            "alert delivery failed to "
            + "; ".join(f"{o.destination.label} ({o.error})" for o in failed)
            + ": those alerts stay pending and the next call sends them again"
        )
