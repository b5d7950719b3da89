"""`jobruns export`: Delta and Parquet copies of the store, written incrementally."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from extractor.lake.export import export
from extractor.lake.tables import EXPORT_TABLES, PARTITION_COLUMNS
from extractor.plan import ExtractOptions
from extractor.schema import TABLES
from tests.conftest import MakeSim, Sim

deltalake = pytest.importorskip("deltalake")

DAY_MS = 86_400_000


def _exported(con: duckdb.DuckDBPyConnection, root: Path, fmt: str, table: str) -> str:
    """Register the exported table in `con` and return the name to select from."""
    name = f"exported_{table}"
    if fmt == "delta":
        dataset = deltalake.DeltaTable(str(root / table)).to_pyarrow_dataset()
        con.register(name, dataset)
    else:
        files = sorted((root / table).rglob("*.parquet"))
        if not files:
            return ""
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet("
            f"'{root / table}/**/*.parquet', hive_partitioning = true, hive_types_autocast = false)"
        )
    return name


def assert_export_matches(db: Path, root: Path, fmt: str) -> None:
    """Every exported table holds exactly the store's rows (JSON as text), once each."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{db}' AS store (READ_ONLY)")
    for table in EXPORT_TABLES:
        columns = ", ".join(
            f'CAST("{c}" AS VARCHAR) AS "{c}"' if t == "JSON" else f'"{c}"'
            for c, t in TABLES[table].items()
        )
        if (
            table == "rate_card"
            and not con.execute("SELECT count(*) FROM store.rate_card").fetchall()[0][0]
        ):
            continue  # the shipped card is exported in place of an empty one
        name = _exported(con, root, fmt, table)
        stored = con.execute(f"SELECT count(*) FROM store.{table}").fetchall()[0][0]
        if not name:
            assert stored == 0, table
            continue
        got = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        assert got == stored, f"{table}: {got} exported rows, {stored} stored"
        for a, b in ((f"store.{table}", name), (name, f"store.{table}")):
            diff = con.execute(
                f"SELECT count(*) FROM (SELECT {columns} FROM {a} EXCEPT ALL SELECT {columns} FROM {b})"
            ).fetchall()[0][0]
            assert diff == 0, f"{table}: {diff} rows of {a} not in {b}"
    con.close()


