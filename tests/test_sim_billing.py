"""The simulator's billing export: rows shaped like system.billing.usage, hourly slices, and a
true cost per run that an import of the export reproduces."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from extractor.analytics.cost import import_billing, import_list_prices
from extractor.dev.simulator._billing import USAGE_COLUMNS
from extractor.dev.simulator.workspace import Workspace
from tests.conftest import sample_path

NOW_MS = 1_780_000_000_000
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def ws() -> Workspace:
    return Workspace.generate(5, jobs=20, runs=400, days=20, now_ms=NOW_MS)


def test_billing_csv_has_the_columns_of_a_sql_download(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    ws.write_billing_csv(str(path))
    with path.open() as fh, sample_path("billing_usage_sample.csv").open() as sample:
        header = next(csv.reader(fh))
        assert header == next(csv.reader(sample)) == list(USAGE_COLUMNS)
        rows = list(csv.DictReader(path.open()))
    kinds = Counter(r["sku_name"] for r in rows)
    assert {"PREMIUM_JOBS_COMPUTE", "PREMIUM_ALL_PURPOSE_COMPUTE"} <= set(kinds)
    assert any("SERVERLESS" in k for k in kinds)
    for r in rows:
        meta = json.loads(r["usage_metadata"])
        start = datetime.fromisoformat(r["usage_start_time"])
        end = datetime.fromisoformat(r["usage_end_time"])
        assert start < end and (start.hour == end.hour or end.minute == end.second == 0)
        assert end.timestamp() - start.timestamp() <= 3600
        if r["billing_origin_product"] == "ALL_PURPOSE":
            assert "job_id" not in meta and "cluster_id" in meta  # billed to the cluster only
        else:
            assert meta["job_id"] and meta["job_run_id"]
        assert r["record_type"] in ("ORIGINAL", "RETRACTION", "RESTATEMENT")
    types = Counter(r["record_type"] for r in rows)
    assert types["RETRACTION"] == types["RESTATEMENT"] > 0


def test_an_import_of_the_export_bills_each_run_its_true_cost(
    ws: Workspace, views_con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    ws.write_billing_csv(str(tmp_path / "usage.csv"))
    ws.write_list_prices_csv(str(tmp_path / "prices.csv"))
    import_billing(views_con, tmp_path / "usage.csv")
    assert import_list_prices(views_con, tmp_path / "prices.csv") == 5
    billed = dict(
        views_con.execute("SELECT job_run_id, billed_cost FROM int_billed_runs").fetchall()
    )
    truth = ws.true_run_cost()
    job_billed = {r: t["cost"] - t["all_purpose_cost"] for r, t in truth.items()}
    job_billed = {r: c for r, c in job_billed.items() if c > 0}
    assert set(billed) == set(job_billed)
    assert all(abs(billed[r] - c) < 0.005 for r, c in job_billed.items())


def test_rows_are_chosen_by_usage_start_time(ws: Workspace) -> None:
    cut = NOW_MS - 10 * DAY_MS
    every = ws.billing_rows()
    before, after = ws.billing_rows(None, cut), ws.billing_rows(cut, None)
    assert len(before) + len(after) == len(every)
    assert {r["record_id"] for r in before}.isdisjoint(r["record_id"] for r in after)
