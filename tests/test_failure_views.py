"""The failure-cause views on a small hand-built store whose answers are worked out by hand."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import duckdb
import pytest

from tests.test_views import MIN, NOW, T0, add_job, add_run, add_task, all_rows, insert

DAY = 24 * 60 * MIN


@pytest.fixture
def con(views_con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    return views_con


def add_error(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    job_run_id: int,
    *,
    job_id: int,
    key: str,
    failed_at: datetime,
    signature: str,
    iteration: bool = False,
) -> None:
    insert(
        con,
        "task_errors",
        workspace_id="ws1",
        run_id=run_id,
        job_run_id=job_run_id,
        job_id=job_id,
        task_key=key,
        is_iteration=iteration,
        failed_at=failed_at,
        status="ok",
        error=f"error of {run_id}",
        signature=signature,
        title=f"title {signature}",
        signature_version=1,
        fetched_at=NOW,
    )


def failures_store(con: duckdb.DuckDBPyConnection) -> None:
    """Three runs on i3.xlarge job clusters (3 DBU/h x $0.15 = $0.45 an hour, split by time):

    - job 1, run 100: task a fails after 40 min ($0.30, cause A), its retry succeeds (20 min);
    - job 2, run 200, a day later: task b fails after 60 min ($0.45, cause A);
    - job 2, run 300, 2 h before now: task b fails after 30 min ($0.225, cause B) and one of its
      for-each iterations fails too (cause B; an iteration's cost is in its task's row).
    """
    add_job(con, 1, "ingest")
    add_job(con, 2, "report")
    add_run(con, 100)
    add_task(con, 101, 100, key="a", minutes=40, result="FAILED")
    add_task(con, 102, 100, key="a", attempt=1, start=T0 + 40 * MIN, minutes=20)
    add_error(con, 101, 100, job_id=1, key="a", failed_at=T0 + 40 * MIN, signature="A")
    add_run(con, 200, job_id=2, start=T0 + DAY, result="FAILED")
    add_task(con, 201, 200, key="b", job_id=2, start=T0 + DAY, result="FAILED", cluster_id="c2")
    add_error(con, 201, 200, job_id=2, key="b", failed_at=T0 + DAY + 60 * MIN, signature="A")
    late = NOW - 120 * MIN
    add_run(con, 300, job_id=2, start=late, minutes=30, result="FAILED")
    add_task(
        con, 301, 300, key="b", job_id=2, start=late, minutes=30, result="FAILED", cluster_id="c3"
    )
    add_error(con, 301, 300, job_id=2, key="b", failed_at=late + 30 * MIN, signature="B")
    add_error(
        con, 401, 300, job_id=2, key="b_iter", failed_at=late + 20 * MIN, signature="B",
        iteration=True,
    )  # fmt: skip


def _by(rows: list[dict[str, Any]], *keys: str) -> dict[Any, dict[str, Any]]:
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in rows}


def test_failure_causes_count_jobs_tasks_cost_and_recoveries(con):
    failures_store(con)
    causes = _by(all_rows(con, "SELECT * FROM failure_causes"), "signature")
    a, b = causes["A"], causes["B"]
    assert (a["failures"], a["jobs"], a["tasks"], a["recovered"]) == (2, 2, 2, 1)
    assert a["wasted_cost"] == pytest.approx(0.30 + 0.45)
    assert a["first_seen"] == T0 + 40 * MIN and a["last_seen"] == T0 + DAY + 60 * MIN
    assert a["title"] == "title A" and a["example_error"] == "error of 201"
    assert (b["failures"], b["jobs"], b["tasks"], b["recovered"]) == (2, 1, 2, 0)
    assert b["wasted_cost"] == pytest.approx(0.225)
    assert (a["rank_by_cost"], b["rank_by_cost"]) == (1, 2)


def test_failure_causes_per_day_and_per_job(con):
    failures_store(con)
    daily = _by(all_rows(con, "SELECT * FROM failure_causes_daily"), "failure_date", "signature")
    assert {k: v["failures"] for k, v in daily.items()} == {
        (date(2025, 6, 2), "A"): 1,
        (date(2025, 6, 3), "A"): 1,
        (date(2025, 6, 10), "B"): 2,
    }
    per_job = _by(all_rows(con, "SELECT * FROM job_failure_causes"), "job_id", "signature")
    assert {k: v["failures"] for k, v in per_job.items()} == {(1, "A"): 1, (2, "A"): 1, (2, "B"): 2}
    assert per_job[(2, "B")]["share_of_job_failures"] == pytest.approx(2 / 3)
    assert per_job[(2, "B")]["job_name"] == "report"
    assert per_job[(1, "A")]["recovered"] == 1


def test_new_failure_causes_are_those_first_seen_in_the_last_7_days(con):
    failures_store(con)
    new = all_rows(con, "SELECT * FROM new_failure_causes")
    assert [(r["signature"], r["new_in_24h"], r["failures"]) for r in new] == [("B", True, 2)]


def test_failures_of_deleted_runs_are_not_counted(con):
    failures_store(con)
    con.execute("UPDATE runs SET deleted_at = ? WHERE run_id = 300", [NOW])
    causes = _by(all_rows(con, "SELECT * FROM failure_causes"), "signature")
    assert set(causes) == {"A"}
