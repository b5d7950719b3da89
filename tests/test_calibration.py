"""Calibrated costs: estimates of runs billing does not cover yet, scaled by what billing showed
for the same job (then node type and SKU, then SKU); serverless from the job's billed DBUs per
ms of task time. Hand-computed on the shipped rate card (AWS: i3.xlarge 1 DBU/h, m5d.large 0.34
DBU/h, JOBS_COMPUTE $0.15, serverless $0.35)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from extractor.analytics.cost import import_billing
from extractor.analytics.materialize import refresh_materialized

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
HEADER = "record_id,workspace_id,sku_name,cloud,usage_start_time,usage_end_time,usage_unit,usage_quantity,usage_metadata,record_type\n"
SERVERLESS = "PREMIUM_JOBS_SERVERLESS_COMPUTE_US_EAST_N_VIRGINIA"


def add_run(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    job_id: int,
    minutes: int,
    *,
    compute: str = "job_cluster",
    node: str | None = "i3.xlarge",
) -> None:
    end = T0 + timedelta(minutes=minutes)
    con.execute(
        "INSERT INTO runs (workspace_id, run_id, job_id, start_time, end_time, life_cycle_state, "
        "result_state, is_active, extracted_at) VALUES ('ws1', ?, ?, ?, ?, 'TERMINATED', "
        "'SUCCESS', false, ?)",
        [run_id, job_id, T0, end, end],
    )
    serverless = compute == "serverless"
    con.execute(
        "INSERT INTO tasks (workspace_id, run_id, job_run_id, job_id, task_key, start_time, "
        "end_time, duration_ms, life_cycle_state, result_state, is_active, cluster_id, "
        "compute_kind, node_type_id, driver_node_type_id, num_workers) VALUES ('ws1', ?, ?, "
        "?, 'a', ?, ?, ?, 'TERMINATED', 'SUCCESS', false, ?, ?, ?, ?, ?)",
        [
            run_id + 1,
            run_id,
            job_id,
            T0,
            end,
            minutes * 60_000,
            None if serverless else f"c{run_id}",
            compute,
            None if serverless else node,
            None if serverless else node,
            None if serverless else 2,
        ],
    )


def bill(path: Path, *rows: tuple[str, int, int, float, int]) -> Path:
    """Rows (sku, job_id, run_id, DBU, minutes from T0); classic rows carry cluster c<run_id>."""
    lines = [HEADER]
    for i, (sku, job_id, run_id, dbus, minutes) in enumerate(rows):
        cluster = "" if "SERVERLESS" in sku else f'""cluster_id"": ""c{run_id}"", '
        meta = f'"{{{cluster}""job_id"": ""{job_id}"", ""job_run_id"": ""{run_id}""}}"'
        end = (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S+00")
        lines.append(
            f"r{i},ws1,{sku},AWS,{T0:%Y-%m-%d %H:%M:%S}+00,{end},DBU,{dbus},{meta},ORIGINAL\n"
        )
    path.write_text("".join(lines))
    return path


def costs(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[float | None, str | None]]:
    rows = con.execute("SELECT run_id, cost, cost_source FROM int_run_cost").fetchall()
    return {r: (round(c, 6) if c is not None else None, s) for r, c, s in rows}


@pytest.fixture
def con(views_con: duckdb.DuckDBPyConnection, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    add_run(views_con, 100, 1, 60)  # est (1 + 2 x 1) DBU/h x 1 h x $0.15 = 0.45; billed 0.90
    add_run(views_con, 110, 1, 120)  # same job, est 0.90
    add_run(views_con, 200, 2, 60)  # other job, same node type: est 0.45
    add_run(views_con, 300, 3, 60, node="m5d.large")  # est 3 x 0.34 x 0.15 = 0.153
    add_run(views_con, 400, 4, 30, compute="serverless")  # billed 2 DBU in 30 min
    add_run(views_con, 410, 4, 60, compute="serverless")
    add_run(views_con, 500, 5, 60, compute="serverless")  # no billed history
    usage = bill(
        tmp_path / "usage.csv",
        ("PREMIUM_JOBS_COMPUTE", 1, 100, 6.0, 60),
        (SERVERLESS, 4, 400, 2.0, 30),
    )
    import_billing(views_con, usage)
    return views_con


def test_unbilled_runs_get_the_estimate_scaled_by_the_billed_factor(con):
    assert costs(con) == {
        100: (0.90, "billing"),
        110: (1.80, "calibrated"),  # job 1's factor: 0.90 billed / 0.45 estimated = 2
        200: (0.90, "calibrated"),  # no history for job 2: i3.xlarge on JOBS_COMPUTE, x2
        300: (0.306, "calibrated"),  # neither: the JOBS_COMPUTE factor on AWS, x2
        400: (0.70, "billing"),
        410: (1.40, "calibrated"),  # 2 DBU / 30 min x 60 min x $0.35
        500: (None, None),
    }
    reason = con.execute("SELECT cost_null_reason FROM int_run_cost WHERE run_id = 500").fetchall()
    assert reason == [("serverless: cost needs billing data",)]


def test_an_extracts_partial_refresh_keeps_the_factors_of_the_last_import(con):
    add_run(con, 120, 1, 30)  # est 0.225
    refresh_materialized(con, [("ws1", 120)])
    assert costs(con)[120] == (0.45, "calibrated")
    assert costs(con)[110] == (1.80, "calibrated")


def test_a_run_billed_only_in_part_does_not_calibrate(views_con, tmp_path):
    add_run(views_con, 100, 1, 120)  # runs 2 h, billing so far covers its first hour
    add_run(views_con, 110, 1, 60)
    import_billing(views_con, bill(tmp_path / "u.csv", ("PREMIUM_JOBS_COMPUTE", 1, 100, 6.0, 60)))
    assert costs(views_con) == {100: (0.90, "billing"), 110: (0.45, "estimate")}


def test_cost_reconciliation_compares_billed_and_estimated_cost_per_job_and_overall(con):
    rows = con.execute(
        "SELECT job_id, billed_runs, runs_without_estimate, billed_cost, estimated_cost,"
        " error_pct, billed_cost_all_runs FROM cost_reconciliation"
    ).fetchall()
    assert [tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in rows] == [
        (1, 1, 0, 0.90, 0.45, -50.0, 0.90),
        (4, 1, 1, None, None, None, 0.70),  # serverless: no estimate to compare
        (None, 2, 1, 0.90, 0.45, -50.0, 1.60),
    ]
