"""Alert delivery: Slack, Teams and plain JSON webhooks, and the alert log that makes it
at-least-once (pending until a 2xx came back, retried by the next call, never sent twice after).

A webhook URL is a secret: it is never printed, logged or stored; only its masked form and a
hash of it leave this module. Rules are evaluated elsewhere (extractor.analytics.alerts).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import duckdb
import httpx

from extractor.analytics.alerts import Alert
from extractor.errors import UsageError
from extractor.store import Store, fetch_dicts

log = logging.getLogger("jobruns.alerts")

STDOUT = "stdout"  # the destination of alerts when no webhook is given: printed once
RETRIES = 3  # attempts after the first, on 429, 5xx and connection errors
BACKOFF_S = 0.25  # doubled each retry; a Retry-After (capped) wins
MAX_RETRY_AFTER_S = 30.0
TIMEOUT_S = 10.0
# Slack allows 50 blocks per message (https://api.slack.com/reference/block-kit/blocks);
# a header, then two blocks per alert: a job's alerts go in chunks that fit.
ALERTS_PER_MESSAGE = 20


@dataclass(frozen=True)
class Destination:
    """Where alerts go. `url` stays in memory only; `id` and `masked` are what is shown/stored."""

    url: str | None
    format: str

    @property
    def id(self) -> str:
        if self.url is None:
            return STDOUT
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]

    @property
    def masked(self) -> str:
        return STDOUT if self.url is None else mask_url(self.url)

    @property
    def label(self) -> str:
        return self.masked if self.url is None else f"{self.masked} [{self.id[:8]}]"


def mask_url(url: str) -> str:
    """scheme://host[:port]/*** : the path and query of a webhook URL carry its secret."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/***"


def webhook_format(url: str) -> str:
    """slack, teams or json, from the URL's host."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "hooks.slack.com":
        return "slack"
    teams_hosts = (".webhook.office.com", ".logic.azure.com", ".powerplatform.com")
    if (
        host.endswith(teams_hosts)
        or "powerautomate" in host
        or "/powerautomate/" in parts.path
        or host == "flow.microsoft.com"
    ):
        return "teams"
    return "json"


def destination(url: str, fmt: str | None = None) -> Destination:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Not the URL itself in the message: it may still be a secret, mistyped.
        raise UsageError("--webhook needs an http(s) URL (value not shown: it may be a secret)")
    return Destination(url, fmt or webhook_format(url))


# -- payloads ------------------------------------------------------------------------------


def _facts(alert: Alert) -> list[tuple[str, str]]:
    facts = [(k.replace("_", " "), _show(v)) for k, v in alert.details.items() if v is not None]
    if alert.run_id is not None:
        facts.insert(0, ("run", str(alert.run_id)))
    return facts


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _headline(alerts: list[Alert]) -> str:
    first = alerts[0]
    subject = first.job_name or (f"job {first.job_id}" if first.job_id else "jobruns")
    if len(alerts) == 1:
        return f"[{first.severity}] {first.title}"
    return f"[{first.severity}] {subject}: {len(alerts)} alerts"


def slack_payload(alerts: list[Alert]) -> dict[str, Any]:
    """An incoming-webhook message: `text` (the notification) and Block Kit `blocks`
    (https://api.slack.com/messaging/webhooks)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _headline(alerts)[:150]}}
    ]
    for alert in alerts:
        title = f"*{alert.title}*"
        if alert.run_page_url:
            title = f"*<{alert.run_page_url}|{alert.title}>*"
        facts = "\n".join(f"{k}: {v}" for k, v in _facts(alert))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": title[:3000]}})
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"{alert.rule} · {alert.fired_at:%Y-%m-%d %H:%M} UTC"
                        + (f"\n{facts}" if facts else ""),
                    }
                ],
            }
        )
    return {"text": _headline(alerts), "blocks": blocks}


