"""`jobruns status`: what the store holds and whether it is fresh enough for monitoring."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from extractor.cli import cli, main
from tests.conftest import MakeSim, Sim, wall_clock_ms


def extracted(make_sim: MakeSim) -> Sim:
    sim: Sim = make_sim(seed=41, runs=120, now_ms=wall_clock_ms())
    result = CliRunner().invoke(
        cli,
        [
            "extract",
            "--host",
            sim.server.url,
            "--token",
            sim.server.token,
            "--db",
            str(sim.db),
            "-q",
            "--max-rps",
            "1000",
        ],
    )
    assert result.exit_code == 0, result.output
    return sim


def test_status_shows_rows_watermark_and_last_extract(make_sim: MakeSim) -> None:
    sim = extracted(make_sim)
    result = CliRunner().invoke(cli, ["status", "--db", str(sim.db), "--format", "json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["rows"]["runs"] == 120
    (workspace,) = info["workspaces"]
    assert workspace["workspace_id"] == str(sim.workspace.workspace_id)
    assert workspace["watermark"] and workspace["last_rescan_at"]
    assert info["last_extracts"][0]["status"] == "ok"
    assert info["last_extracts"][0]["runs_new"] == 120


def test_status_check_fails_when_the_last_success_is_too_old(make_sim: MakeSim) -> None:
    sim = extracted(make_sim)
    fresh = CliRunner().invoke(cli, ["status", "--db", str(sim.db), "--check", "--max-age", "2h"])
    assert fresh.exit_code == 0, fresh.output
    con = duckdb.connect(str(sim.db))
    con.execute("UPDATE extract_state SET last_success_at = last_success_at - INTERVAL 3 HOUR")
    con.close()
    stale = CliRunner().invoke(cli, ["status", "--db", str(sim.db), "--check", "--max-age", "2h"])
    assert stale.exit_code == 1
    assert "last successful extract: 3.0 h ago (allowed: 2h)" in str(stale.exception)


def test_status_of_a_missing_store_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["status", "--db", str(tmp_path / "none.duckdb")])
    assert exit_info.value.code == 2
    assert "run `jobruns extract`" in capsys.readouterr().err


def test_status_shows_cost_coverage_and_the_top_reasons_for_unknown(make_sim: MakeSim) -> None:
    sim = extracted(make_sim)
    text = CliRunner().invoke(cli, ["status", "--db", str(sim.db)])
    assert text.exit_code == 0, text.output
    line = next(x for x in text.output.splitlines() if x.startswith("Cost coverage:"))
    info = json.loads(
        CliRunner().invoke(cli, ["status", "--db", str(sim.db), "--format", "json"]).output
    )
    coverage = info["cost_coverage"]
    kinds = ("billed", "calibrated", "estimated", "unknown")
    assert sum(coverage[k] for k in kinds) == coverage["terminal_runs"] > 0
    # No billing imported: nothing billed or calibrated; serverless runs are unknown, and why.
    assert coverage["billed"] == coverage["calibrated"] == 0
    assert coverage["unknown"] > 0
    reasons = [r["reason"] for r in coverage["unknown_reasons"]]
    assert "serverless: cost needs billing data" in reasons
    assert "0% billed, 0% calibrated" in line and "unknown: " in line
