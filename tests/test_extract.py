"""Extraction against the simulated workspace: the store must equal what the API says."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from extractor.dev import targets
from extractor.errors import ApiError
from extractor.extract import extract
from extractor.plan import ExtractOptions
from extractor.store import Store
from tests.conftest import MakeSim, Sim, assert_store_matches, store_rows

DAY_MS = 86_400_000


def count(sim: Sim, sql: str) -> int:
    con = duckdb.connect(str(sim.db), read_only=True)
    try:
        row = con.execute(sql).fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0])


def test_first_extract_equals_ground_truth_exactly(make_sim: MakeSim) -> None:
    sim = make_sim(seed=11)
    result = sim.extract()
    assert result.status == "ok"
    truth = assert_store_matches(sim)
    assert result.runs_new == len(truth["runs"])
    # Big runs (over 100 task runs) and for-each iterations are complete.
    assert any(r["task_count"] > 100 for r in truth["runs"].values())
    assert truth["task_iterations"]
    assert count(sim, "SELECT count(*) FROM tasks") == len(truth["tasks"])


def test_stored_raw_json_is_the_run_as_the_api_gives_it(make_sim: MakeSim) -> None:
    sim = make_sim(seed=12, runs=300)
    sim.extract()
    con = duckdb.connect(str(sim.db), read_only=True)
    rows = con.execute("SELECT run_id, raw FROM runs").fetchall()
    con.close()
    for run_id, raw in rows:
        stored = json.loads(raw)
        api = sim.workspace.run_json(run_id)
        # Runs stored from the listing were not asked for their history.
        if "repair_history" not in stored:
            api.pop("repair_history", None)
        assert stored == api, run_id


def test_incremental_extract_picks_up_new_runs_completions_repairs_and_deletions(
    make_sim: MakeSim,
) -> None:
    sim = make_sim(seed=13)
    sim.extract()
    was_active = set(store_rows(sim.db, "runs", ["run_id", "is_active"], "is_active").keys())
    assert was_active
    for _ in range(6):
        sim.advance(4 * 3600)
    result = sim.extract(ExtractOptions(repair_window=timedelta(days=60)))
    assert result.runs_new > 0 and result.runs_refreshed + result.runs_changed > 0
    now = sim.workspace.now_ms
    assert_store_matches(sim, now - 3 * DAY_MS, now)
    # Every formerly active run is now stored as the API has it.
    truth = sim.workspace.ground_truth()
    stored = store_rows(sim.db, "runs", list(next(iter(truth["runs"].values())).keys()))
    for run_id in was_active:
        if run_id in truth["runs"]:
            assert stored[run_id] == truth["runs"][run_id]


def test_repair_weeks_later_is_found_by_the_rescan(make_sim: MakeSim) -> None:
    sim = make_sim(seed=14)
    sim.extract()
    old_failed = [
        r["run_id"]
        for r in sim.workspace.ground_truth()["runs"].values()
        if r["result_state"] == "FAILED" and r["start_time"] < sim.workspace.now_ms - 20 * DAY_MS
    ]
    assert old_failed
    with sim.server.lock:
        for run_id in old_failed[:3]:
            sim.workspace.repair_run(run_id)
    sim.advance(3600)
    # A plain incremental extract with a short repair window cannot see a repair 20 days back ...
    sim.extract(ExtractOptions(repair_every=timedelta(days=30)))
    # ... the rescan does, and the store then equals the API everywhere.
    result = sim.extract(ExtractOptions(rescan=True))
    assert result.rescan
    assert result.runs_changed >= 3
    assert_store_matches(sim)
    history = store_rows(sim.db, "repair_history", ["job_run_id", "repair_id", "type"])
    assert {k[0] for k, v in history.items() if v["type"] == "REPAIR"} >= set(old_failed[:3])


def test_deleted_run_gets_deleted_at_and_old_runs_are_kept(make_sim: MakeSim) -> None:
    sim = make_sim(seed=15, runs=300)
    sim.extract()
    victim = sim.workspace.run_ids(
        sim.workspace.now_ms - 10 * DAY_MS, sim.workspace.now_ms - 5 * DAY_MS
    )[0]
    with sim.server.lock:
        sim.workspace.delete_run(victim)
    result = sim.extract(ExtractOptions(rescan=True))
    assert result.runs_deleted >= 1
    assert (
        count(sim, f"SELECT count(*) FROM runs WHERE run_id = {victim} AND deleted_at IS NOT NULL")
        == 1
    )
    total_before = count(sim, "SELECT count(*) FROM runs")
    # Runs age out of the API's 60-day retention: the store keeps them, not deleted.
    for _ in range(10):
        sim.advance(86400)
    sim.extract(ExtractOptions(rescan=True))
    assert count(sim, "SELECT count(*) FROM runs") >= total_before
    oldest = sim.workspace.now_ms - 60 * DAY_MS
    assert (
        count(
            sim,
            f"SELECT count(*) FROM runs WHERE epoch_ms(start_time) < {oldest} AND deleted_at IS NOT NULL"
            f" AND run_id <> {victim}",
        )
        == 0
    )
    assert_store_matches(sim, oldest + 3_600_000, sim.workspace.now_ms)


def test_extracting_twice_changes_nothing_and_makes_few_requests(make_sim: MakeSim) -> None:
    sim = make_sim(seed=16)
    sim.extract()
    before = store_rows(sim.db, "runs", ["run_id", "end_time", "result_state", "extracted_at"])
    sim.server.reset_stats()
    result = sim.extract()
    after = store_rows(sim.db, "runs", ["run_id", "end_time", "result_state", "extracted_at"])
    active = count(sim, "SELECT count(*) FROM runs WHERE is_active")
    # Unchanged finished runs are not rewritten; only active ones are re-read.
    changed = [k for k in before if before[k] != after[k]]
    assert len(changed) <= active
    assert result.requests <= 10 + active + 2
    assert_store_matches(sim)


class _HeldRunRead(httpx.BaseTransport):
    """The simulator over HTTP, but the first runs/get is held until clusters/events is asked
    (or `hold_s` passed): the listing ends only after the events of stored runs are asked."""

    def __init__(self, hold_s: float) -> None:
        self._http = httpx.HTTPTransport()
        self._hold_s = hold_s
        self._held = False
        self._lock = threading.Lock()
        self.events_asked = threading.Event()
        self.released_by_events: bool | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/2.1/clusters/events":
            self.events_asked.set()
        elif request.url.path == "/api/2.2/jobs/runs/get":
            with self._lock:
                hold, self._held = not self._held, True
            if hold:
                self.released_by_events = self.events_asked.wait(self._hold_s)
        return self._http.handle_request(request)

    def close(self) -> None:
        self._http.close()


def test_events_and_errors_of_stored_runs_are_asked_while_the_last_runs_complete(
    make_sim: MakeSim,
) -> None:
    sim = make_sim(seed=17, runs=100)
    transport = _HeldRunRead(hold_s=10)
    result = sim.extract(ExtractOptions(flush_runs=30), transport=transport)
    assert result.status == "ok"
    assert transport.released_by_events
    assert_store_matches(sim)
    # Asked before the listing ended or after, each instance and failure is asked once.
    stats = sim.server.stats()["requests"]
    instances = targets.autoscaling_instances(sim.db)
    assert stats["/api/2.1/clusters/events"] == len(instances) == result.cluster_events_read
    failures = count(sim, "SELECT count(*) FROM task_errors")
    assert stats["/api/2.2/jobs/runs/get-output"] == failures == result.errors_fetched


class _LoopingApi:
    """A workspace whose runs/list hands back the same page token forever."""

    workspace_id = "42"
    host = "https://loop.example.com"

    def __init__(self) -> None:
        self.pages = 0

    def list_runs_page(self, **params: Any) -> dict[str, Any]:
        self.pages += 1
        return {"runs": [], "next_page_token": "same"}

    def get_run(self, run_id: int, *, include_history: bool = True) -> dict[str, Any]:
        raise AssertionError("no run is listed")

    def iter_jobs(self) -> Iterator[dict[str, Any]]:
        return iter([])

    def get_job(self, job_id: int) -> dict[str, Any]:
        raise AssertionError("no job is listed")

    def stats(self) -> dict[str, Any]:
        return {"requests": self.pages}


def test_a_repeated_runs_page_token_fails_the_extract_instead_of_looping(tmp_path: Path) -> None:
    api = _LoopingApi()
    store = Store(tmp_path / "loop.duckdb")
    since = datetime(2025, 6, 1, tzinfo=UTC)
    options = ExtractOptions(since=since, concurrency=1, slice_span=timedelta(days=2))
    with pytest.raises(ApiError, match="page token it had already returned"):
        extract(api, store, options, now=lambda: datetime(2025, 6, 2, tzinfo=UTC))
    # It stops at the first repeated token (a few slices are in flight meanwhile).
    assert api.pages < 20
    with store.connect() as con:
        assert con.execute("SELECT watermark FROM extract_state").fetchall() == []


def test_cron_extracts_leave_the_tables_in_full_row_groups_and_python_as_it_was(
    make_sim: MakeSim,
) -> None:
    # While an extract holds the store its checkpoints do not merge row groups (each commit adds
    # its own); letting go of the store merges them. Without that, every cron extract would
    # leave a few small row groups behind for good.
    sim = make_sim(seed=14, runs=200)
    interval = sys.getswitchinterval()
    sim.extract(ExtractOptions(flush_runs=40))
    for _ in range(3):
        sim.advance(1800)
        sim.extract(ExtractOptions(flush_runs=40))
        assert sys.getswitchinterval() == interval
    for table in ("runs", "tasks", "repair_history"):
        groups = count(
            sim, f"SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('{table}')"
        )
        assert groups == 1, table
    now = sim.workspace.now_ms
    assert_store_matches(sim, now - 3 * DAY_MS, now)
