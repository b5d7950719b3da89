"""Alert rules on a simulated workspace: jobs made to fail, slow down, cost more, hang or miss
their schedule, then extracted; each rule finds exactly what was done to its job."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest

from extractor.analytics.alerts import Rules, evaluate
from extractor.analytics.materialize import refresh_materialized
from extractor.analytics.notify import Destination, deliver
from extractor.analytics.views import ensure_views
from tests.conftest import MakeSim

H = 3600.0


def extract(sim) -> None:  # type: ignore[no-untyped-def]
    """An extract, then the views and their tables, as `jobruns extract` leaves the store."""
    sim.extract()
    with sim.store.connect() as con:
        if not ensure_views(con):
            refresh_materialized(con, None)


def job_named(sim, name):  # type: ignore[no-untyped-def]
    return next(j for j in sim.workspace.jobs.values() if j.name == name)


@pytest.mark.slow
def test_each_rule_finds_what_was_done_to_its_job(make_sim: MakeSim):
    sim = make_sim(11, runs=800, jobs=8)
    extract(sim)
    failing = job_named(sim, "inventory_snapshot")  # every 3 h
    slower = job_named(sim, "hourly_events_compaction")  # every 3 h
    hanging = job_named(sim, "regional_rollup")  # every 12 h
    unscheduled = job_named(sim, "nightly_orders_etl")  # every 8 h, on the hour
    with duckdb.connect(str(sim.db), read_only=True) as con:
        p95_ms = con.execute(
            "SELECT quantile_cont(duration_ms, 0.95) FROM int_run_facts"
            " WHERE job_id = ? AND outcome = 'succeeded'",
            [hanging.job_id],
        ).fetchone()[0]
    changed_at = sim.now()
    with sim.server.lock:
        failing.cancel_p = 0.0
        for task in failing.tasks:
            task.fail_p, task.max_retries = 1.0, 0
        slower.timeout_seconds = 0
        for task in slower.tasks:
            task.base_secs *= 4
            task.timeout_seconds, task.fail_p = 0, 0.0
        for task in hanging.tasks:
            task.base_secs *= 1000
        # Due at :40 every hour; its runs start at most 10 minutes after 00:00, 08:00, 16:00.
        unscheduled.cron = "0 40 * * * ?"
    # 8 hours: the failing and the slower job run about three times (every 3 h); the hanging
    # job's run started at the change and is still going (the simulator ends it after ~9 h).
    for _ in range(16):
        sim.advance(H / 2)
    extract(sim)
    now = sim.now()
    rules = Rules.model_validate(
        {"missed_schedule": {"grace": "10m"}, "cost_spike": {"min_cost": 0}}
    )
    with duckdb.connect(str(sim.db), read_only=True) as con:
        found = evaluate(con, rules, now=now, since=now - changed_at)
        new_runs = {  # finished runs started since the change, and the active ones
            (job_id, active): [
                r[0]
                for r in con.execute(
                    "SELECT run_id FROM runs WHERE job_id = ? AND start_time > ?"
                    " AND is_active = ? ORDER BY start_time",
                    [job_id, changed_at, active],
                ).fetchall()
            ]
            for job_id in (failing.job_id, slower.job_id, hanging.job_id)
            for active in (False, True)
        }
    by_rule: dict[str, list] = {}
    for a in found.alerts:
        by_rule.setdefault(a.rule, []).append(a)

    streaks = [a for a in by_rule["failure_streak"] if a.job_id == failing.job_id]
    assert len(streaks) == 1  # one alert per streak, however long it grew
    assert streaks[0].details["first_run_id"] == new_runs[failing.job_id, False][0]
    assert streaks[0].run_id == new_runs[failing.job_id, False][1]  # it fired at n = 2
    assert streaks[0].details["streak_length"] == len(new_runs[failing.job_id, False]) >= 2

    slow = {a.run_id for a in by_rule["duration_regression"] if a.job_id == slower.job_id}
    # Every 4x run (a run that started before the change may have ended slow in the window too).
    assert set(new_runs[slower.job_id, False]) <= slow and len(new_runs[slower.job_id, False]) >= 2
    costly = {a.run_id for a in by_rule["cost_spike"] if a.job_id == slower.job_id}
    assert new_runs[slower.job_id, False][0] in costly  # the first 4x run is over 2 x its 5 before

    stuck = [a for a in by_rule["stuck_run"] if a.job_id == hanging.job_id]
    assert [a.run_id for a in stuck] == new_runs[hanging.job_id, True]
    assert stuck[0].details["running_for_ms"] > 2 * p95_ms

    missed = [
        a.details["due_at"] for a in by_rule["missed_schedule"] if a.job_id == unscheduled.job_id
    ]
    # Hand-counted: every hh:40 whose 10 minutes of grace ended after the change, up to now.
    first = changed_at.replace(minute=40, second=0, microsecond=0)
    if first + timedelta(minutes=10) <= changed_at:
        first += timedelta(hours=1)
    expected = []
    due = first
    while due + timedelta(minutes=10) <= now:
        expected.append(due.isoformat())
        due += timedelta(hours=1)
    assert missed == expected and len(expected) >= 6

    # Printed (stdout destination) once: a second evaluation and delivery sends nothing new.
    stdout = Destination(None, "json")
    (first_call,) = deliver(sim.store, found.alerts, [stdout], now=now)
    assert len(first_call.sent) == len(found.alerts)
    with duckdb.connect(str(sim.db), read_only=True) as con:
        again = evaluate(con, rules, now=now, since=now - changed_at)
    (second_call,) = deliver(sim.store, again.alerts, [stdout], now=now)
    assert (second_call.new, second_call.sent) == (0, [])

    # new_failure_cause, with a failure_causes table standing in for the view of failure causes:
    # here each failed job run is a cause of its own, first seen when its first task failed.
    with sim.store.transaction() as con:
        con.execute("DROP VIEW IF EXISTS failure_causes")
        con.execute(
            "CREATE TABLE failure_causes AS SELECT md5(CAST(job_run_id AS VARCHAR)) AS signature,"
            " 'run ' || job_run_id AS title, min(end_time) AS first_seen"
            " FROM tasks WHERE result_state = 'FAILED' GROUP BY ALL"
        )
    with duckdb.connect(str(sim.db), read_only=True) as con:
        causes = evaluate(con, rules, now=now, since=now - changed_at)
        fresh = con.execute(
            "SELECT signature FROM failure_causes WHERE first_seen > ? ORDER BY first_seen",
            [changed_at],
        ).fetchall()
    got = [a.key for a in causes.alerts if a.rule == "new_failure_cause"]
    assert got == [f"new_failure_cause:{s}" for (s,) in fresh] and got
