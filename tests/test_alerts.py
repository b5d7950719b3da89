"""Alert rules on hand-built stores (hand-computed expectations), and the rules file."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from extractor.analytics.alerts import Alert, Rules, evaluate, parse_rules
from extractor.analytics.materialize import refresh_materialized
from extractor.errors import UsageError
from tests.test_views import add_job, add_run, add_task, insert

NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
MIN = timedelta(minutes=1)


@pytest.fixture
def con(views_con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    views_con.execute("DELETE FROM extract_state")
    # The rules here read hand-made rows: a test table stands in for the failure_causes view.
    views_con.execute("DROP VIEW IF EXISTS failure_causes")
    views_con.execute("DROP TABLE IF EXISTS failure_causes")
    return views_con


def rules(**settings: dict[str, Any]) -> Rules:
    """Only the rules named, with their settings; every other rule off."""
    data: dict[str, Any] = {name: {"enabled": False} for name in Rules.model_fields}
    for name, values in settings.items():
        data[name] = {"enabled": True, **values}
    return Rules.model_validate(data)


def run_rules(
    con: duckdb.DuckDBPyConnection, only: Rules, since: timedelta = 24 * H
) -> list[Alert]:
    refresh_materialized(con, None)
    return evaluate(con, only, now=NOW, since=since).alerts


# -- failure_streak ------------------------------------------------------------------------


def add_streak_job(con: duckdb.DuckDBPyConnection, start: datetime) -> None:
    """Job 1: succeeded, failed, canceled, failed, failed (hourly runs of 10 min)."""
    add_job(con, 1, "nightly_load")
    outcomes = ["SUCCESS", "FAILED", "CANCELED", "TIMEDOUT", "FAILED"]
    for i, result in enumerate(outcomes):
        add_run(con, 100 + i, start=start + i * H, minutes=10, result=result)


def test_failure_streak_fires_when_it_reaches_n_keyed_by_its_first_run(con):
    add_streak_job(con, NOW - 6 * H)
    # A job that failed once then recovered: no streak.
    add_job(con, 2, "other")
    add_run(con, 200, job_id=2, start=NOW - 3 * H, result="FAILED")
    add_run(con, 201, job_id=2, start=NOW - 2 * H, result="SUCCESS")

    alerts = run_rules(con, rules(failure_streak={"n": 2}))

    assert [(a.key, a.run_id, a.details["streak_length"]) for a in alerts] == [
        # Runs 101, 103, 104 failed (102 canceled is passed over): reached 2 at run 103.
        ("failure_streak:ws1:1:101", 103, 3)
    ]
    assert alerts[0].fired_at == NOW - 6 * H + 3 * H + 10 * MIN
    assert alerts[0].title == "nightly_load: 3 failed runs in a row"
    # n = 3 is reached at run 104; n = 4 not at all.
    assert [a.run_id for a in run_rules(con, rules(failure_streak={"n": 3}))] == [104]
    assert run_rules(con, rules(failure_streak={"n": 4})) == []


def test_failure_streak_outside_since_is_not_considered(con):
    add_streak_job(con, NOW - 30 * H)  # reached 2 at 26 h 50 min ago
    assert run_rules(con, rules(failure_streak={})) == []
    assert len(run_rules(con, rules(failure_streak={}), since=48 * H)) == 1


def test_failed_run_alerts_every_failed_run_when_enabled(con):
    add_streak_job(con, NOW - 6 * H)
    add_run(con, 300, start=NOW - 8 * H, result=None, lcs="INTERNAL_ERROR")
    assert run_rules(con, rules()) == []  # failed_run is off by default
    assert Rules().failed_run.enabled is False
    alerts = run_rules(con, rules(failed_run={}))
    assert [(a.run_id, a.details["state"]) for a in alerts] == [
        (300, "INTERNAL_ERROR"),
        (101, "FAILED"),
        (103, "TIMEDOUT"),
        (104, "FAILED"),
    ]


def test_rules_limited_to_jobs_by_id_name_glob_and_tag(con):
    add_streak_job(con, NOW - 6 * H)
    con.execute("UPDATE jobs SET tags = MAP {'team': 'data'} WHERE job_id = 1")
    assert len(run_rules(con, rules(failure_streak={"jobs": ["nightly_*"]}))) == 1
    assert len(run_rules(con, rules(failure_streak={"jobs": [1]}))) == 1
    assert run_rules(con, rules(failure_streak={"jobs": ["hourly_*", 7]})) == []
    assert len(run_rules(con, rules(failure_streak={"tags": {"team": "data"}}))) == 1
    assert run_rules(con, rules(failure_streak={"tags": {"team": "web"}})) == []


# -- duration_regression -------------------------------------------------------------------


def test_duration_regression_compares_with_the_median_of_the_lookback(con):
    add_job(con, 1, "etl")
    for i, minutes in enumerate([10, 12, 14, 16, 18]):  # median 14 min
        add_run(con, 100 + i, start=NOW - 3 * 24 * H + i * H, minutes=minutes)
    add_run(con, 110, start=NOW - 9 * 24 * H, minutes=100)  # before the 7-day lookback
    add_run(con, 120, start=NOW - 5 * H, minutes=22)  # 22 > 1.5 x 14 = 21
    add_run(con, 121, start=NOW - 2 * H, minutes=20)  # 20 < 1.5 x median(10..18, 22) = 22.5

    alerts = run_rules(con, rules(duration_regression={}))

    assert [a.run_id for a in alerts] == [120]
    assert alerts[0].details == {
        "duration_ms": 22 * 60_000,
        "median_duration_ms": 14 * 60_000,
        "ratio": round(22 / 14, 3),
        "baseline_runs": 5,
    }
    assert alerts[0].key == "duration_regression:ws1:120"
    # With 6 baseline runs required, run 120 has only 5: nothing; run 121 has 6 but is fast.
    assert run_rules(con, rules(duration_regression={"min_runs": 6})) == []
    # 20 > 1.3 x 15 = 19.5
    assert [a.run_id for a in run_rules(con, rules(duration_regression={"factor": 1.3}))] == [
        120,
        121,
    ]


# -- stuck_run -----------------------------------------------------------------------------


def test_stuck_run_over_factor_times_p95_or_past_its_timeout(con):
    add_job(con, 1, "etl")
    for i in range(5):
        add_run(con, 100 + i, start=NOW - 48 * H + i * H, minutes=10)  # p95 10 min
    add_run(con, 110, start=NOW - 25 * MIN, active=True)  # 25 > 2 x 10
    add_run(con, 111, start=NOW - 15 * MIN, active=True)  # 15 < 20
    add_job(con, 2, "with_timeout", timeout_seconds=600)
    add_run(con, 200, job_id=2, start=NOW - 11 * MIN, active=True)  # past 10 min, no history
    add_job(con, 3, "new_job")
    add_run(con, 300, job_id=3, start=NOW - 5 * 24 * H, active=True)  # no p95, no timeout

    alerts = run_rules(con, rules(stuck_run={}))

    got = {a.run_id: (a.details["reason"], a.details["running_for_ms"]) for a in alerts}
    assert got == {110: ("over_p95", 25 * 60_000), 200: ("past_timeout", 11 * 60_000)}
    stuck = next(a for a in alerts if a.run_id == 110)
    assert stuck.fired_at == NOW - 25 * MIN + 20 * MIN
    assert [a.run_id for a in run_rules(con, rules(stuck_run={"factor": 1.2}))] == [110, 111, 200]


# -- cost_spike ----------------------------------------------------------------------------


def add_costed_run(
    con: duckdb.DuckDBPyConnection, run_id: int, start: datetime, minutes: float
) -> None:
    """A run with one task on its own job cluster: its cost is proportional to its minutes."""
    add_run(con, run_id, start=start, minutes=minutes)
    add_task(con, run_id * 10, run_id, start=start, minutes=minutes, cluster_id=f"c{run_id}")


def test_cost_spike_against_the_mean_of_the_previous_n_costed_runs(con):
    add_job(con, 1, "etl")
    for i in range(5):
        add_costed_run(con, 100 + i, NOW - 30 * H + i * H, 60)
    add_costed_run(con, 110, NOW - 6 * H, 150)  # 2.5 x the mean of five 60-minute runs
    add_costed_run(con, 111, NOW - 3 * H, 150)  # mean of 60, 60, 60, 60, 150 = 78: 1.9 x

    refresh_materialized(con, None)
    hourly = con.execute("SELECT cost FROM run_cost WHERE run_id = 100").fetchone()[0]
    assert hourly > 1.0 / 2.5  # so that run 110 costs over min_cost 1.0

    alerts = run_rules(con, rules(cost_spike={}))

    assert [a.run_id for a in alerts] == [110]
    assert alerts[0].details["ratio"] == pytest.approx(2.5)
    assert alerts[0].details["mean_cost"] == pytest.approx(hourly, rel=1e-3)
    assert alerts[0].details["previous_runs"] == 5
    assert run_rules(con, rules(cost_spike={"min_cost": 1000})) == []
    assert run_rules(con, rules(cost_spike={"n": 6})) == []  # run 110 has only 5 before it


# -- missed_schedule -----------------------------------------------------------------------


def add_scheduled_job(
    con: duckdb.DuckDBPyConnection, job_id: int, cron: str, tz: str = "UTC", **extra: Any
) -> None:
    add_job(
        con,
        job_id,
        f"scheduled_{job_id}",
        schedule_cron=cron,
        schedule_timezone=tz,
        schedule_pause_status=extra.pop("pause", "UNPAUSED"),
        created_time=NOW - 30 * 24 * H,
        **extra,
    )


def seen_until(con: duckdb.DuckDBPyConnection, at: datetime) -> None:
    insert(con, "extract_state", workspace_id="ws1", host="h", last_success_at=at)


def test_missed_schedule_finds_the_due_time_with_no_run_within_grace(con):
    add_scheduled_job(con, 1, "0 0 * * * ?")  # hourly, on the hour
    seen_until(con, NOW)
    for i, hour in enumerate([6, 7, 8, 10]):
        add_run(con, 100 + i, start=NOW.replace(hour=hour) + 5 * timedelta(seconds=1), minutes=5)
    add_run(con, 110, start=NOW.replace(hour=11, minute=29), minutes=5)  # late but within grace

    alerts = run_rules(con, rules(missed_schedule={}), since=6 * H)

    # Due 06:00 .. 11:00 (11:00 + 30 min <= 12:00); 12:00 is not yet past its grace.
    assert [(a.key, a.fired_at) for a in alerts] == [
        ("missed_schedule:ws1:1:2025-06-10T09:00:00+00:00", NOW.replace(hour=9, minute=30))
    ]
    assert alerts[0].details["due_at"] == "2025-06-10T09:00:00+00:00"
    assert alerts[0].run_id is None
    # A 10-minute grace: the 11:29 start is late for 11:00 too.
    late = run_rules(con, rules(missed_schedule={"grace": "10m"}), since=6 * H)
    assert [a.details["due_at"][11:16] for a in late] == ["09:00", "11:00"]


def test_missed_schedule_reads_the_cron_in_its_time_zone(con):
    # 09:00 in Paris is 07:00 UTC in June (CEST, UTC+2).
    add_scheduled_job(con, 1, "0 0 9 ? * MON-FRI", tz="Europe/Paris")
    seen_until(con, NOW)
    alerts = run_rules(con, rules(missed_schedule={}))
    assert [a.details["due_at"] for a in alerts] == ["2025-06-10T07:00:00+00:00"]


def test_missed_schedule_ignores_paused_jobs_and_what_the_store_has_not_seen(con):
    add_scheduled_job(con, 1, "0 0 * * * ?", pause="PAUSED")
    add_scheduled_job(con, 2, "0 0 9 * * ?")
    # The last successful extract was at 09:20: 09:00 + 30 min is not seen yet.
    seen_until(con, NOW.replace(hour=9, minute=20))
    assert run_rules(con, rules(missed_schedule={}), since=3 * H) == []
    con.execute("UPDATE extract_state SET last_success_at = ?", [NOW])
    assert len(run_rules(con, rules(missed_schedule={}), since=3 * H)) == 1


# -- new_failure_cause ---------------------------------------------------------------------


def test_new_failure_cause_is_disabled_with_a_note_without_the_view(con):
    out = evaluate(con, rules(new_failure_cause={}), now=NOW)
    assert out.alerts == []
    assert out.notes and "no failure_causes view" in out.notes[0]


def test_new_failure_cause_alerts_signatures_first_seen_in_the_window(con):
    con.execute(
        "CREATE TABLE failure_causes AS SELECT * FROM (VALUES"
        " ('sig-old', 'AnalysisException: table not found', ?::TIMESTAMPTZ),"
        " ('sig-new', 'OutOfMemoryError in a stage failure', ?::TIMESTAMPTZ)"
        ") AS t (signature, title, first_seen)",
        [NOW - 48 * H, NOW - 2 * H],
    )
    out = evaluate(con, rules(new_failure_cause={}), now=NOW)
    assert out.notes == []
    assert [(a.key, a.title, a.fired_at) for a in out.alerts] == [
        (
            "new_failure_cause:sig-new",
            "new failure cause: OutOfMemoryError in a stage failure",
            NOW - 2 * H,
        )
    ]


# -- the rules file ------------------------------------------------------------------------

GOOD = """\
since = "12h"
max_per_call = 20
webhooks = ["https://hooks.slack.com/services/T0/B0/xyz", { url = "https://example.com/hook", format = "json" }]

