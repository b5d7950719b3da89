"""Rate card and billing imports, and how run_cost prefers billed cost over the estimate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from extractor.analytics.cost import import_billing, import_list_prices, import_rates, parse_rates
from extractor.analytics.views import create_views
from extractor.errors import InputError, UsageError
from extractor.store import Store
from tests.conftest import jobruns, sample_path

BILLING_CSV = """record_id,workspace_id,account_id,sku_name,cloud,usage_start_time,usage_end_time,usage_unit,usage_quantity,usage_metadata,record_type
r1,ws1,acc,PREMIUM_JOBS_COMPUTE,AWS,2025-06-02 10:00:00+00,2025-06-02 11:00:00+00,DBU,4.0,"{""job_id"": ""1"", ""job_run_id"": ""100""}",ORIGINAL
r2,ws1,acc,PREMIUM_JOBS_COMPUTE,AWS,2025-06-02 10:00:00+00,2025-06-02 11:00:00+00,DBU,-4.0,"{""job_id"": ""1"", ""job_run_id"": ""100""}",RETRACTION
r3,ws1,acc,PREMIUM_JOBS_COMPUTE,AWS,2025-06-02 10:00:00+00,2025-06-02 11:00:00+00,DBU,3.0,"{""job_id"": ""1"", ""job_run_id"": ""100""}",RESTATEMENT
"""
PRICES_CSV = """price_start_time,price_end_time,account_id,sku_name,cloud,currency_code,usage_unit,pricing
2025-01-01 00:00:00+00,2025-06-01 00:00:00+00,acc,PREMIUM_JOBS_COMPUTE,AWS,USD,DBU,"{""default"": ""0.10"", ""effective_list"": {""default"": ""0.10""}}"
2025-06-01 00:00:00+00,,acc,PREMIUM_JOBS_COMPUTE,AWS,USD,DBU,"{""default"": ""0.20"", ""effective_list"": {""default"": ""0.25""}}"
"""
T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def con(views_con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    return views_con


def add_billed_run(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "INSERT INTO runs (workspace_id, run_id, job_id, start_time, end_time, life_cycle_state, "
        "result_state, is_active, extracted_at) VALUES ('ws1', 100, 1, ?, ?, 'TERMINATED', "
        "'SUCCESS', false, ?)",
        [T0, T0.replace(hour=11), T0],
    )
    con.execute(
        "INSERT INTO tasks (workspace_id, run_id, job_run_id, job_id, task_key, start_time, "
        "end_time, duration_ms, life_cycle_state, result_state, is_active, cluster_id, "
        "compute_kind, node_type_id, driver_node_type_id, num_workers) VALUES ('ws1', 101, 100, "
        "1, 'a', ?, ?, 3600000, 'TERMINATED', 'SUCCESS', false, 'c1', 'job_cluster', "
        "'i3.xlarge', 'i3.xlarge', 2)",
        [T0, T0.replace(hour=11)],
    )


def test_billed_cost_sums_all_record_types_and_wins_over_the_estimate(con, tmp_path):
    add_billed_run(con)
    (tmp_path / "usage.csv").write_text(BILLING_CSV)
    assert import_billing(con, tmp_path / "usage.csv") == 3
    # Without list prices: the rate card's PREMIUM_JOBS_COMPUTE price, $0.15 x (4 - 4 + 3) DBU.
    run = con.execute("SELECT cost, cost_source, billed_dbus, cost_est FROM run_cost").fetchall()
    assert run == [(pytest.approx(0.45), "billing", pytest.approx(3.0), pytest.approx(0.45))]


def test_list_prices_are_joined_by_time_range_using_effective_list(con, tmp_path):
    add_billed_run(con)
    (tmp_path / "usage.csv").write_text(BILLING_CSV)
    (tmp_path / "prices.csv").write_text(PRICES_CSV)
    import_billing(con, tmp_path / "usage.csv")
    assert import_list_prices(con, tmp_path / "prices.csv") == 2
    cost = con.execute("SELECT billed_cost FROM run_cost").fetchall()
    assert cost == [(pytest.approx(3.0 * 0.25),)]


def test_reimport_replaces_rows_by_record_id(con, tmp_path):
    (tmp_path / "usage.csv").write_text(BILLING_CSV)
    import_billing(con, tmp_path / "usage.csv")
    import_billing(con, tmp_path / "usage.csv")
    assert con.execute("SELECT count(*) FROM billing_usage").fetchall() == [(3,)]


def test_sample_billing_export_prices_every_row(con):
    assert import_billing(con, sample_path("billing_usage_sample.csv")) == 13
    assert import_list_prices(con, sample_path("list_prices_sample.csv")) == 13
    rows = con.execute(
        "SELECT job_run_id, billed_dbus, billed_cost FROM int_billed_runs WHERE job_run_id = "
        "715533980214467"
    ).fetchall()
    # ORIGINAL 33.900760 - RETRACTION 33.900760 + RESTATEMENT 32.883737, at $0.15.
    assert rows == [(715533980214467, pytest.approx(32.883737), pytest.approx(32.883737 * 0.15))]
    unpriced = con.execute(
        "SELECT count(*) FROM int_billing_priced WHERE price_source <> 'list_prices'"
    ).fetchall()
    assert unpriced == [(0,)]
    serverless = con.execute(
        "SELECT is_serverless, job_run_id FROM billing_usage WHERE sku_name LIKE '%SERVERLESS%'"
    ).fetchall()
    assert serverless == [(True, 377210456612098)]


def test_parquet_export_with_struct_columns_imports(con, tmp_path):
    path = tmp_path / "usage.parquet"
    con.execute(
        "COPY (SELECT 'r1' AS record_id, 'ws1' AS workspace_id, 'PREMIUM_JOBS_COMPUTE' AS sku_name, "
        "'AWS' AS cloud, TIMESTAMPTZ '2025-06-02 10:00:00+00' AS usage_start_time, "
        "TIMESTAMPTZ '2025-06-02 11:00:00+00' AS usage_end_time, 'DBU' AS usage_unit, "
        "2.5 AS usage_quantity, {'job_id': '1', 'job_run_id': '100'} AS usage_metadata, "
        "'ORIGINAL' AS record_type) "
        f"TO '{path}' (FORMAT parquet)"
    )
    assert import_billing(con, path) == 1
    assert con.execute("SELECT job_run_id, usage_quantity FROM billing_usage").fetchall() == [
        (100, 2.5)
    ]


def test_import_of_a_file_that_is_not_a_billing_export_is_refused(con, tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"system\.billing\.usage; missing columns: workspace_id"):
        import_billing(con, tmp_path / "x.csv")
    with pytest.raises(UsageError, match="no such file"):
        import_billing(con, tmp_path / "absent.csv")


def test_negotiated_prices_override_the_shipped_rate_card(con, tmp_path):
    add_billed_run(con)
    (tmp_path / "rates.csv").write_text("kind,cloud,name,value\nsku,aws,JOBS_COMPUTE,0.10\n")
    assert import_rates(con, tmp_path / "rates.csv") == 1
    row = con.execute(
        "SELECT value, source FROM rate_card WHERE name = 'JOBS_COMPUTE' AND cloud = 'AWS'"
    ).fetchall()
    assert row == [(0.10, "imported from rates.csv")]
    assert con.execute("SELECT cost_est FROM run_cost").fetchall() == [(pytest.approx(0.30),)]


def test_invalid_rate_rows_are_reported_with_their_line(tmp_path):
    text = "kind,cloud,name,value\nsku,AWS,JOBS_COMPUTE,-1\nnode_type,,i3.xlarge,1\nbogus,AWS,x,1\n"
    with pytest.raises(UsageError) as err:
        parse_rates(text, "rates.csv")
    message = str(err.value)
    assert "line 2: value" in message
    assert "line 3: cloud is required" in message
    assert "line 4: kind" in message
    with pytest.raises(UsageError, match="missing: value"):
        parse_rates("kind,name\nsku,x\n", "rates.csv")


def test_shipped_rate_card_cites_its_source_and_date(con):
    rows = con.execute("SELECT count(*), count(source), count(as_of) FROM rate_card").fetchall()
    assert rows[0][0] == rows[0][1] == rows[0][2] > 0
    sources = con.execute(
        "SELECT DISTINCT source FROM rate_card WHERE kind = 'node_type'"
    ).fetchall()
    # Every node type's DBU/h cites the public file it was read from, at a fixed commit.
    assert all(s[0].startswith("https://github.com/") and "/blob/" in s[0] for s in sources)


def test_billing_and_rates_import_through_the_cli_refresh_costs_and_repeat_without_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.duckdb"
    store = Store(db)
    store.initialize()
    with store.connect() as con:
        create_views(con)
        add_billed_run(con)
    usage, prices = tmp_path / "usage.csv", tmp_path / "prices.csv"
    usage.write_text(BILLING_CSV)
    prices.write_text(PRICES_CSV)
    for _ in range(2):  # the same files twice change nothing
        code, out = jobruns(capsys, "billing", "import", str(usage), "--db", str(db))
        assert (code, "imported 3 usage rows" in out) == (0, True), out
        code, out = jobruns(capsys, "billing", "import", str(prices), "--prices", "--db", str(db))
        assert (code, "imported 2 price rows" in out) == (0, True), out
    capsys.readouterr()
    from extractor.cli import main

    try:
        main(
            ["query", "SELECT cost_source, cost FROM run_cost", "--db", str(db), "--format", "json"]
        )
    except SystemExit as exc:
        assert exc.code == 0
    output = capsys.readouterr().out
    # 4 - 4 + 3 DBU billed at the effective list price of June (0.25): the materialized cost rows
    # were refreshed by the import.
    assert json.loads(output) == [{"cost_source": "billing", "cost": 0.75}]
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM billing_usage").fetchone() == (3,)
        assert con.execute("SELECT count(*) FROM list_prices").fetchone() == (2,)

    rates = tmp_path / "rates.csv"
    rates.write_text("kind,cloud,name,value\nsku,AWS,PREMIUM_JOBS_COMPUTE,0.5\n")
    code, out = jobruns(capsys, "rates", "import", str(rates), "--db", str(db))
    assert (code, "imported 1 rates" in out) == (0, True), out


def test_billing_import_of_a_file_with_missing_columns_exits_1_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("record_id,workspace_id\nr1,ws1\n")
    code, out = jobruns(capsys, "billing", "import", str(bad), "--db", str(tmp_path / "s.duckdb"))
    assert code == 1
    assert "missing columns: sku_name, usage_start_time, usage_quantity" in out


def test_billing_import_refuses_bad_quantities_naming_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "s.duckdb")
    lines = BILLING_CSV.splitlines()
    bad = tmp_path / "bad.csv"
    # line 2 non-numeric; line 3 stays a valid RETRACTION (-4.0); line 4 negative, not one.
    bad.write_text(
        "\n".join(
            [
                lines[0],
                lines[1].replace(",4.0,", ",four,"),
                lines[2],
                lines[3].replace(",3.0,", ",-3.0,"),
            ]
        )
        + "\n"
    )
    code, out = jobruns(capsys, "billing", "import", str(bad), "--db", db)
    assert code == 1, out
    assert "line 2: usage_quantity 'four' is not a number" in out
    assert "line 4: usage_quantity -3.0 is negative in a row that is not a RETRACTION" in out
    assert "line 3" not in out
    good = tmp_path / "good.csv"
    good.write_text(BILLING_CSV)
    code, out = jobruns(capsys, "billing", "import", str(good), "--db", db)
    assert (code, "imported 3 usage rows" in out) == (0, True), out


def test_billing_rows_of_another_workspace_are_kept_under_their_workspace_id(con, tmp_path):
    add_billed_run(con)
    other = BILLING_CSV.replace(",ws1,", ",ws2,").replace("r1,", "s1,").replace("r2,", "s2,")
    other = other.replace("r3,", "s3,").split("\n", 1)[1]
    (tmp_path / "usage.csv").write_text(BILLING_CSV + other)
    assert import_billing(con, tmp_path / "usage.csv") == 6
    kept = con.execute(
        "SELECT workspace_id, count(*) FROM billing_usage GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert kept == [("ws1", 3), ("ws2", 3)]
    # ws2's rows for its own run 100 do not bill ws1's run 100.
    assert con.execute("SELECT billed_dbus FROM run_cost").fetchall() == [(pytest.approx(3.0),)]


def test_a_rate_card_row_for_an_unknown_cloud_is_refused_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text(
        "kind,cloud,name,value\nsku,AWS,JOBS_COMPUTE,0.2\nnode_type,OCI,VM.Standard,1\n"
    )
    code, out = jobruns(capsys, "rates", "import", str(rates), "--db", str(tmp_path / "s.duckdb"))
    assert code != 0
    assert "line 3: cloud 'OCI' is not one of AWS, AZURE, GCP" in out
    with pytest.raises(UsageError, match="line 2: cloud 'MARS'"):
        parse_rates("kind,cloud,name,value\nmultiplier,mars,photon,2\n", "rates.csv")
