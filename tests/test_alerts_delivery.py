"""Alert delivery: a local webhook receiver records posts; sent once, retried until it arrives,
never with the webhook's secret shown; `jobruns alerts` and `jobruns extract --alerts`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from extractor.analytics.alerts import Alert
from extractor.analytics.notify import (
    DeliveryFailed,
    Destination,
    deliver,
    destination,
    mask_url,
    post,
    webhook_format,
)
from extractor.store import Store
from tests.conftest import MakeSim, jobruns, wall_clock_ms

SECRET = "T000/B000/s3cr3tT0ken"


class Receiver:
    """A webhook on 127.0.0.1 that records each POST; `fail` makes the next N answer 503."""

    def __init__(self, port: int = 0) -> None:
        self.posts: list[dict[str, Any]] = []
        self.fail = 0
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail > 0:
                    receiver.fail -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.posts.append({"path": self.path, "body": json.loads(body)})
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{SECRET}"

    def alerts(self) -> list[dict[str, Any]]:
        return [a for p in self.posts for a in p["body"].get("alerts", [])]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)


def alert(key: str, job_id: int = 1, rule: str = "failed_run", **extra: Any) -> Alert:
    return Alert(
        rule=rule,
        severity="error",
        key=key,
        title=f"job {job_id}: {key}",
        fired_at=NOW - timedelta(minutes=5),
        workspace_id="ws1",
        job_id=job_id,
        job_name=f"job {job_id}",
        run_id=7,
        run_page_url="https://example.cloud.databricks.com/jobs/1/runs/7",
        details={"state": "FAILED"},
        **extra,
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "alerts.duckdb")
    s.initialize()
    return s


def no_sleep(seconds: float) -> None:
    pass


# -- formats and secrets -------------------------------------------------------------------


def test_format_comes_from_the_host_and_the_secret_part_is_masked():
    assert webhook_format("https://hooks.slack.com/services/T/B/X") == "slack"
    assert webhook_format("https://contoso.webhook.office.com/webhookb2/abc") == "teams"
    assert (
        webhook_format("https://prod-12.westus.logic.azure.com:443/workflows/abc?sig=x") == "teams"
    )
    assert (
        webhook_format("https://default1.environment.api.powerplatform.com/powerautomate/x")
        == "teams"
    )
    assert webhook_format("https://alerts.example.com/in") == "json"
    assert mask_url("https://hooks.slack.com/services/T/B/X?x=1") == "https://hooks.slack.com/***"
    assert mask_url("http://user:pw@127.0.0.1:8080/a/b") == "http://127.0.0.1:8080/***"
    d = destination("https://hooks.slack.com/services/T/B/X", None)
    assert d.format == "slack" and "T/B/X" not in d.label
    assert destination("https://hooks.slack.com/services/T/B/X", "json").format == "json"


def test_slack_and_teams_payloads(store, receiver):
    alerts = [alert("a"), alert("b")]
    for fmt in ("slack", "teams"):
        deliver(store, alerts, [Destination(receiver.url + fmt, fmt)], now=NOW, sleep=no_sleep)
    slack, teams = (p["body"] for p in receiver.posts)
    assert slack["text"] == "[error] job 1: 2 alerts"
    assert slack["blocks"][0]["type"] == "header"
    assert "<https://example.cloud.databricks.com/jobs/1/runs/7|job 1: a>" in json.dumps(slack)
    attachment = teams["attachments"][0]
    assert teams["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["type"] == "AdaptiveCard"
    assert attachment["content"]["actions"][0]["type"] == "Action.OpenUrl"


# -- at least once, never twice ------------------------------------------------------------


def test_one_message_per_job_and_a_second_call_sends_nothing(store, receiver):
    dest = Destination(receiver.url, "json")
    alerts = [alert("a", 1), alert("b", 2), alert("c", 1)]
    (first,) = deliver(store, alerts, [dest], now=NOW, sleep=no_sleep)
    assert (first.new, len(first.sent), first.failed) == (3, 3, 0)
    assert sorted(len(p["body"]["alerts"]) for p in receiver.posts) == [1, 2]
    (second,) = deliver(store, alerts, [dest], now=NOW + timedelta(minutes=5), sleep=no_sleep)
    assert (second.new, second.sent) == (0, [])
    assert len(receiver.posts) == 2


def test_retries_on_503_and_429_then_succeeds(receiver):
    receiver.fail = 2
    waits: list[float] = []
    with httpx.Client() as client:
        post(client, receiver.url, {"alerts": []}, sleep=waits.append)
    assert waits == [0.25, 0.5]
    assert len(receiver.posts) == 1

    answers = iter([httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(204)])
    transport = httpx.MockTransport(lambda request: next(answers))
    waits.clear()
    with httpx.Client(transport=transport) as client:
        post(client, "https://x.example/hook", {}, sleep=waits.append)
    assert waits == [7.0]

    transport = httpx.MockTransport(lambda request: httpx.Response(400, text="invalid_payload"))
    with httpx.Client(transport=transport) as client, pytest.raises(DeliveryFailed) as exc:
        post(client, "https://x.example/hook", {}, sleep=waits.append)
    assert str(exc.value) == "HTTP 400: invalid_payload"  # not retried, and no URL in it


def test_a_failed_delivery_stays_pending_and_arrives_once_later(store, receiver):
    dest = Destination(receiver.url, "json")
    alerts = [alert("a", 1), alert("b", 2)]
    receiver.fail = 100
    (down,) = deliver(store, alerts, [dest], now=NOW, sleep=no_sleep)
    assert down.failed == 2 and down.error == "HTTP 503:"
    receiver.fail = 0
    # The rules no longer find the alerts (out of --since): they are still pending, and go.
    (up,) = deliver(store, [], [dest], now=NOW + timedelta(minutes=5), sleep=no_sleep)
    assert sorted(a.key for a in up.sent) == ["a", "b"]
    (again,) = deliver(store, alerts, [dest], now=NOW + timedelta(minutes=10), sleep=no_sleep)
    assert again.sent == []
    assert sorted(a["key"] for a in receiver.alerts()) == ["a", "b"]
    with store.connect() as con:
        rows = con.execute("SELECT key, status, attempts FROM alert_log ORDER BY key").fetchall()
        stored = con.execute(
            "SELECT string_agg(destination || alert, '') FROM alert_log"
        ).fetchone()
    assert rows == [("a", "sent", 2), ("b", "sent", 1)]  # b was not tried while a failed
    assert SECRET not in stored[0]


def test_max_per_call_and_cooldown_hold_alerts_for_later_calls(store, receiver):
    dest = Destination(receiver.url, "json")
    alerts = [alert(k, 1) for k in "abc"]
    (one,) = deliver(store, alerts, [dest], now=NOW, max_per_call=2, sleep=no_sleep)
    assert (len(one.sent), one.held) == (2, 1)
    (two,) = deliver(store, alerts, [dest], now=NOW, max_per_call=2, sleep=no_sleep)
    assert [a.key for a in two.sent] == ["c"]

    cooldown = {"stuck_run": timedelta(hours=1)}
    stuck = [alert(k, 5, rule="stuck_run") for k in ("s1", "s2")]
    (first,) = deliver(store, stuck, [dest], now=NOW, cooldowns=cooldown, sleep=no_sleep)
    assert ([a.key for a in first.sent], first.held) == (["s1"], 1)
    (soon,) = deliver(store, stuck, [dest], now=NOW + timedelta(minutes=30), cooldowns=cooldown)
    assert (soon.sent, soon.held) == ([], 1)
    (later,) = deliver(store, stuck, [dest], now=NOW + timedelta(minutes=61), cooldowns=cooldown)
    assert [a.key for a in later.sent] == ["s2"]


def test_dry_run_records_and_sends_nothing(store, receiver):
    dest = Destination(receiver.url, "json")
    (out,) = deliver(store, [alert("a")], [dest], now=NOW, dry_run=True)
    assert [a.key for a in out.sent] == ["a"]
    assert receiver.posts == []
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM alert_log").fetchone() == (0,)


# -- the CLI, against the simulator ------------------------------------------------------------


@pytest.mark.slow
def test_extract_with_alerts_sends_once_and_a_down_receiver_gets_them_later(
    make_sim: MakeSim, receiver: Receiver, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    sim = make_sim(5, runs=120, jobs=6, now_ms=wall_clock_ms())
    db = str(sim.db)
    # Every failed run of the last 60 days, so that there is plenty to send.
    rules = tmp_path / "rules.toml"
    rules.write_text("since = '60d'\n[rules.failed_run]\nenabled = true\n")
    down = f"http://127.0.0.1:{receiver.port}/down/{SECRET}"
    receiver.stop()

    code, text = jobruns(
        capsys,
        "extract",
        "--host",
        sim.server.url,
        "--token",
        sim.server.token,
        "--db",
        db,
        "--quiet",
        "--alerts",
        "--rules",
        str(rules),
        "--webhook",
        down,
    )
    assert code == 1
    assert f"http://127.0.0.1:{receiver.port}/*** [" in text
    assert "stay pending" in text
    assert SECRET not in text
    failed_runs = (
        duckdb.connect(db, read_only=True)
        .execute("SELECT count(*) FROM int_run_facts WHERE outcome = 'failed'")
        .fetchone()[0]
    )
    assert failed_runs > 0

    up = Receiver(receiver.port)  # the receiver is back, at the same URL
    try:
        up_url = down
        code, text = jobruns(
            capsys, "alerts", "--db", db, "--rules", str(rules), "--webhook", up_url
        )
        assert code == 0, text
        assert SECRET not in text
        keys = [a["key"] for a in up.alerts()]
        assert len(keys) == len(set(keys)) and keys
        assert sum(k.startswith("failed_run:") for k in keys) == failed_runs
        code, text = jobruns(
            capsys, "alerts", "--db", db, "--rules", str(rules), "--webhook", up_url
        )
        assert code == 0
        assert len(up.alerts()) == len(keys)  # a second call sends nothing
        code, text = jobruns(capsys, "status", "--db", db)
        assert "alerts: 0 pending delivery" in text
        assert f"-> http://127.0.0.1:{receiver.port}/*** sent" in text
    finally:
        up.stop()


def test_alerts_without_a_webhook_print_each_alert_once(
    make_sim: MakeSim, capsys: pytest.CaptureFixture[str]
):
    sim = make_sim(5, runs=120, jobs=6, now_ms=wall_clock_ms())
    sim.extract()
    db = str(sim.db)
    code, dry = jobruns(
        capsys, "alerts", "--db", db, "--since", "60d", "--dry-run", "--format", "json"
    )
    assert code == 0
    assert '"key"' in dry  # there is something to send
    code, text = jobruns(capsys, "alerts", "--db", db, "--since", "60d", "--format", "json")
    assert code == 0
    assert text == dry  # the dry run showed exactly this, and recorded nothing
    code, again = jobruns(capsys, "alerts", "--db", db, "--since", "60d", "--format", "json")
    assert code == 0 and '"key"' not in again


def test_bad_rules_file_and_bad_webhook_are_usage_errors(tmp_path, capsys):
    rules = tmp_path / "rules.toml"
    rules.write_text("[rules.failure_streak]\nstreak = 2\n")
    db = str(tmp_path / "s.duckdb")
    code, text = jobruns(capsys, "alerts", "--db", db, "--rules", str(rules))
    assert code == 2 and "line 2: unknown key 'rules.failure_streak.streak'" in text
    code, text = jobruns(capsys, "alerts", "--db", db, "--webhook", "hooks.slack.com/services/X/Y")
    assert code == 2 and "X/Y" not in text
    code, text = jobruns(capsys, "extract", "--db", db, "--webhook", "https://a.example/x")
    assert code == 2 and "need --alerts" in text


def test_an_error_echoing_the_url_is_masked():
    url = f"https://alerts.example.com/hooks/{SECRET}?sig=abc"
    transport = httpx.MockTransport(lambda request: httpx.Response(404, text=f"no hook {url}"))
    with httpx.Client(transport=transport) as client, pytest.raises(DeliveryFailed) as exc:
        post(client, url, {}, sleep=no_sleep)
    assert SECRET not in str(exc.value) and "sig=abc" not in str(exc.value)
