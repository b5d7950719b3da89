"""Derived tables kept by the extract (mat_*) equal a full rebuild after incremental extracts.

Driven through the library (extractor.pipeline.extract_into), as a Python caller would: it must
leave the same store the CLI does.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import duckdb
import pytest
from _pytest.logging import LogCaptureFixture

from extractor import pipeline
from extractor.analytics import materialize
from extractor.analytics.materialize import refresh_materialized
from extractor.analytics.sqlfiles import materialized
from extractor.config import resolve_workspace
from extractor.errors import StoreError
from extractor.pipeline import extract_into
from extractor.plan import ExtractOptions
from extractor.schema import table_names
from extractor.store import Store
from tests.conftest import DAY_MS, MakeSim, Sim, wall_clock_ms


def extract(sim: Sim, *, rescan: bool = False) -> None:
    config = resolve_workspace(host=sim.server.url, token=sim.server.token, env={})
    (outcome,) = extract_into(sim.db, [("sim", config)], ExtractOptions(rescan=rescan), max_rps=1e3)
    assert outcome.error is None, outcome.error


def rows(db: Path, table: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        fetched = con.execute(f"SELECT * FROM mat_{table}").fetchall()
    finally:
        con.close()
    # Sums may add in another order: equal to 9 significant digits is equal.
    return sorted(
        (tuple(float(f"{v:.9g}") if isinstance(v, float) else v for v in row) for row in fetched),
        key=repr,
    )


def test_incremental_refresh_equals_a_full_rebuild(make_sim: MakeSim, tmp_path: Path) -> None:
    sim: Sim = make_sim(seed=51, runs=200, now_ms=wall_clock_ms())
    extract(sim)
    now = sim.workspace.now_ms
    failed = [
        r["run_id"]
        for r in sim.workspace.ground_truth(now - 40 * DAY_MS, now - 2 * DAY_MS)["runs"].values()
        if r["result_state"] == "FAILED"
    ]
    assert failed
    repaired = 0
    with sim.server.lock:
        for run_id in failed:
            try:
                sim.workspace.repair_run(run_id, at_ms=now - 3_600_000)
                repaired += 1
            except ValueError:  # legacy single-task runs cannot be repaired
                continue
            if repaired == 3:
                break
        sim.workspace.delete_run(sim.workspace.run_ids(now - 9 * DAY_MS, now - 8 * DAY_MS)[0])
    assert repaired
    extract(sim, rescan=True)
    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copy(sim.db, rebuilt)
    con = duckdb.connect(str(rebuilt))
    refresh_materialized(con, None)
    con.close()
    for table in materialized():
        assert rows(sim.db, table) == rows(rebuilt, table), table


def test_a_full_rebuild_grows_a_small_pool_and_equals_one_in_a_large(
    make_sim: MakeSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: LogCaptureFixture
) -> None:
    sim: Sim = make_sim(seed=52, runs=80, now_ms=wall_clock_ms())
    extract(sim)
    large = tmp_path / "large.duckdb"
    shutil.copy(sim.db, large)
    with duckdb.connect(str(large)) as con:
        con.execute("SET memory_limit = '2GiB'")
        refresh_materialized(con, None)
    # A pool this small runs out on the first definition: each statement that does runs again.
    monkeypatch.setattr(materialize, "REFRESH_MEMORY_LIMIT", "1MiB")
    with duckdb.connect(str(sim.db)) as con, caplog.at_level(logging.INFO, "jobruns"):
        con.execute("SET memory_limit = '1MiB'")
        con.execute("SET threads = 1")
        refresh_materialized(con, None)
        # The settings of the connection are its own again.
        assert con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == "1.0 MiB"
        assert con.execute("SELECT current_setting('threads')").fetchall()[0][0] == 1
        assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    assert "ran out of 1.0 MiB of memory" in caplog.text
    assert any(rows(sim.db, table) for table in materialized())
    for table in materialized():
        assert rows(sim.db, table) == rows(large, table), table


def test_a_failed_full_rebuild_leaves_the_derived_tables_as_they_were(
    make_sim: MakeSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim: Sim = make_sim(seed=53, runs=60, now_ms=wall_clock_ms())
    extract(sim)
    before = {table: rows(sim.db, table) for table in materialized()}
    with duckdb.connect(str(sim.db)) as con:
        # What a rebuild killed before its swap leaves behind.
        con.execute("CREATE TABLE mat_int_run_cost__rebuilt AS SELECT 1 AS stray")
        con.execute("DELETE FROM runs WHERE run_id IN (SELECT run_id FROM runs LIMIT 30)")
        monkeypatch.setattr(materialize, "REFRESH_MEMORY_LIMIT", "1MiB")
        monkeypatch.setattr(materialize, "REFRESH_MEMORY_MAX", "2MiB")
        con.execute("SET memory_limit = '1MiB'")
        with pytest.raises(duckdb.OutOfMemoryException):
            refresh_materialized(con, None)
        con.execute("SET memory_limit = '1GiB'")
        assert not [t for t in table_names(con) if t.endswith("__rebuilt")]
    assert {table: rows(sim.db, table) for table in materialized()} == before
    monkeypatch.undo()
    with duckdb.connect(str(sim.db)) as con:
        refresh_materialized(con, None)
        assert not [t for t in table_names(con) if t.endswith("__rebuilt")]
    after = {table: rows(sim.db, table) for table in materialized()}
    assert len(after["int_run_cost"]) == len(before["int_run_cost"]) - 30


def _repair_failed_runs(sim: Sim, count: int) -> int:
    now = sim.workspace.now_ms
    repaired = 0
    with sim.server.lock:
        for run in sim.workspace.ground_truth(now - 40 * DAY_MS, now - 2 * DAY_MS)["runs"].values():
            if run["result_state"] != "FAILED":
                continue
            try:
                sim.workspace.repair_run(run["run_id"], at_ms=now - 3_600_000)
            except ValueError:  # legacy single-task runs cannot be repaired
                continue
            repaired += 1
            if repaired == count:
                break
    return repaired


def assert_equal_to_a_rebuild(sim: Sim, tmp_path: Path) -> None:
    rebuilt = tmp_path / "rebuilt.duckdb"
    shutil.copy(sim.db, rebuilt)
    with duckdb.connect(str(rebuilt)) as con:
        refresh_materialized(con, None)
    for table in materialized():
        assert rows(sim.db, table) == rows(rebuilt, table), table


def test_an_extract_that_fails_or_is_killed_leaves_the_next_one_right(
    make_sim: MakeSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim: Sim = make_sim(seed=54, runs=60, now_ms=wall_clock_ms())
    extract(sim)
    config = resolve_workspace(host=sim.server.url, token=sim.server.token, env={})

    # A workspace that fails half-way: its runs are committed, the jobs (stored last) are not.
    assert _repair_failed_runs(sim, 2)

    def full_disk(*args: object, **kwargs: object) -> None:
        raise StoreError("cannot write the store: disk full")

    with monkeypatch.context() as patch:
        patch.setattr(Store, "upsert_jobs", full_disk)
        (outcome,) = extract_into(
            sim.db, [("sim", config)], ExtractOptions(rescan=True), max_rps=1e3
        )
    assert isinstance(outcome.error, StoreError)
    assert_equal_to_a_rebuild(sim, tmp_path)

    # An extract killed after its data committed, before its refresh.
    now = sim.workspace.now_ms
    with sim.server.lock:
        sim.workspace.delete_run(sim.workspace.run_ids(now - 9 * DAY_MS, now - 2 * DAY_MS)[0])

    def killed(*args: object, **kwargs: object) -> None:
        raise SystemExit(137)

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "refresh_materialized", killed)
        with pytest.raises(SystemExit):
            extract(sim, rescan=True)
    with duckdb.connect(str(sim.db), read_only=True) as con:
        assert con.execute("SELECT value FROM jobruns_meta WHERE key = 'refresh_owed'").fetchall()
    # The next extract has nothing new to read, yet rebuilds what the killed one left stale.
    extract(sim)
    assert_equal_to_a_rebuild(sim, tmp_path)
    with duckdb.connect(str(sim.db), read_only=True) as con:
        assert not con.execute("SELECT 1 FROM jobruns_meta WHERE key = 'refresh_owed'").fetchall()
