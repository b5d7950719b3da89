"""Faults and crashes: whatever happens on the way, the store ends equal to the API."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import duckdb
import pytest

from extractor.dev.simulator import Faults
from tests.conftest import MakeSim, assert_store_matches
from tests.fixtures.processes import LiveSim, make_live_sim

FAST = ("--max-rps", "1000")


def _kill_at(tmp_path: Path, seed: int, delays: list[float]) -> None:
    """Kill -9 a real extract after each delay in turn, resuming each time; then finish."""
    with make_live_sim(
        tmp_path, seed, runs=200, faults=Faults(latency_ms=15, jitter_ms=10)
    ) as live:
        for delay in delays:
            proc = live.start(live.extract_argv(*FAST, "--concurrency", "4"))
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            _assert_watermark_not_ahead(live)
        done = live.extract(*FAST)
        assert done.returncode == 0, done.stderr
        assert_store_matches(live.sim)
        again = live.extract(*FAST)  # and once more: nothing moves
        assert again.returncode == 0, again.stderr
        assert_store_matches(live.sim)


def _assert_watermark_not_ahead(live: LiveSim) -> None:
    """Whatever a killed extract left, every run before the watermark is stored as it is."""
    if not live.db.exists():
        return
    con = duckdb.connect(str(live.db), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        row = (
            con.execute("SELECT epoch_ms(max(watermark)) FROM extract_state").fetchone()
            if "extract_state" in tables
            else None
        )
    finally:
        con.close()
    if row is not None and row[0] is not None:
        assert_store_matches(live.sim, None, int(row[0]))


@pytest.mark.slow
def test_kill_9_at_any_moment_then_run_again_converges(tmp_path: Path) -> None:
    _kill_at(tmp_path, 41, [0.7, 1.4])


@pytest.mark.slow
@pytest.mark.parametrize("chain", range(4))
def test_kill_9_at_many_moments_then_run_again_converges(tmp_path: Path, chain: int) -> None:
    # 4 chains of 6 kills, 24 kill points spread over start-up, jobs, listing and flushes.
    delays = [0.3 + 0.11 * (chain + 4 * i) for i in range(6)]
    _kill_at(tmp_path, 50 + chain, delays)


def _fault_matrix(make_sim: MakeSim, seed: int, runs: int) -> None:
    faults = Faults(
        error_5xx_rate=0.05,
        html_502_rate=0.02,
        drop_rate=0.01,
        rate_limit_rps=150,
        retry_after_s=1,
        seed=seed,
    )
    sim = make_sim(seed, runs=runs, jobs=6, faults=faults)
    # Backoff and Retry-After are honoured on a 50x faster clock: same decisions, less waiting.
    result = sim.extract(sleep=lambda s: time.sleep(s / 50), rng=random.Random(seed))
    assert result.status == "ok"
    injected = sim.server.stats()["faults"]
    assert injected.get("500", 0) + injected.get("503", 0) > 0 and injected.get("502", 0) > 0
    assert_store_matches(sim)


def test_store_equals_the_api_through_5xx_html_drops_and_429s(make_sim: MakeSim) -> None:
    _fault_matrix(make_sim, 61, 250)


@pytest.mark.slow
def test_store_equals_the_api_through_the_fault_matrix_at_scale(make_sim: MakeSim) -> None:
    _fault_matrix(make_sim, 62, 1500)


def test_forbidden_job_is_skipped_named_and_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_cli_errors import jobruns

    with make_live_sim(tmp_path, 71, runs=120, jobs=4) as live:
        truth = live.server.workspace.ground_truth()["runs"]
        # A job with runs that only runs/get can complete (re-run tasks): those get 403.
        job = max(
            {r["job_id"] for r in truth.values()},
            key=lambda j: sum(r["job_id"] == j and r["repair_count"] > 0 for r in truth.values()),
        )
        live.server.forbidden_jobs.add(job)
        argv = [a for a in live.extract_argv(*FAST)[3:] if a != "--quiet"]
        code, text = jobruns(capsys, *argv)
        assert code == 0, text
        con = duckdb.connect(str(live.db), read_only=True)
        try:
            skipped = con.execute("SELECT skipped_runs FROM extract_log").fetchall()[0][0]
            stored = {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}
        finally:
            con.close()
        assert skipped, "runs of the forbidden job needing runs/get are listed as skipped"
        assert all(truth[r]["job_id"] == job for r in skipped)
        assert f"of job {job}" in text
        assert f"skipped {len(skipped)} runs without permission" in text
        # What the listing gave is kept; every other run is complete.
        assert stored == set(truth)


def _everything_stored(db: Path) -> str:
    """Every VARCHAR, JSON and list column of every table, as one text, plus the lock file."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        texts = []
        columns = con.execute(
            "SELECT table_name, column_name FROM duckdb_columns()"
            " WHERE database_name = current_database() AND NOT internal AND (data_type IN ('VARCHAR', 'JSON') OR data_type LIKE '%[]' OR data_type LIKE 'MAP%')"
        ).fetchall()
        for table, column in columns:
            rows = con.execute(f'SELECT CAST("{column}" AS VARCHAR) FROM "{table}"').fetchall()
            texts.extend(str(r[0]) for r in rows)
    finally:
        con.close()
    lock = db.with_name(db.name + ".extract-lock")
    return "\n".join(texts) + (lock.read_text() if lock.exists() else "")


@pytest.mark.slow  # two --debug subprocess extracts: CPU-heavy on 2 cores
def test_token_never_appears_in_output_logs_or_store(tmp_path: Path) -> None:
    with make_live_sim(tmp_path, 81, runs=30, jobs=3) as live:
        token = live.server.token
        ok = live.run(
            [*live.extract_argv(*FAST)[:3], "--debug", "-v", *live.extract_argv(*FAST)[3:]]
        )
        assert ok.returncode == 0, ok.stderr
        live.server.revoke(token)
        failed = live.run([*live.extract_argv()[:3], "--debug", *live.extract_argv()[3:]])
        assert failed.returncode == 1
        assert "Invalid access token" in failed.stderr
        for text in (
            ok.stdout,
            ok.stderr,
            failed.stdout,
            failed.stderr,
            _everything_stored(live.db),
        ):
            assert token not in text
            assert token[4:20] not in text
