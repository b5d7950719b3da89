"""Schema evolution: an older store is migrated in place without loss; a newer one is refused.

tests/fixtures/store-v0.duckdb is a store in the pre-release layout (schema version 0), made by
`python -m tests.test_migrations` with build_v0_store(): an extract of the simulated workspace
(seed 91, 3 jobs, 40 runs, START_MS) in the current layout, then the four columns version 1 added
and the instance-pool columns of tasks (filled from the raw JSON when added) dropped, and the
version set to '0'.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import duckdb
import pytest

from extractor.analytics.connect import connect
from extractor.errors import StoreError
from extractor.migrations import SCHEMA_HISTORY, stored_version
from extractor.schema import SCHEMA_VERSION
from tests.conftest import START_MS, MakeSim, Sim, assert_store_matches, store_rows

FIXTURE = Path(__file__).parent / "fixtures" / "store-v0.duckdb"
V0_MISSING = {
    "tasks": "iteration_count",
    "jobs": "listing_hash",
    "task_iterations": "state_message",
    "extract_state": "last_repair_sweep_at",
}
POOL_COLUMNS = ("instance_pool_id", "driver_instance_pool_id")
SEED, RUNS = 91, 40


def build_v0_store(path: Path) -> None:
    """Write the version-0 fixture (see the module docstring)."""
    from extractor.dev.simulator import Workspace, serve

    server = serve(Workspace.generate(SEED, jobs=3, runs=RUNS, now_ms=START_MS))
    try:
        path.unlink(missing_ok=True)
        Sim(server, path).extract()
    finally:
        server.stop()
    con = duckdb.connect(str(path))
    for table, column in V0_MISSING.items():
        con.execute(f'ALTER TABLE {table} DROP COLUMN "{column}"')
    for column in POOL_COLUMNS:
        con.execute(f'ALTER TABLE tasks DROP COLUMN "{column}"')
    con.execute("UPDATE jobruns_meta SET value = '0' WHERE key = 'schema_version'")
    con.execute("CHECKPOINT")
    con.close()


def _columns(db: Path, table: str) -> set[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


def test_schema_history_names_every_version() -> None:
    assert sorted(SCHEMA_HISTORY) == list(range(SCHEMA_VERSION + 1))


def test_version_0_store_is_migrated_in_place_without_loss(
    make_sim: MakeSim, tmp_path: Path
) -> None:
    db = tmp_path / "old.duckdb"
    shutil.copyfile(FIXTURE, db)
    for table, column in V0_MISSING.items():
        assert column not in _columns(db, table)
    sim = make_sim(SEED, runs=RUNS, jobs=3, db=db)
    # Rows as they were (the old columns only), before anything touches the file.
    before = {t: store_rows(db, t, sorted(_columns(db, t) - {"raw"})) for t in ("runs", "tasks")}

    sim.store.initialize()
    con = duckdb.connect(str(db), read_only=True)
    assert stored_version(con) == SCHEMA_VERSION
    con.close()
    for table in ("runs", "tasks"):
        after = store_rows(db, table, sorted(_columns(db, table) - {"raw"}))
        assert {
            k: {c: v for c, v in r.items() if c in before[table][k]} for k, r in after.items()
        } == before[table]
    # What the stored rows tell is filled in already: iteration counts and iteration messages.
    assert_store_matches(sim)

    result = sim.extract()  # and the next extract carries on as usual
    assert result.status == "ok" and result.runs_new == 0
    assert_store_matches(sim)


def test_version_1_store_gets_the_clusters_table_and_keeps_its_rows(make_sim: MakeSim) -> None:
    sim = make_sim(SEED, runs=RUNS, jobs=3)
    sim.extract()
    con = duckdb.connect(str(sim.db))
    con.execute("DROP TABLE clusters")
    con.execute("ALTER TABLE tasks ADD COLUMN raw JSON")  # dropped in version 3
    con.execute("UPDATE jobruns_meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    before = store_rows(sim.db, "runs", ["run_id", "end_time"])

    sim.store.initialize()
    assert "cluster_id" in _columns(sim.db, "clusters")
    con = duckdb.connect(str(sim.db), read_only=True)
    assert stored_version(con) == SCHEMA_VERSION
    con.close()
    assert store_rows(sim.db, "runs", ["run_id", "end_time"]) == before
    # The next extract reads the clusters the stored tasks name, though no run changed.
    result = sim.extract()
    assert result.status == "ok" and result.runs_new == 0
    assert result.clusters_fetched == len(
        {
            r[0]
            for r in duckdb.connect(str(sim.db), read_only=True)
            .execute("SELECT existing_cluster_id FROM tasks WHERE existing_cluster_id IS NOT NULL")
            .fetchall()
        }
    )


def test_old_store_can_be_read_before_it_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    shutil.copyfile(FIXTURE, db)
    con = connect(db)  # a snapshot, migrated in its copy: the views work
    try:
        assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == RUNS
        con.execute("SELECT * FROM job_reliability").fetchall()
    finally:
        con.close()
    assert "iteration_count" not in _columns(db, "tasks")  # the file itself is untouched


def test_store_from_a_newer_jobruns_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    shutil.copyfile(FIXTURE, db)
    con = duckdb.connect(str(db))
    con.execute(
        "UPDATE jobruns_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)]
    )
    con.close()
    from extractor.store import Store

    with pytest.raises(StoreError, match="written by a newer jobruns"):
        Store(db).initialize()
    with pytest.raises(StoreError, match="written by a newer jobruns"):
        connect(db)


if __name__ == "__main__":
    build_v0_store(Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURE)


def test_version_2_store_drops_the_task_runs_repeated_json_and_keeps_every_row(
    make_sim: MakeSim,
) -> None:
    sim = make_sim(SEED, runs=RUNS, jobs=3)
    sim.extract()
    con = duckdb.connect(str(sim.db))
    # A version 2 store kept each task run's JSON beside its run's, which holds it too.
    con.execute("ALTER TABLE tasks ADD COLUMN raw JSON")
    con.execute(
        "UPDATE tasks SET raw = (SELECT t FROM runs r, unnest(CAST(r.raw->'$.tasks' AS JSON[]))"
        " AS u(t) WHERE r.run_id = tasks.job_run_id AND CAST(t->>'$.run_id' AS BIGINT) = tasks.run_id)"
    )
    assert con.execute("SELECT count(*) FROM tasks WHERE raw IS NULL").fetchone() == (0,)
    con.execute("UPDATE jobruns_meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    before = {
        t: store_rows(sim.db, t, sorted(_columns(sim.db, t) - {"raw"})) for t in ("runs", "tasks")
    }

    sim.store.initialize()
    assert "raw" not in _columns(sim.db, "tasks")
    for table, rows in before.items():
        assert store_rows(sim.db, table, sorted(_columns(sim.db, table) - {"raw"})) == rows
    result = sim.extract()
    assert result.status == "ok" and result.runs_new == 0
    assert_store_matches(sim)