[rules.failure_streak]
n = 3
jobs = ["nightly_*", 42]
cooldown = "1h"

[rules.failed_run]
enabled = true
tags = { team = "data" }

[rules.missed_schedule]
grace = "15m"
"""


def test_a_rules_file_sets_every_rule_and_the_webhooks():
    config = parse_rules(GOOD)
    assert config.since == 12 * H
    assert config.max_per_call == 20
    assert config.rules.failure_streak.n == 3
    assert config.rules.failure_streak.jobs == ["nightly_*", 42]
    assert config.rules.failure_streak.cooldown == H
    assert config.rules.failed_run.enabled
    assert config.rules.missed_schedule.grace == 15 * MIN
    assert config.rules.duration_regression.factor == 1.5  # untouched defaults
    assert [(w.url.split("/")[2], w.format) for w in config.webhook_list()] == [
        ("hooks.slack.com", None),
        ("example.com", "json"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[rules.failure_streak]\nn = 3\nlength = 4\n",
            "line 3: unknown key 'rules.failure_streak.length'",
        ),
        ("since = '1h'\n\n[rules.flaky_jobs]\nn = 1\n", "line 3: unknown rule 'flaky_jobs'"),
        ("[rules.cost_spike]\nfactor = 'big'\n", "line 2: rules.cost_spike.factor:"),
        ("[rules.missed_schedule]\ngrace = '30 minutes'\n", "line 2: rules.missed_schedule.grace:"),
        ("webhook = 'https://x'\n", "line 1: unknown key 'webhook'"),
        ("[rules.failure_streak\nn = 3\n", "not valid TOML"),
        ("[rules.stuck_run]\nseverity = 'panic'\n", "line 2: rules.stuck_run.severity:"),
    ],
)
def test_a_bad_rules_file_is_refused_with_its_line(text, message):
    with pytest.raises(UsageError) as exc:
        parse_rules(text, "rules.toml")
    assert message in str(exc.value)
    assert str(exc.value).startswith("rules.toml")


def test_the_readme_rules_file_example_is_valid():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Alerts", 1)[1].split("\n### ", 1)[0]
    (example,) = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    config = parse_rules(example)
    assert config.rules.failure_streak.n == 3
    assert len(config.webhook_list()) == 2