def _parquet_files(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*.parquet")}


def _delta_versions(root: Path) -> dict[str, int]:
    return {t: deltalake.DeltaTable(str(root / t)).version() for t in EXPORT_TABLES}


@pytest.fixture
def sim(make_sim: MakeSim) -> Sim:
    sim: Sim = make_sim(seed=21, runs=150, jobs=10)
    sim.extract()
    return sim


# The default suite's slowest test (Delta's writer, about 9 s) runs with the slow ones; the Parquet
# export below covers the same path in the default suite.
@pytest.mark.slow
def test_delta_export_equals_the_store_and_a_second_export_commits_nothing(
    sim: Sim, tmp_path: Path
) -> None:
    root = tmp_path / "lake"
    first = export(sim.db, str(root), "delta")
    assert first.rows > 0
    assert_export_matches(sim.db, root, "delta")
    runs = deltalake.DeltaTable(str(root / "runs"))
    assert runs.metadata().partition_columns == ["workspace_id", "start_month"]
    versions = _delta_versions(root)
    again = export(sim.db, str(root), "delta")
    assert again.rows == 0 and again.partitions == 0
    assert _delta_versions(root) == versions


def test_parquet_export_equals_the_store_and_a_second_export_touches_no_file(
    sim: Sim, tmp_path: Path
) -> None:
    root = tmp_path / "lake"
    export(sim.db, str(root), "parquet")
    assert_export_matches(sim.db, root, "parquet")
    ws = str(sim.workspace.workspace_id)
    months = sorted(p.name for p in (root / "tasks" / f"workspace_id={ws}").iterdir())
    assert months and all(m.startswith("start_month=20") for m in months)
    files = _parquet_files(root)
    again = export(sim.db, str(root), "parquet")
    assert again.rows == 0
    assert _parquet_files(root) == files


@pytest.mark.parametrize("fmt", [pytest.param("delta", marks=pytest.mark.slow), "parquet"])
def test_repaired_deleted_and_new_runs_are_merged_without_duplicates(
    make_sim, tmp_path: Path, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    sim = make_sim(seed=14, runs=300, jobs=10)
    sim.extract()
    root = tmp_path / "lake"
    export(sim.db, str(root), fmt)  # type: ignore[arg-type]
    truth = sim.workspace.ground_truth()["runs"]
    now = sim.workspace.now_ms
    failed = [r["run_id"] for r in truth.values() if r["result_state"] == "FAILED"]
    victim = sim.workspace.run_ids(now - 10 * DAY_MS, now - 5 * DAY_MS)[0]
    repaired = []
    with sim.server.lock:
        for run_id in failed:
            try:
                sim.workspace.repair_run(run_id)
                repaired.append(run_id)
            except ValueError:
                continue
            if len(repaired) == 2:
                break
        sim.workspace.delete_run(victim)
    assert repaired
    sim.advance(3600)
    sim.extract(ExtractOptions(rescan=True))
    before = _parquet_files(root) if fmt == "parquet" else {}
    result = export(sim.db, str(root), fmt)  # type: ignore[arg-type]
    assert result.rows > 0
    assert_export_matches(sim.db, root, fmt)
    con = duckdb.connect()
    tasks = _exported(con, root, fmt, "tasks")
    dupes = con.execute(
        f"SELECT count(*) FROM (SELECT workspace_id, run_id FROM {tasks} GROUP BY ALL HAVING count(*) > 1)"
    ).fetchall()[0][0]
    assert dupes == 0
    runs = _exported(con, root, fmt, "runs")
    deleted = con.execute(
        f"SELECT deleted_at IS NOT NULL FROM {runs} WHERE run_id = {victim}"
    ).fetchall()
    assert deleted == [(True,)]
    if fmt == "parquet":
        # Only partitions of changed runs were rewritten: some files are untouched.
        after = _parquet_files(root)
        assert set(before) & set(after)


def test_export_state_is_kept_per_destination_and_a_lost_destination_is_rewritten(
    sim: Sim, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    first = export(sim.db, str(a), "parquet")
    con = duckdb.connect(str(sim.db), read_only=True)
    rows = con.execute(
        "SELECT destination, table_name, workspace_id, watermark IS NOT NULL FROM export_state"
        " WHERE table_name = 'runs'"
    ).fetchall()
    con.close()
    assert rows == [(str(a), "runs", str(sim.workspace.workspace_id), True)]
    # Another destination starts from nothing; a destination deleted by hand is rewritten whole.
    assert export(sim.db, str(b), "parquet").rows == first.rows
    shutil.rmtree(a / "tasks")
    redo = export(sim.db, str(a), "parquet")
    assert {t.table: t.rows for t in redo.tables}["tasks"] > 0
    assert_export_matches(sim.db, a, "parquet")


def test_since_limits_the_runs_exported(sim: Sim, tmp_path: Path) -> None:
    root = tmp_path / "lake"
    since = sim.now() - timedelta(days=7)
    export(sim.db, str(root), "delta", since=since)
    con = duckdb.connect()
    runs = _exported(con, root, "delta", "runs")
    oldest = con.execute(f"SELECT min(start_time) FROM {runs}").fetchall()[0][0]
    assert oldest >= since
    jobs = _exported(con, root, "delta", "jobs")
    assert con.execute(f"SELECT count(*) FROM {jobs}").fetchall()[0][0] > 0


@pytest.mark.slow
def test_two_stores_exporting_into_one_delta_location_at_once_both_land(
    make_sim, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sims = [make_sim(seed=31, runs=160, jobs=8), make_sim(seed=32, runs=160, jobs=8)]
    assert sims[0].workspace.workspace_id != sims[1].workspace.workspace_id
    for s in sims:
        s.extract()
    root = tmp_path / "shared-lake"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "extractor.cli",
                "export",
                str(root),
                "--db",
                str(s.db),
                "--batch-rows",
                "100",
                "--quiet",
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in sims
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    con = duckdb.connect()
    for table in ("runs", "tasks", "jobs"):
        name = _exported(con, root, "delta", table)
        got = dict(
            con.execute(f"SELECT workspace_id, count(*) FROM {name} GROUP BY ALL").fetchall()
        )
        for s in sims:
            stored = duckdb.connect(str(s.db), read_only=True)
            want = stored.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            stored.close()
            assert got[str(s.workspace.workspace_id)] == want, table


def test_cli_writes_the_views_as_databricks_sql(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from extractor.cli import cli

    out = tmp_path / "views.sql"
    args = ["export", "s3://bucket/jobruns", "--sql-only", "--sql-dialect", "databricks"]
    args += ["--table-prefix", "main.jobruns", "--sql-file", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert (
        "CREATE TABLE IF NOT EXISTS main.jobruns.runs USING DELTA LOCATION 's3://bucket/jobruns/runs'"
        in text
    )
    assert "CREATE OR REPLACE VIEW main.jobruns.job_reliability AS" in text
    assert "FROM main.jobruns.int_job_reliability" in text
    assert PARTITION_COLUMNS["runs"] == ("workspace_id", "start_month")
