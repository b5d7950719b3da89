"""Several workspaces in one store: each equals its own ground truth, none leaks into another."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from extractor.cli import cli
from tests.conftest import Sim, assert_store_matches, wall_clock_ms

FAST = ("--max-rps", "1000")


def write_profiles(path: Path, sims: dict[str, Sim], bad: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    lines = []
    for name, sim in sims.items():
        token = "dapi-wrong" if name in bad else sim.server.token
        lines += [f"[{name}]", f"host = {sim.server.url}", f"token = {token}", ""]
    path.write_text("\n".join(lines))


def test_all_profiles_extract_each_workspace_into_one_store(
    make_sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "fleet.duckdb"
    sims = {
        "dev": make_sim(seed=21, runs=120, db=db, now_ms=wall_clock_ms()),
        "staging": make_sim(seed=22, runs=150, db=db, now_ms=wall_clock_ms()),
        "prod": make_sim(seed=23, runs=180, db=db, now_ms=wall_clock_ms()),
    }
    config = tmp_path / "databrickscfg"
    write_profiles(config, sims)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    result = CliRunner().invoke(
        cli, ["extract", "--all-profiles", "--db", str(db), "--quiet", *FAST]
    )
    assert result.exit_code == 0, result.output
    totals = {"runs": 0, "tasks": 0, "repair_history": 0, "task_iterations": 0}
    ids = set()
    for sim in sims.values():
        truth = assert_store_matches(sim)
        for table in totals:
            totals[table] += len(truth[table])
        ids.add(str(sim.workspace.workspace_id))
    con = duckdb.connect(str(db), read_only=True)
    try:
        for table, expected in totals.items():
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone() == (expected,)
        stored_ids = {
            r[0] for r in con.execute("SELECT DISTINCT workspace_id FROM runs").fetchall()
        }
        states = con.execute("SELECT count(*) FROM extract_state").fetchone()
    finally:
        con.close()
    assert stored_ids == ids
    assert states == (3,)
    status = CliRunner().invoke(cli, ["status", "--db", str(db)])
    assert status.exit_code == 0
    for workspace_id in ids:
        assert f"workspace {workspace_id}" in status.output


@pytest.mark.slow
def test_one_failing_workspace_does_not_stop_the_others(
    make_sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "fleet.duckdb"
    sims = {
        "good": make_sim(seed=24, runs=120, db=db, now_ms=wall_clock_ms()),
        "broken": make_sim(seed=25, runs=120, db=db, now_ms=wall_clock_ms()),
    }
    config = tmp_path / "databrickscfg"
    write_profiles(config, sims, bad={"broken"})
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    result = CliRunner().invoke(
        cli, ["extract", "--profile", "good", "--profile", "broken", "--db", str(db), *FAST]
    )
    assert result.exit_code == 1
    message = str(result.exception)
    assert "1 of 2 workspaces failed" in message
    assert "broken" in message and "authentication failed" in message
    assert "workspace broken" in result.output  # the summary names it too
    assert_store_matches(sims["good"])
