"""The Monday report and read-only ad-hoc queries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

from extractor.analytics.report import (
    build_report,
    coverage_line,
    render_json,
    render_markdown,
    render_text,
    run_query,
)
from extractor.analytics.views import create_views
from extractor.errors import UsageError
from extractor.schema import create_tables

NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    create_tables(con)
    for n, result in enumerate(("SUCCESS", "FAILED", "SUCCESS")):
        start = NOW - timedelta(days=n + 1)
        con.execute(
            "INSERT INTO runs (workspace_id, run_id, job_id, run_name, start_time, end_time, "
            "life_cycle_state, result_state, is_active, duration_ms, extracted_at) VALUES "
            "('ws1', ?, 1, 'etl', ?, ?, 'TERMINATED', ?, false, 3600000, ?)",
            [100 + n, start, start + timedelta(hours=1), result, NOW],
        )
        con.execute(
            "INSERT INTO tasks (workspace_id, run_id, job_run_id, job_id, task_key, start_time, "
            "end_time, duration_ms, life_cycle_state, result_state, is_active, cluster_id, "
            "compute_kind, node_type_id, driver_node_type_id, num_workers) VALUES ('ws1', ?, ?, "
            "1, 'a', ?, ?, 3600000, 'TERMINATED', ?, false, ?, 'new_cluster', 'i3.xlarge', "
            "'i3.xlarge', 2)",
            [200 + n, 100 + n, start, start + timedelta(hours=1), result, f"c{n}"],
        )
    create_views(con)
    return con


def test_report_totals_spend_and_reliability_over_the_window(con):
    report = build_report(con, days=30)
    assert report["spend"]["runs"] == 3
    assert report["spend"]["cost"] == pytest.approx(3 * 0.45)
    assert report["reliability"]["failed"] == 1
    assert report["reliability"]["success_rate"] == pytest.approx(2 / 3)
    assert report["top_spenders"][0]["job_name"] == "etl"
    assert report["wasted_spend"][0]["wasted_cost"] == pytest.approx(0.45)
    assert len(report["spend_by_day"]) == 3


def test_report_window_and_job_filter(con):
    assert build_report(con, days=1)["spend"]["runs"] == 1
    assert build_report(con, job_id=2)["spend"]["runs"] == 0
    with pytest.raises(UsageError):
        build_report(con, days=0)


def test_report_renders_as_text_markdown_and_json(con):
    report = build_report(con)
    markdown = render_markdown(report)
    assert "## Top spenders" in markdown and "| etl |" in markdown.replace("| ws1 | 1 ", "")
    assert json.loads(render_json(report))["spend"]["runs"] == 3
    console = Console(record=True, width=200)
    render_text(report, console)
    assert "Wasted spend" in console.export_text()


def test_query_refuses_statements_that_write(con):
    for sql in (
        "DELETE FROM runs",
        "CREATE TABLE x (a INT)",
        "SELECT 1; SELECT 2",
        "COPY runs TO 'x.csv'",
        "ATTACH 'x.db'",
    ):
        with pytest.raises(UsageError):
            run_query(con, sql, "csv")


def test_query_writes_csv_json_and_parquet(con, tmp_path: Path):
    sql = "SELECT job_id, runs FROM job_reliability"
    assert run_query(con, sql, "csv", tmp_path / "out.csv") == 1
    assert (tmp_path / "out.csv").read_text() == "job_id,runs\n1,3\n"
    run_query(con, sql, "json", tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text()) == [{"job_id": 1, "runs": 3}]
    assert run_query(con, sql, "parquet", tmp_path / "out.parquet") == 1
    with pytest.raises(UsageError, match="needs --output"):
        run_query(con, sql, "parquet", None)


def test_query_accepts_with_describe_and_show(con):
    console = Console(record=True, width=200)
    assert run_query(con, "WITH a AS (SELECT 1 AS x) SELECT * FROM a", console=console) == 1
    assert run_query(con, "DESCRIBE job_reliability", "csv", console=console) > 5
    assert run_query(con, "SHOW TABLES", "csv", console=console) > 0


def _headline(report: dict[str, object]) -> tuple[str, str]:
    """The spend line as text and as Markdown."""
    console = Console(record=True, width=200)
    render_text(report, console)
    text = next(line for line in console.export_text().splitlines() if line.startswith("Spend:"))
    markdown = next(line for line in render_markdown(report).splitlines() if "Spend:" in line)
    return text, markdown.removeprefix("- ")


def test_report_headline_without_billing_leaves_billed_out(con):
    report = build_report(con)
    assert report["spend"]["billed_cost"] is None
    text, markdown = _headline(report)
    assert text == markdown == "Spend: 1.35 over 3 runs (estimated 1.35, 0 runs without a cost)"
    assert "Last 30 days" in render_markdown(report)


def test_report_headline_with_billing_and_thousands_separates_every_number(con):
    report = build_report(con)
    report["spend"] |= {
        "runs": 1169,
        "cost": 2845.62,
        "billed_cost": 1200.5,
        "estimated_cost_est": 1645.12,
        "runs_without_cost": 1,
    }
    text, markdown = _headline(report)
    assert (
        text
        == markdown
        == (
            "Spend: 2,845.62 over 1,169 runs (billed 1,200.50, estimated 1,645.12, 1 run without a cost)"
        )
    )
    # The JSON keeps the numbers as numbers, in the same structure.
    assert json.loads(render_json(report))["spend"] == report["spend"]


def test_report_tables_separate_counts_but_not_ids(con):
    report = build_report(con)
    report["top_spenders"] = [{"job_id": 1177758755543962, "job_name": "etl", "runs": 12345}]
    markdown = render_markdown(report)
    assert "| 1177758755543962 | etl | 12,345 |" in markdown


def test_report_headline_shows_cost_coverage_of_terminal_runs(con):
    report = build_report(con)
    assert report["cost_coverage"]["estimated"] == report["cost_coverage"]["terminal_runs"] == 3
    line = "Cost coverage: 0% billed, 0% calibrated, 100% estimated, 0% unknown of 3 terminal runs"
    assert line in render_markdown(report)
    console = Console(record=True, width=200)
    render_text(report, console)
    assert line in console.export_text()


def test_coverage_line_names_the_top_reasons_for_unknown():
    coverage = {
        "terminal_runs": 1169,
        "billed": 700,
        "calibrated": 400,
        "estimated": 64,
        "unknown": 5,
        "shares": {"billed": 700 / 1169, "calibrated": 400 / 1169, "estimated": 64 / 1169},
        "unknown_reasons": [{"reason": "serverless: cost needs billing data", "runs": 5}],
    }
    coverage["shares"]["unknown"] = 5 / 1169
    assert coverage_line(coverage) == (
        "Cost coverage: 60% billed, 34% calibrated, 5% estimated, <1% unknown of 1,169 terminal"
        " runs; unknown: serverless: cost needs billing data (5)"
    )


def test_report_says_why_runs_failed_in_every_format(demo_db: Path) -> None:
    from extractor.analytics.connect import connect
    from extractor.analytics.report import build_report, render_json, render_markdown

    con = connect(demo_db)
    try:
        report = build_report(con, days=60)
    finally:
        con.close()
    causes = report["failure_causes"]
    assert causes and causes[0]["failures"] >= causes[-1]["failures"]
    assert all(r["title"] for r in causes)
    assert "## Why runs failed: top causes" in render_markdown(report)
    assert "Why runs failed: costliest causes" in render_markdown(report)
    assert json.loads(render_json(report))["failure_causes"][0]["title"] == causes[0]["title"]
