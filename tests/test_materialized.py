"""Derived tables kept by the extract (mat_*) equal a full rebuild after incremental extracts.

Driven through the library (extractor.pipeline.extract_into), as a Python caller would: it must
leave the same store the CLI does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from extractor.analytics.materialize import refresh_materialized
from extractor.analytics.sqlfiles import materialized
from extractor.config import resolve_workspace
from extractor.pipeline import extract_into
from extractor.plan import ExtractOptions
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