def teams_payload(alerts: list[Alert]) -> dict[str, Any]:
    """A Teams workflow ("When a Teams webhook request is received") message: one Adaptive
    Card in `attachments` (https://learn.microsoft.com/en-us/microsoftteams/platform/
    webhooks-and-connectors/how-to/add-incoming-webhook)."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": _headline(alerts),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        }
    ]
    actions: list[dict[str, Any]] = []
    for alert in alerts:
        body.append({"type": "TextBlock", "text": alert.title, "wrap": True, "separator": True})
        facts = [
            ("rule", alert.rule),
            ("at", f"{alert.fired_at:%Y-%m-%d %H:%M} UTC"),
            *_facts(alert),
        ]
        body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]})
        if alert.run_page_url and len(actions) < 5:
            actions.append(
                {
                    "type": "Action.OpenUrl",
                    "title": f"Run {alert.run_id}",
                    "url": alert.run_page_url,
                }
            )
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def json_payload(alerts: list[Alert]) -> dict[str, Any]:
    return {"alerts": [a.to_json() for a in alerts]}


PAYLOADS: dict[str, Callable[[list[Alert]], dict[str, Any]]] = {
    "slack": slack_payload,
    "teams": teams_payload,
    "json": json_payload,
}


# -- sending -------------------------------------------------------------------------------


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def post(
    client: httpx.Client,
    url: str,
    payload: dict[str, Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
    retries: int = RETRIES,
    backoff_s: float = BACKOFF_S,
) -> None:
    """POST until a 2xx; retried with backoff on 429, 5xx and connection errors."""
    body = json.dumps(payload, default=str).encode()
    headers = {"Content-Type": "application/json"}
    delay = backoff_s
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            error = DeliveryFailed(_scrub(f"{type(exc).__name__}: {exc}", url), retryable=True)
            if last:
                raise error from exc
            sleep(delay)
            delay *= 2
            continue
        if 200 <= response.status_code < 300:
            return
        text = _scrub(" ".join(response.text.split())[:200], url)
        retryable = response.status_code == 429 or response.status_code >= 500
        error = DeliveryFailed(f"HTTP {response.status_code}: {text}".strip(), retryable=retryable)
        if not retryable or last:
            raise error
        wait = delay
        retry_after = response.headers.get("Retry-After")
        if retry_after and retry_after.strip().isdigit():
            wait = min(float(retry_after), MAX_RETRY_AFTER_S)
        sleep(wait)
        delay *= 2


def _scrub(text: str, url: str) -> str:
    """An error message with the webhook's secret part (path, query) masked, should it echo it."""
    parts = urlsplit(url)
    for secret in (url, parts.path, parts.query):
        if len(secret) > 1:
            text = text.replace(secret, "/***" if secret == parts.path else "***")
    return text


# -- the alert log -------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one call did for one destination."""

    destination: Destination
    new: int = 0
    sent: list[Alert] = field(default_factory=list)
    held: int = 0  # pending for a later call: cooldown or --max-per-call
    failed: int = 0
    error: str | None = None


def _insert_new(
    con: duckdb.DuckDBPyConnection, dest: Destination, alerts: Iterable[Alert], now: datetime
) -> int:
    have = {
        r[0]
        for r in con.execute(
            "SELECT key FROM alert_log WHERE destination_id = ?", [dest.id]
        ).fetchall()
    }
    count = 0
    for alert in alerts:
        if alert.key in have:
            continue
        have.add(alert.key)
        con.execute(
            "INSERT INTO alert_log (destination_id, destination, key, rule, severity, workspace_id,"
            " job_id, run_id, fired_at, recorded_at, status, attempts, alert)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)",
            [
                dest.id,
                dest.masked,
                alert.key,
                alert.rule,
                alert.severity,
                alert.workspace_id,
                alert.job_id,
                alert.run_id,
                alert.fired_at,
                now,
                json.dumps(alert.to_json(), default=str),
            ],
        )
        count += 1
    return count


def _pending(con: duckdb.DuckDBPyConnection, dest: Destination) -> list[Alert]:
    rows = con.execute(
        "SELECT alert FROM alert_log WHERE destination_id = ? AND status <> 'sent'"
        " ORDER BY fired_at, key",
        [dest.id],
    ).fetchall()
    return [Alert.from_json(json.loads(r[0])) for r in rows]


def _last_sent(
    con: duckdb.DuckDBPyConnection, dest: Destination
) -> dict[tuple[Any, ...], datetime]:
    rows = fetch_dicts(
        con,
        "SELECT rule, workspace_id, job_id, max(sent_at) AS sent_at FROM alert_log"
        " WHERE destination_id = ? AND status = 'sent' GROUP BY ALL",
        [dest.id],
    )
    return {(r["rule"], r["workspace_id"], r["job_id"]): r["sent_at"] for r in rows}


