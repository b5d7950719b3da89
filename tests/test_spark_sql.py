"""The views as Spark SQL: transpiled from sql/, and giving DuckDB's answers on a real Spark."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from extractor.analytics.sqlfiles import view_files
from extractor.errors import UsageError
from extractor.lake.spark_sql import generate_sql, split_statements, transpile_views

MARTS = (
    "job_reliability",
    "run_cost",
    "job_cost",
    "wasted_spend",
    "flaky_tasks",
    "duration_regressions",
    "task_cost",
    "job_reliability_daily",
    "spend_daily",
    "spend_weekly",
    "termination_codes",
)


def test_every_view_transpiles_to_both_dialects() -> None:
    names = [v.name for v in view_files()]
    for dialect in ("databricks", "spark"):
        views = transpile_views(dialect)  # type: ignore[arg-type]
        assert [v.name for v in views] == names
        text = "\n".join(v.sql for v in views)
        assert "FROM_UTC_TIMESTAMP" not in text and "QUANTILE" not in text.upper()
        assert "TO_UTC_TIMESTAMP" in text and "PERCENTILE(" in text


def test_prefix_qualifies_tables_and_views_but_not_ctes() -> None:
    views = {v.name: v.sql for v in transpile_views("databricks", "main.jobruns")}
    assert "FROM main.jobruns.runs AS r" in views["stg_runs"]
    # int_all_purpose_usage has a CTE named `tasks`, like the table: the CTE stays unqualified.
    assert "FROM tasks AS t" in views["int_all_purpose_usage"]
    assert "FROM main.jobruns.stg_tasks" in views["int_all_purpose_usage"]
    with pytest.raises(UsageError):
        transpile_views("databricks", "a.b.c")


def test_generated_script_registers_parquet_tables_with_their_schema() -> None:
    script = generate_sql("spark", location="/lake", fmt="parquet")
    statements = split_statements(script)
    assert statements[0].startswith("CREATE TABLE IF NOT EXISTS runs (")
    assert "PARTITIONED BY (workspace_id, start_month) LOCATION '/lake/runs'" in statements[0]
    assert statements[1] == "MSCK REPAIR TABLE runs"
    views = sum(s.startswith("CREATE OR REPLACE VIEW") for s in statements)
    tables = [
        s.split()[2]
        for s in statements
        if s.endswith(" USING PARQUET AS") or " USING PARQUET AS\n" in s
    ]
    # The materialized views are tables, each dropped first so that the script can run again.
    materialized = [v.name for v in view_files() if v.materialized_by is not None]
    assert tables == materialized
    assert all(f"DROP TABLE IF EXISTS {name}" in statements for name in materialized)
    assert views + len(tables) == len(view_files())
    databricks = split_statements(generate_sql("databricks"))
    replaced = [s.split()[4] for s in databricks if s.startswith("CREATE OR REPLACE TABLE")]
    assert replaced == materialized


# -- on a real Spark -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pyspark_sql = pytest.importorskip("pyspark.sql")
    warehouse = tmp_path_factory.mktemp("warehouse")
    session = (
        pyspark_sql.SparkSession.builder.master("local[2]")
        .appName("jobruns-test")
        # Not UTC on purpose: the UTC day and week of a run must not depend on the session.
        .config("spark.sql.session.timeZone", "Asia/Kolkata")
        .config("spark.sql.shuffle.partitions", "2")
        # The analyzer of the deeper views (cost calibration, failure causes) needs more heap.
        .config("spark.driver.memory", "2g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _normal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)
    return bool(a == b)


def _rounded(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(round(v, 4) if isinstance(v, float) else v for v in row)


def _order(row: tuple[Any, ...]) -> tuple[str, tuple[float, ...]]:
    exact = repr(tuple(None if isinstance(v, float) else v for v in row))
    return exact, tuple(round(v, 6) for v in row if isinstance(v, float))


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.timeout(1200)
def test_spark_views_over_a_parquet_export_give_duckdbs_answers(spark: Any, tmp_path: Path) -> None:
    from extractor.analytics.connect import connect
    from extractor.dev.demo import build_demo_store
    from extractor.lake.export import export

    db = tmp_path / "store.duckdb"
    build_demo_store(db, runs=300)
    lake = tmp_path / "lake"
    export(db, str(lake), "parquet")
    for statement in split_statements(generate_sql("spark", location=str(lake), fmt="parquet")):
        spark.sql(statement)

    con = connect(db)
    con.execute("SET TimeZone = 'UTC'")
    try:
        for view in MARTS:
            cursor = con.execute(f"SELECT * FROM {view}")
            columns = [d[0] for d in cursor.description]
            expected = [tuple(_normal(v) for v in r) for r in cursor.fetchall()]
            got_df = spark.sql(f"SELECT * FROM {view}")
            assert got_df.columns == columns, view
            got = [tuple(_normal(v) for v in r) for r in got_df.collect()]
            assert len(got) == len(expected), f"{view}: {len(got)} rows, DuckDB {len(expected)}"
            # Order-insensitive: rows sorted by their values other than floats, then by their
            # floats, compared within floating-point tolerance (sums added in another order
            # differ in the last bits, which may cross a rounding boundary).
            for e, g in zip(sorted(expected, key=_order), sorted(got, key=_order), strict=True):
                assert all(_close(a, b) for a, b in zip(e, g, strict=True)), (
                    f"{view}: DuckDB row {e}, Spark row {g}"
                )
    finally:
        con.close()


@pytest.mark.slow
def test_duckdb_reads_a_delta_export_like_the_store(tmp_path: Path) -> None:
    """Delta cannot be read by an offline Spark (its jars): read it back with delta-rs and DuckDB."""
    deltalake = pytest.importorskip("deltalake")
    from extractor.analytics.views import create_views
    from extractor.lake.export import export

    db = tmp_path / "store.duckdb"
    from extractor.dev.demo import build_demo_store

    build_demo_store(db, runs=120, jobs=8)
    lake = tmp_path / "lake"
    export(db, str(lake), "delta")
    con = duckdb.connect()
    tables = (
        "runs",
        "tasks",
        "repair_history",
        "task_iterations",
        "jobs",
        "clusters",
        "instance_pools",
        "node_types",
        "cluster_workers",
        "task_errors",
        "rate_card",
    )
    for table in tables:
        con.register(f"{table}_arrow", deltalake.DeltaTable(str(lake / table)).to_pyarrow_dataset())
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM {table}_arrow")
    create_views(con)
    store = duckdb.connect(str(db), read_only=True)
    create_views(store, temporary=True)
    for view in ("job_reliability", "job_cost", "flaky_tasks"):
        # Sums of floats may differ in the last digit with the order rows are read in.
        want = sorted(map(repr, map(_rounded, store.execute(f"SELECT * FROM {view}").fetchall())))
        got = sorted(map(repr, map(_rounded, con.execute(f"SELECT * FROM {view}").fetchall())))
        assert got == want, view
    store.close()
    con.close()
