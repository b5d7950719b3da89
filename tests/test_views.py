"""The analytics views against small hand-built stores whose answers are worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from extractor.analytics.connect import connect
from extractor.analytics.materialize import refresh_materialized
from extractor.analytics.sqlfiles import list_views, materialized, sql_dir
from extractor.analytics.views import create_views
from extractor.schema import create_tables

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.fixture
def con(views_con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    return views_con


def insert(con: duckdb.DuckDBPyConnection, table: str, **values: Any) -> None:
    names = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    con.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(values.values()))


def add_run(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    *,
    job_id: int = 1,
    ws: str = "ws1",
    start: datetime = T0,
    minutes: float = 60,
    result: str | None = "SUCCESS",
    lcs: str = "TERMINATED",
    active: bool = False,
    **extra: Any,
) -> None:
    row: dict[str, Any] = {
        "workspace_id": ws,
        "run_id": run_id,
        "job_id": job_id,
        "run_name": f"job {job_id}",
        "run_type": "JOB_RUN",
        "trigger": "PERIODIC",
        "creator_user_name": "ana@example.com",
        "start_time": start,
        "end_time": None if active else start + minutes * MIN,
        "life_cycle_state": "RUNNING" if active else lcs,
        "result_state": None if active else result,
        "is_active": active,
        "duration_ms": None if active else int(minutes * 60_000),
        "attempt_number": 0,
        "repair_count": 0,
        "extracted_at": NOW,
    }
    row.update(extra)
    insert(con, "runs", **row)


def add_task(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    job_run_id: int,
    *,
    key: str = "t",
    job_id: int = 1,
    ws: str = "ws1",
    start: datetime = T0,
    minutes: float = 60,
    result: str | None = "SUCCESS",
    attempt: int = 0,
    cluster_id: str | None = "c1",
    kind: str = "job_cluster",
    node: str | None = "i3.xlarge",
    workers: int | None = 2,
    active: bool = False,
    **extra: Any,
) -> None:
    row: dict[str, Any] = {
        "workspace_id": ws,
        "run_id": run_id,
        "job_run_id": job_run_id,
        "job_id": job_id,
        "task_key": key,
        "attempt_number": attempt,
        "start_time": start,
        "end_time": None if active else start + minutes * MIN,
        "setup_duration_ms": 0,
        "execution_duration_ms": None if active else int(minutes * 60_000),
        "duration_ms": None if active else int(minutes * 60_000),
        "life_cycle_state": "RUNNING" if active else "TERMINATED",
        "result_state": None if active else result,
        "is_active": active,
        "cluster_id": cluster_id,
        "compute_kind": kind,
        "job_cluster_key": "main" if kind == "job_cluster" else None,
        "node_type_id": node,
        "driver_node_type_id": node,
        "num_workers": workers,
        "task_type": "notebook_task",
    }
    row.update(extra)
    insert(con, "tasks", **row)


def add_job(con: duckdb.DuckDBPyConnection, job_id: int, name: str, **extra: Any) -> None:
    row: dict[str, Any] = {
        "workspace_id": "ws1",
        "job_id": job_id,
        "name": name,
        "creator_user_name": "ana@example.com",
        "run_as_user_name": "sp-etl",
        "extracted_at": NOW,
    }
    row.update(extra)
    insert(con, "jobs", **row)


def one(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> dict[str, Any]:
    rows = all_rows(con, sql, *params)
    assert len(rows) == 1, rows
    return rows[0]


def all_rows(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> list[dict[str, Any]]:
    # The rows were written straight into the tables: rebuild the materialized views first.
    refresh_materialized(con, None)
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# --- cost ------------------------------------------------------------------------------------


def test_shared_job_cluster_is_costed_once_and_split_across_its_tasks_by_time(con):
    # 1 driver + 2 workers i3.xlarge at 1.0 DBU/h for exactly 1 h = 3 DBU; x $0.15 = $0.45.
    add_run(con, 100)
    add_task(con, 101, 100, key="a", minutes=40)
    add_task(con, 102, 100, key="b", start=T0 + 40 * MIN, minutes=20)
    run = one(con, "SELECT * FROM run_cost")
    assert run["dbus_est"] == pytest.approx(3.0)
    assert run["cost_est"] == pytest.approx(0.45)
    assert run["cost"] == pytest.approx(0.45)
    assert run["cost_source"] == "estimate"
    tasks = all_rows(con, "SELECT task_key, cost_est, cost FROM task_cost ORDER BY task_key")
    assert [t["task_key"] for t in tasks] == ["a", "b"]
    assert tasks[0]["cost_est"] == pytest.approx(0.30)
    assert tasks[1]["cost_est"] == pytest.approx(0.15)
    assert tasks[0]["cost"] == pytest.approx(0.30)


def test_each_cluster_instance_of_a_run_is_costed_separately(con):
    # A repair gets a new cluster: 1 h on c1 and 30 min on c2, both 3 DBU/h -> 3 + 1.5 DBU.
    add_run(con, 100, minutes=24 * 60)
    add_task(con, 101, 100, key="a", result="FAILED")
    add_task(
        con,
        102,
        100,
        key="a",
        attempt=1,
        cluster_id="c2",
        start=T0 + 20 * 60 * MIN,
        minutes=30,
        repair_id=7,
    )
    run = one(con, "SELECT dbus_est, cost_est FROM run_cost")
    assert run["dbus_est"] == pytest.approx(4.5)
    assert run["cost_est"] == pytest.approx(4.5 * 0.15)


def test_autoscale_cluster_assumes_midpoint_workers_and_photon_multiplies_dbus(con):
    # autoscale 2..6 -> 4 workers; (1 + 4) x 1.0 DBU/h x 2.9 (Photon, AWS jobs compute) x 0.5 h
    # = 7.25 DBU -> x $0.15 = $1.0875.
    add_run(con, 100, minutes=30)
    add_task(
        con,
        101,
        100,
        minutes=30,
        kind="new_cluster",
        workers=None,
        autoscale_min_workers=2,
        autoscale_max_workers=6,
        runtime_engine="PHOTON",
    )
    inst = one(
        con, "SELECT workers_est, workers_basis, dbus_est, cost_est FROM int_cluster_instances"
    )
    assert inst["workers_est"] == 4
    assert inst["workers_basis"] == "autoscale_midpoint"
    assert inst["dbus_est"] == pytest.approx(7.25)
    assert inst["cost_est"] == pytest.approx(1.0875)


def test_photon_on_an_all_purpose_cluster_uses_the_all_purpose_factor(con):
    # 1 driver + 2 workers at 1.0 DBU/h x 2.0 (Photon, AWS all-purpose) x 1 h = 6 DBU x $0.55.
    add_run(con, 100)
    add_task(
        con,
        101,
        100,
        kind="existing_cluster",
        cluster_id="ap-1",
        existing_cluster_id="ap-1",
        runtime_engine="PHOTON",
    )
    assert one(con, "SELECT cost_est FROM run_cost")["cost_est"] == pytest.approx(3.3)


def test_existing_cluster_uses_all_purpose_price_for_busy_time(con):
    # Node types known for the all-purpose cluster: 3 DBU/h x 1 h x $0.55.
    add_run(con, 100)
    add_task(con, 101, 100, kind="existing_cluster", cluster_id="ap-1", existing_cluster_id="ap-1")
    assert one(con, "SELECT cost_est FROM run_cost")["cost_est"] == pytest.approx(1.65)


def add_cluster(con: duckdb.DuckDBPyConnection, cluster_id: str = "ap-1", **extra: Any) -> None:
    row: dict[str, Any] = {
        "workspace_id": "ws1",
        "cluster_id": cluster_id,
        "node_type_id": "i3.xlarge",
        "driver_node_type_id": "i3.xlarge",
        "num_workers": 2,
        "runtime_engine": "STANDARD",
        "cluster_source": "UI",
        "state": "RUNNING",
        "fetched_at": NOW,
    }
    row.update(extra)
    insert(con, "clusters", **row)


def add_all_purpose_task(con: duckdb.DuckDBPyConnection, run_id: int, job_run_id: int) -> None:
    # As the Jobs API gives it: the cluster's id, no node types.
    add_task(
        con,
        run_id,
        job_run_id,
        kind="existing_cluster",
        cluster_id="ap-1",
        existing_cluster_id="ap-1",
        node=None,
        workers=None,
    )


def test_all_purpose_task_takes_node_types_from_the_clusters_row(con):
    # clusters/get: i3.xlarge driver + 2 workers at 1.0 DBU/h = 3 DBU/h x 1 h busy x $0.55.
    add_run(con, 100)
    add_all_purpose_task(con, 101, 100)
    add_cluster(con)
    inst = one(con, "SELECT node_type_id, workers_basis, cost_est FROM int_cluster_instances")
    assert inst["node_type_id"] == "i3.xlarge" and inst["workers_basis"] == "fixed"
    run = one(con, "SELECT cost_est, cost_null_reason FROM run_cost")
    assert run["cost_est"] == pytest.approx(1.65) and run["cost_null_reason"] is None


def test_autoscaled_photon_all_purpose_cluster_uses_midpoint_and_photon(con):
    # autoscale 1..3 -> 2 workers; (1 + 2) x 1.0 DBU/h x 2.0 (Photon all-purpose) x 1 h x $0.55.
    add_run(con, 100)
    add_all_purpose_task(con, 101, 100)
    add_cluster(
        con,
        num_workers=None,
        autoscale_min_workers=1,
        autoscale_max_workers=3,
        runtime_engine="PHOTON",
    )
    inst = one(con, "SELECT workers_est, workers_basis, is_photon FROM int_cluster_instances")
    assert inst == {"workers_est": 2, "workers_basis": "autoscale_midpoint", "is_photon": True}
    assert one(con, "SELECT cost_est FROM run_cost")["cost_est"] == pytest.approx(3.3)


def test_all_purpose_cluster_the_api_refused_keeps_node_types_unknown(con):
    add_run(con, 100)
    add_all_purpose_task(con, 101, 100)
    add_cluster(
        con, node_type_id=None, driver_node_type_id=None, num_workers=None, error="not found"
    )
    run = one(con, "SELECT cost_est, cost_null_reason FROM run_cost")
    assert run["cost_est"] is None
    assert run["cost_null_reason"] == "all-purpose cluster: node types unknown"


def test_partial_refresh_reads_the_clusters_table(con):
    add_run(con, 100)
    add_all_purpose_task(con, 101, 100)
    refresh_materialized(con, None)
    add_cluster(con)
    refresh_materialized(con, [("ws1", 100)])
    row = con.execute("SELECT cost_est FROM run_cost").fetchall()
    assert row[0][0] == pytest.approx(1.65)


def test_serverless_run_without_billing_has_null_cost_and_a_reason(con):
    add_run(con, 100)
    add_task(con, 101, 100, kind="serverless", cluster_id=None, node=None, workers=None)
    run = one(con, "SELECT cost, cost_est, cost_source, cost_null_reason FROM run_cost")
    assert run["cost"] is None and run["cost_est"] is None and run["cost_source"] is None
    assert "serverless" in run["cost_null_reason"]


def test_unknown_node_type_gives_null_cost_naming_the_node(con):
    add_run(con, 100)
    add_task(con, 101, 100, node="x9.mega")
    assert one(con, "SELECT cost_null_reason FROM run_cost")["cost_null_reason"] == (
        "node type not in rate card: x9.mega"
    )


def test_for_each_iterations_are_costed_on_the_job_cluster_of_their_run(con):
    # list (on c1, 0:00-0:20) then a for-each whose 2 iterations run on c1 (0:20-0:40 each,
    # in parallel). Cluster c1 is up 40 min: 3 DBU/h x 2/3 h = 2 DBU = $0.30; elapsed 20+20+20 min.
    add_run(con, 100, minutes=40)
    add_task(con, 101, 100, key="list", minutes=20)
    add_task(
        con,
        102,
        100,
        key="each",
        start=T0 + 20 * MIN,
        minutes=20,
        kind=None,
        cluster_id=None,
        node=None,
        workers=None,
        task_type="for_each_task",
    )
    for i, result in ((201, "SUCCESS"), (202, "FAILED")):
        insert(
            con,
            "task_iterations",
            workspace_id="ws1",
            run_id=i,
            parent_task_run_id=102,
            job_run_id=100,
            job_id=1,
            task_key="each_it",
            start_time=T0 + 20 * MIN,
            end_time=T0 + 40 * MIN,
            duration_ms=20 * 60_000,
            life_cycle_state="TERMINATED",
            result_state=result,
            is_active=False,
            cluster_id="c1",
            raw='{"job_cluster_key": "main"}',
        )
    assert one(con, "SELECT cost_est FROM run_cost")["cost_est"] == pytest.approx(0.30)
    each = one(con, "SELECT * FROM foreach_tasks")
    assert each["iterations"] == 2 and each["failed_iterations"] == 1
    assert each["iteration_failure_rate"] == pytest.approx(0.5)
    assert each["cost_est"] == pytest.approx(0.20)


def test_an_iterations_compute_is_read_from_its_raw_json(con):
    # One iteration of each kind its JSON can name; the run's tasks say nothing of them.
    add_run(con, 100)
    add_task(con, 101, 100, key="each", kind=None, cluster_id=None, node=None, workers=None)
    raws = {
        201: '{"job_cluster_key": "main", "new_cluster": {"node_type_id": "ignored"}}',
        202: '{"new_cluster": {"spark_version": "15.4.x", "node_type_id": "m5.xlarge",'
        ' "autoscale": {"min_workers": 2, "max_workers": 5}, "runtime_engine": "PHOTON"}}',
        203: '{"new_cluster": {"node_type_id": "r5.large", "driver_node_type_id": "m5.large",'
        ' "num_workers": 3}}',
        204: '{"existing_cluster_id": "0601-abc"}',
        205: "{}",
    }
    for run_id, raw in raws.items():
        insert(
            con,
            "task_iterations",
            workspace_id="ws1",
            run_id=run_id,
            parent_task_run_id=101,
            job_run_id=100,
            job_id=1,
            task_key="each_it",
            start_time=T0,
            end_time=T0 + 10 * MIN,
            duration_ms=10 * 60_000,
            life_cycle_state="TERMINATED",
            result_state="SUCCESS",
            is_active=False,
            raw=raw,
        )
    columns = (
        "compute_kind, job_cluster_key, existing_cluster_id, node_type_id, driver_node_type_id,"
        " workers_est, workers_basis, runtime_engine"
    )
    got = con.execute(f"SELECT run_id, {columns} FROM stg_task_iterations ORDER BY run_id")
    assert got.fetchall() == [
        (201, "job_cluster", "main", None, "ignored", "ignored", None, None, None),
        (
            202,
            "new_cluster",
            None,
            None,
            "m5.xlarge",
            "m5.xlarge",
            3.5,
            "autoscale_midpoint",
            "PHOTON",
        ),
        (203, "new_cluster", None, None, "r5.large", "m5.large", 3.0, "fixed", None),
        (204, "existing_cluster", None, "0601-abc", None, None, None, None, None),
        (205, "serverless", None, None, None, None, None, None, None),
    ]


def test_job_cost_ranks_top_spenders_per_workspace(con):
    add_job(con, 1, "cheap")
    add_job(con, 2, "dear")
    add_run(con, 100, job_id=1, minutes=60)
    add_task(con, 101, 100, job_id=1)
    add_run(con, 200, job_id=2, minutes=120)
    add_task(con, 201, 200, job_id=2, minutes=120, cluster_id="c2")
    rows = all_rows(con, "SELECT job_name, cost, spend_rank FROM job_cost")
    assert [(r["job_name"], r["spend_rank"]) for r in rows] == [("dear", 1), ("cheap", 2)]
    assert rows[0]["cost"] == pytest.approx(0.90)


# --- reliability -----------------------------------------------------------------------------


def test_job_reliability_classifies_every_outcome(con):
    add_job(con, 1, "etl")
    outcomes = [
        ("SUCCESS", "TERMINATED"),
        ("SUCCESS_WITH_FAILURES", "TERMINATED"),
        ("FAILED", "TERMINATED"),
        ("TIMEDOUT", "TERMINATED"),
        (None, "INTERNAL_ERROR"),
        ("CANCELED", "TERMINATED"),
        (None, "SKIPPED"),
        ("UPSTREAM_FAILED", "TERMINATED"),
    ]
    for n, (result, lcs) in enumerate(outcomes):
        add_run(con, 100 + n, result=result, lcs=lcs, minutes=10 * (n + 1))
    add_run(con, 200, active=True)
    add_run(con, 300, deleted_at=NOW)  # deleted: not counted
    r = one(con, "SELECT * FROM job_reliability")
    assert (r["runs"], r["active_runs"], r["terminal_runs"]) == (9, 1, 8)
    assert (r["succeeded"], r["failed"], r["canceled"], r["skipped"]) == (2, 3, 1, 2)
    assert r["success_rate"] == pytest.approx(2 / 8)
    assert r["job_name"] == "etl"
    # Durations are of succeeded runs only: 10 and 20 minutes.
    assert r["p50_duration_ms"] == pytest.approx(15 * 60_000)
    assert r["p95_duration_ms"] == pytest.approx((10 + 0.95 * 10) * 60_000)


def test_success_rate_is_null_without_terminal_runs(con):
    add_run(con, 100, active=True)
    assert one(con, "SELECT success_rate FROM job_reliability")["success_rate"] is None


def test_runs_of_unknown_jobs_and_other_workspaces_are_kept_apart(con):
    # Submit runs carry a job_id jobs does not know; the same job_id in two workspaces is two jobs.
    add_run(con, 100, job_id=9, run_type="SUBMIT_RUN", run_name="adhoc")
    add_run(con, 100, job_id=9, ws="ws2", result="FAILED")
    rows = all_rows(
        con,
        "SELECT workspace_id, job_name, succeeded, failed FROM job_reliability "
        "ORDER BY workspace_id",
    )
    assert rows == [
        {"workspace_id": "ws1", "job_name": "adhoc", "succeeded": 1, "failed": 0},
        {"workspace_id": "ws2", "job_name": "job 9", "succeeded": 0, "failed": 1},
    ]


def test_job_reliability_daily_groups_by_utc_start_day(con):
    add_run(con, 100, start=datetime(2025, 6, 2, 23, 30, tzinfo=UTC))
    add_run(con, 101, start=datetime(2025, 6, 3, 0, 30, tzinfo=UTC), result="FAILED")
    rows = all_rows(
        con, "SELECT run_date, succeeded, failed FROM job_reliability_daily ORDER BY run_date"
    )
    assert [(str(r["run_date"]), r["succeeded"], r["failed"]) for r in rows] == [
        ("2025-06-02", 1, 0),
        ("2025-06-03", 0, 1),
    ]


def repaired_run(con: duckdb.DuckDBPyConnection) -> None:
    """Task a fails, its retry fails, a repair a day later succeeds (like the API sample)."""
    repair_start = T0 + 24 * 60 * MIN
    add_run(con, 100, minutes=24 * 60 + 30, repair_count=1)
    add_task(con, 101, 100, key="a", minutes=30, result="FAILED", repair_id=0)
    add_task(
        con,
        102,
        100,
        key="a",
        attempt=1,
        start=T0 + 30 * MIN,
        minutes=30,
        result="FAILED",
        repair_id=0,
    )
    add_task(
        con,
        103,
        100,
        key="a",
        attempt=2,
        start=repair_start,
        minutes=30,
        cluster_id="c2",
        repair_id=7,
    )
    insert(
        con,
        "repair_history",
        workspace_id="ws1",
        job_run_id=100,
        repair_id=0,
        type="ORIGINAL",
        start_time=T0,
        end_time=T0 + 60 * MIN,
        result_state="FAILED",
        life_cycle_state="TERMINATED",
    )
    insert(
        con,
        "repair_history",
        workspace_id="ws1",
        job_run_id=100,
        repair_id=7,
        type="REPAIR",
        start_time=repair_start,
        end_time=repair_start + 30 * MIN,
        result_state="SUCCESS",
        life_cycle_state="TERMINATED",
    )


def test_retries_and_repairs_count_attempts_and_time_to_recover(con):
    repaired_run(con)
    r = one(con, "SELECT * FROM retries_and_repairs")
    assert (r["retried_tasks"], r["repairs"], r["repaired_tasks"], r["rerun_attempts"]) == (
        1,
        1,
        1,
        2,
    )
    # First failure ends at 0:30; the repair ends at 24:30.
    assert r["time_to_recover_ms"] == 24 * 3_600_000
    # c1 up 1 h (3 DBU, $0.45) split 50/50 between attempts 0 and 1; c2 30 min ($0.225).
    assert r["retry_cost"] == pytest.approx(0.225)
    assert r["repair_cost"] == pytest.approx(0.225)
    rel = one(con, "SELECT repairs, retried_tasks, succeeded FROM job_reliability")
    assert (rel["repairs"], rel["retried_tasks"], rel["succeeded"]) == (1, 1, 1)


def test_wasted_spend_counts_failed_runs_and_rerun_attempts(con):
    repaired_run(con)  # succeeded in the end: its two failed attempts ($0.45) are waste
    add_run(con, 200, start=T0 + 2 * 24 * 60 * MIN, result="FAILED")
    add_task(con, 201, 200, start=T0 + 2 * 24 * 60 * MIN, result="FAILED", cluster_id="c3")
    w = one(con, "SELECT * FROM wasted_spend")
    assert (w["failed_runs"], w["rerun_task_attempts"]) == (1, 2)
    assert w["failed_run_cost"] == pytest.approx(0.45)
    assert w["rerun_task_cost"] == pytest.approx(0.45)
    assert w["wasted_cost"] == pytest.approx(0.90)
    assert w["wasted_share"] == pytest.approx(0.90 / (0.675 + 0.45))


def test_flaky_task_fails_then_succeeds_on_retry(con):
    add_run(con, 100)
    add_task(con, 101, 100, key="a", minutes=10, result="FAILED")
    add_task(con, 102, 100, key="a", attempt=1, start=T0 + 10 * MIN, minutes=10)
    add_run(con, 200, start=T0 + 24 * 60 * MIN)
    add_task(con, 201, 200, key="a", start=T0 + 24 * 60 * MIN, minutes=10, cluster_id="c2")
    f = one(con, "SELECT * FROM flaky_tasks")
    assert (f["task_key"], f["executions"], f["flaky_executions"], f["attempts"]) == ("a", 2, 1, 3)
    assert f["flake_rate"] == pytest.approx(0.5)


def test_job_level_retry_run_counts_with_its_original_for_flakiness(con):
    add_run(con, 100, result="FAILED")
    add_task(con, 100, 100, key="legacy", result="FAILED")
    add_run(
        con,
        101,
        start=T0 + 70 * MIN,
        attempt_number=1,
        original_attempt_run_id=100,
        trigger="RETRY",
    )
    add_task(con, 101, 101, key="legacy", start=T0 + 70 * MIN, cluster_id="c2")
    f = one(con, "SELECT executions, flaky_executions FROM flaky_tasks")
    assert (f["executions"], f["flaky_executions"]) == (1, 1)
    assert one(con, "SELECT job_retry_runs FROM job_reliability")["job_retry_runs"] == 1


# --- durations, stuck runs, queues -----------------------------------------------------------


def test_duration_percentiles_per_job_and_task(con):
    for n, minutes in enumerate((10, 20, 30, 40, 50)):
        start = T0 + n * 24 * 60 * MIN
        add_run(con, 100 + n, start=start, minutes=minutes)
        add_task(con, 200 + n, 100 + n, key="a", start=start, minutes=minutes, cluster_id=f"c{n}")
    job = one(con, "SELECT * FROM job_duration_stats")
    assert job["runs"] == 5
    assert job["p50_duration_ms"] == 30 * 60_000
    assert job["p90_duration_ms"] == pytest.approx(46 * 60_000)
    assert job["p95_duration_ms"] == pytest.approx(48 * 60_000)
    task = one(con, "SELECT * FROM task_duration_stats")
    assert (task["task_key"], task["p50_duration_ms"]) == ("a", 30 * 60_000)


def test_duration_regression_compares_last_7_days_with_the_28_before(con):
    # Baseline runs of 10 min 10-20 days before now; recent ones of 20 min in the last 7 days.
    for n in range(3):
        add_run(con, 100 + n, start=NOW - (10 + n) * 24 * 60 * MIN, minutes=10)
        add_run(con, 200 + n, start=NOW - (1 + n) * 24 * 60 * MIN, minutes=20)
    add_run(con, 300, start=NOW - 40 * 24 * 60 * MIN, minutes=500)  # outside both windows
    r = one(con, "SELECT * FROM duration_regressions WHERE task_key IS NULL")
    assert (r["recent_runs"], r["baseline_runs"]) == (3, 3)
    assert r["ratio"] == pytest.approx(2.0)
    assert r["is_regression"] is True


def test_stuck_runs_are_active_beyond_twice_p95_or_their_timeout(con):
    add_job(con, 1, "hourly", timeout_seconds=0)
    add_job(con, 2, "bounded", timeout_seconds=3600)
    add_run(con, 100, job_id=1, minutes=10)
    add_run(con, 101, job_id=1, start=NOW - 30 * MIN, active=True)  # 30 min > 2 x 10 min
    add_run(con, 102, job_id=1, start=NOW - 15 * MIN, active=True)  # 15 min: fine
    add_run(con, 200, job_id=2, start=NOW - 90 * MIN, active=True)  # no history, past timeout
    rows = all_rows(con, "SELECT run_id, running_for_ms, reason FROM stuck_runs ORDER BY run_id")
    assert rows == [
        {"run_id": 101, "running_for_ms": 30 * 60_000, "reason": "over_2x_p95"},
        {"run_id": 200, "running_for_ms": 90 * 60_000, "reason": "past_timeout"},
    ]


def test_scheduled_run_delays_measure_queue_and_late_first_task(con):
    add_run(con, 100, queue_duration_ms=60_000)
    add_task(con, 101, 100, start=T0 + 10 * MIN, minutes=10)  # 10 min late: a late start
    add_run(con, 200, start=T0 + 24 * 60 * MIN, queue_duration_ms=0)
    add_task(con, 201, 200, start=T0 + 24 * 60 * MIN + MIN, minutes=10, cluster_id="c2")
    add_run(con, 300, trigger="ONE_TIME")  # not scheduled
    r = one(con, "SELECT * FROM scheduled_run_delays")
    assert (r["scheduled_runs"], r["queued_runs"], r["late_starts"]) == (2, 1, 1)
    assert r["max_start_delay_ms"] == 10 * 60_000


def test_setup_overhead_is_setup_share_of_task_time(con):
    add_run(con, 100)
    add_task(con, 101, 100, minutes=40, setup_duration_ms=10 * 60_000)
    add_task(con, 102, 100, minutes=20, start=T0 + 40 * MIN)
    r = one(con, "SELECT setup_ms, run_time_ms, setup_share FROM setup_overhead")
    assert r["setup_share"] == pytest.approx(10 / 60)


# --- spend -----------------------------------------------------------------------------------


def test_spend_daily_weekly_and_week_over_week_movers(con):
    add_job(con, 1, "grows")
    add_run(con, 100, start=NOW - 10 * 24 * 60 * MIN)  # previous week: $0.45
    add_task(con, 101, 100, start=NOW - 10 * 24 * 60 * MIN)
    add_run(con, 200, start=NOW - 2 * 24 * 60 * MIN, minutes=120)  # this week: $0.90
    add_task(con, 201, 200, start=NOW - 2 * 24 * 60 * MIN, minutes=120, cluster_id="c2")
    m = one(con, "SELECT * FROM spend_movers")
    assert m["cost_previous_week"] == pytest.approx(0.45)
    assert m["cost_this_week"] == pytest.approx(0.90)
    assert m["change"] == pytest.approx(0.45)
    assert m["change_ratio"] == pytest.approx(1.0)
    days = all_rows(con, "SELECT run_date, cost FROM spend_daily ORDER BY run_date")
    assert [str(d["run_date"]) for d in days] == ["2025-05-31", "2025-06-08"]
    weeks = all_rows(con, "SELECT run_week, cost, change_vs_previous_week FROM spend_weekly")
    assert [str(w["run_week"]) for w in weeks] == ["2025-05-26", "2025-06-02"]
    assert weeks[1]["change_vs_previous_week"] == pytest.approx(0.45)


def test_spend_by_dimension_splits_by_owner_tag_trigger_and_run_type(con):
    add_job(con, 1, "etl", tags={"team": "sales", "env": "prod"})
    add_run(con, 100)
    add_task(con, 101, 100)
    add_run(con, 200, result="FAILED", trigger="ONE_TIME", start=T0 + 24 * 60 * MIN)
    add_task(con, 201, 200, result="FAILED", cluster_id="c2", start=T0 + 24 * 60 * MIN)
    rows = all_rows(con, "SELECT dimension, value, runs, failed_runs, cost FROM spend_by_dimension")
    got = {(r["dimension"], r["value"]): (r["runs"], r["failed_runs"]) for r in rows}
    assert got[("tag", "team=sales")] == (2, 1)
    assert got[("tag", "env=prod")] == (2, 1)
    assert got[("run_as", "sp-etl")] == (2, 1)
    assert got[("creator", "ana@example.com")] == (2, 1)
    assert got[("trigger", "ONE_TIME")] == (1, 1)
    assert got[("run_type", "JOB_RUN")] == (2, 1)


def test_termination_codes_ranked_by_count_and_cost(con):
    add_run(con, 100, result="FAILED", termination_code="RUN_EXECUTION_ERROR")
    add_task(con, 101, 100, result="FAILED")
    add_run(con, 200, result="FAILED", termination_code="CLUSTER_ERROR", start=T0 + 24 * 60 * MIN)
    add_run(con, 201, result="FAILED", termination_code="CLUSTER_ERROR", start=T0 + 25 * 60 * MIN)
    rows = all_rows(
        con,
        "SELECT termination_code, runs, cost, rank_by_count, rank_by_cost "
        "FROM termination_codes ORDER BY termination_code",
    )
    assert rows == [
        {
            "termination_code": "CLUSTER_ERROR",
            "runs": 2,
            "cost": 0.0,
            "rank_by_count": 1,
            "rank_by_cost": 2,
        },
        {
            "termination_code": "RUN_EXECUTION_ERROR",
            "runs": 1,
            "cost": pytest.approx(0.45),
            "rank_by_count": 2,
            "rank_by_cost": 1,
        },
    ]


def test_all_purpose_jobs_get_billed_cluster_time_and_saving(con):
    # The cluster bills 2 DBU in 10:00-11:00; the task ran 10:00-10:30 -> half of it, 1 DBU.
    add_run(con, 100, minutes=30)
    add_task(
        con,
        101,
        100,
        minutes=30,
        kind="existing_cluster",
        cluster_id="ap-1",
        existing_cluster_id="ap-1",
        node=None,
        workers=None,
    )
    insert(
        con,
        "billing_usage",
        workspace_id="ws1",
        record_id="r1",
        sku_name="PREMIUM_ALL_PURPOSE_COMPUTE",
        cloud="AWS",
        usage_start_time=T0,
        usage_end_time=T0 + 60 * MIN,
        usage_unit="DBU",
        usage_quantity=2.0,
        record_type="ORIGINAL",
        cluster_id="ap-1",
    )
    r = one(con, "SELECT * FROM all_purpose_jobs")
    assert r["billed_dbus"] == pytest.approx(1.0)
    assert r["all_purpose_cost"] == pytest.approx(0.55)
    assert r["job_cluster_cost_est"] == pytest.approx(0.15)
    assert r["saving_est"] == pytest.approx(0.40)


# --- loading ---------------------------------------------------------------------------------


def test_every_view_has_a_description_and_job_reliability_exists():
    views = dict(list_views())
    assert "job_reliability" in views
    assert all(description for description in views.values())
    assert (sql_dir() / "staging" / "010_stg_now.sql").exists()


def test_now_is_the_latest_extracted_at(con):
    add_run(con, 100)
    assert one(con, "SELECT now_ts FROM stg_now")["now_ts"] == NOW


def test_read_only_connection_gets_temporary_views(tmp_path: Path):
    db = tmp_path / "store.duckdb"
    writer = duckdb.connect(str(db))
    create_tables(writer)
    add_run(writer, 100)
    writer.execute("DROP TABLE rate_card")  # a store from before the cost tables
    writer.close()
    con = connect(db)
    try:
        assert one(con, "SELECT runs FROM job_reliability")["runs"] == 1
        assert one(con, "SELECT count(*) AS n FROM rate_card")["n"] > 0
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM runs")
    finally:
        con.close()
    # Nothing was written: the file still has no views and no rate card.
    check = duckdb.connect(str(db), read_only=True)
    names = {
        r[0]
        for r in check.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    }
    assert "job_reliability" not in names
    check.close()


def test_create_views_is_idempotent(con):
    create_views(con)
    assert one(con, "SELECT count(*) AS n FROM job_reliability")["n"] == 0


def mat_rows(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    rows = {}
    for name in materialized():
        found = con.execute(f"SELECT * FROM mat_{name}").fetchall()
        rows[name] = sorted(
            (tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in found), key=repr
        )
    return rows


def test_refresh_of_changed_runs_gives_the_rows_of_a_full_rebuild(con):
    repaired_run(con)
    add_run(con, 200, start=T0 + 3 * 24 * 60 * MIN, result="FAILED")
    add_task(con, 201, 200, start=T0 + 3 * 24 * 60 * MIN, result="FAILED", cluster_id="c3")
    add_run(con, 300, start=NOW - 30 * MIN, active=True)
    add_task(con, 301, 300, start=NOW - 30 * MIN, active=True, cluster_id="c4")
    add_run(con, 400, start=T0 + 4 * 24 * 60 * MIN)
    add_task(con, 401, 400, start=T0 + 4 * 24 * 60 * MIN, cluster_id="c5")
    refresh_materialized(con, None)
    # An extract then brings a job-level retry of run 200 (which changes the attempts of run
    # 200 that it does not mention), marks run 400 deleted, and moves "now" on an hour.
    later = T0 + 3 * 24 * 60 * MIN + 70 * MIN
    add_run(
        con,
        210,
        start=later,
        attempt_number=1,
        original_attempt_run_id=200,
        extracted_at=NOW + 60 * MIN,
    )
    add_task(con, 211, 210, start=later, cluster_id="c6")
    con.execute("UPDATE runs SET deleted_at = ? WHERE run_id = 400", [NOW])
    refresh_materialized(con, [("ws1", 210), ("ws1", 400)])
    partial = mat_rows(con)
    refresh_materialized(con, None)
    assert partial == mat_rows(con)
    assert one(con, "SELECT count(*) AS n FROM task_cost WHERE job_run_id = 400")["n"] == 0


def test_refresh_runs_within_a_small_writer_pool_and_leaves_its_limit(con):
    repaired_run(con)
    con.execute("SET memory_limit = '64MB'")
    try:
        limit = con.execute("SELECT current_setting('memory_limit')").fetchall()
        refresh_materialized(con, None)
        assert con.execute("SELECT current_setting('memory_limit')").fetchall() == limit
    finally:
        con.execute("RESET memory_limit")
    assert one(con, "SELECT count(*) AS n FROM task_cost")["n"] == 3