def _select(
    pending: list[Alert],
    last_sent: dict[tuple[Any, ...], datetime],
    cooldowns: dict[str, timedelta],
    now: datetime,
    max_per_call: int | None,
) -> tuple[list[Alert], int]:
    """The alerts to send now, and how many stay pending (cooldown, the per-call cap)."""
    chosen: list[Alert] = []
    held = 0
    for alert in pending:
        cooldown = cooldowns.get(alert.rule, timedelta(0))
        group = (alert.rule, alert.workspace_id, alert.job_id)
        last = last_sent.get(group)
        if cooldown and last is not None and now - last < cooldown:
            held += 1
            continue
        if max_per_call is not None and len(chosen) >= max_per_call:
            held += 1
            continue
        if cooldown:
            # One per job and rule in each cooldown period: the next waits for the next period.
            last_sent[group] = now
        chosen.append(alert)
    return chosen, held


def _messages(alerts: list[Alert]) -> list[list[Alert]]:
    """The alerts of one job in one message (in chunks a message can hold)."""
    by_job: dict[tuple[Any, ...], list[Alert]] = {}
    for alert in alerts:
        by_job.setdefault((alert.workspace_id, alert.job_id), []).append(alert)
    out = []
    for group in by_job.values():
        for i in range(0, len(group), ALERTS_PER_MESSAGE):
            out.append(group[i : i + ALERTS_PER_MESSAGE])
    return out


def deliver(
    store: Store,
    alerts: list[Alert],
    destinations: list[Destination],
    *,
    now: datetime,
    cooldowns: dict[str, timedelta] | None = None,
    max_per_call: int | None = None,
    dry_run: bool = False,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    printer: Callable[[Destination, list[Alert]], None] | None = None,
) -> list[Outcome]:
    """Record new alerts as pending for each destination, then send what is pending.

    Writes are committed before any POST (pending) and after each one (sent, or failed with
    its error), so a crash in between sends again rather than losing: at least once. With
    `dry_run` nothing is recorded or sent; the outcomes say what would have been.
    """
    cooldowns = cooldowns or {}
    outcomes = []
    with httpx.Client(timeout=TIMEOUT_S, transport=transport, follow_redirects=False) as client:
        for dest in destinations:
            outcome = Outcome(dest)
            outcomes.append(outcome)
            if dry_run:
                with store.connect(read_only=True) as con:
                    known = _known_sent(con, dest)
                    pending = _pending(con, dest)
                    last_sent = _last_sent(con, dest)
                fresh = [
                    a
                    for a in alerts
                    if a.key not in known and a.key not in {p.key for p in pending}
                ]
                outcome.new = len(fresh)
                chosen, outcome.held = _select(
                    pending + fresh, last_sent, cooldowns, now, max_per_call
                )
                outcome.sent = chosen
                if printer:
                    printer(dest, chosen)
                continue
            with store.transaction() as con:
                outcome.new = _insert_new(con, dest, alerts, now)
                pending = _pending(con, dest)
                last_sent = _last_sent(con, dest)
            chosen, outcome.held = _select(pending, last_sent, cooldowns, now, max_per_call)
            if printer:
                printer(dest, chosen)
            for message in _messages(chosen):
                error: str | None = None
                tried = outcome.error is None
                if dest.url is not None and tried:
                    try:
                        post(client, dest.url, PAYLOADS[dest.format](message), sleep=sleep)
                    except DeliveryFailed as exc:
                        error = str(exc)
                elif outcome.error is not None:
                    error = "not tried: an earlier message to this destination failed"
                _mark(store, dest, message, now, error, tried=dest.url is None or tried)
                if error is None:
                    outcome.sent.extend(message)
                else:
                    outcome.failed += len(message)
                    outcome.error = outcome.error or error
    return outcomes


def _known_sent(con: duckdb.DuckDBPyConnection, dest: Destination) -> set[str]:
    rows = con.execute("SELECT key FROM alert_log WHERE destination_id = ?", [dest.id]).fetchall()
    return {str(r[0]) for r in rows}


def _mark(
    store: Store,
    dest: Destination,
    alerts: list[Alert],
    now: datetime,
    error: str | None,
    *,
    tried: bool,
) -> None:
    keys = [a.key for a in alerts]
    with store.transaction() as con:
        if error is None:
            con.execute(
                "UPDATE alert_log SET status = 'sent', sent_at = ?, last_attempt_at = ?,"
                " attempts = attempts + 1, error = NULL"
                " WHERE destination_id = ? AND list_contains(?, key)",
                [now, now, dest.id, keys],
            )
        else:
            con.execute(
                "UPDATE alert_log SET status = 'failed', last_attempt_at = ?,"
                " attempts = attempts + ?, error = ?"
                " WHERE destination_id = ? AND list_contains(?, key)",
                [now, int(tried), error, dest.id, keys],
            )
