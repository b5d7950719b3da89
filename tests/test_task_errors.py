"""Capture of task errors: runs/get-output once per failed task run and iteration, refusals
kept, the re-signing migration, and the targets (coverage, grouping, request counts)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import duckdb
import pytest

from extractor.analytics import signatures
from extractor.analytics.failures import resign_errors, signature_columns
from extractor.dev.targets import failure_figures
from extractor.extract import extract
from extractor.flatten import bound_trace
from extractor.plan import ExtractOptions
from extractor.store import Store
from tests.conftest import MakeSim, Sim

OUTPUT = "/api/2.2/jobs/runs/get-output"


def _extract(sim: Sim, options: ExtractOptions | None = None) -> Any:
    with sim.client() as client:
        return extract(
            client, sim.store, options or ExtractOptions(), now=sim.now, signer=signature_columns
        )


def _outputs(sim: Sim) -> int:
    return int(sim.server.stats()["requests"].get(OUTPUT, 0))


def _errors(sim: Sim) -> dict[int, dict[str, Any]]:
    with duckdb.connect(str(sim.db), read_only=True) as con:
        cur = con.execute("SELECT * FROM task_errors")
        names = [d[0] for d in cur.description]
        return {row[1]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


# The same targets are measured by `jobruns bench --only cost` on three other workspaces.
@pytest.mark.slow
def test_every_failed_task_run_gets_its_error_once_and_grouping_matches_the_families(
    make_sim: MakeSim,
) -> None:
    sim = make_sim(seed=5, runs=1500, jobs=30)
    _extract(sim)
    truth = sim.workspace.failure_families()
    stored = _errors(sim)
    requests = _outputs(sim)
    figures = failure_figures(sim.db, sim.workspace)
    print(
        f"\nfailed task runs and iterations {figures.failed}, error text stored"
        f" {figures.with_text} ({figures.coverage:.2%}); get-output requests {requests};"
        f" B-cubed precision {figures.precision:.3f} recall {figures.recall:.3f}"
    )
    assert figures.failed == len(truth)
    assert figures.coverage >= 0.99
    assert figures.precision >= 0.95 and figures.recall >= 0.95
    assert requests <= len(truth)
    # Never for a task that did not fail.
    assert set(stored) <= set(truth)
    assert all(r["signature_version"] == signatures.SIGNATURE_VERSION for r in stored.values())

    sim.server.reset_stats()
    _extract(sim)
    assert _outputs(sim) == 0  # nothing new failed: not one get-output
    sim.advance(6 * 3600)
    _extract(sim)
    new = set(sim.workspace.failure_families()) - set(truth)
    assert _outputs(sim) <= len(new)
    assert new <= set(_errors(sim))


def test_refused_outputs_are_recorded_once_and_no_errors_turns_it_off(make_sim: MakeSim) -> None:
    sim = make_sim(seed=5, runs=300)
    truth = sim.workspace.failure_families()
    job = sim.workspace.owner_job(next(iter(truth)))
    _extract(sim, ExtractOptions(errors=False))
    assert _outputs(sim) == 0 and not _errors(sim)
    sim.server.forbidden_jobs.add(job)
    # The job's runs were read already; only get-output meets the refusal now.
    _extract(sim)
    stored = _errors(sim)
    denied = [r for r in stored.values() if r["status"] == "permission denied"]
    assert denied and all(r["job_id"] == job for r in denied)
    # The state message is still kept as the error of a refused one.
    assert all(r["error"] == r["state_message"] for r in denied)
    sim.server.reset_stats()
    _extract(sim)
    assert _outputs(sim) == 0


def test_outputs_past_the_retention_are_not_asked(make_sim: MakeSim) -> None:
    sim = make_sim(seed=5, runs=300)
    _extract(sim, ExtractOptions(errors=False))
    sim.advance(59 * 86400)  # the simulator drops runs after 60 days; the store keeps them
    sim.server.reset_stats()
    _extract(sim)
    with duckdb.connect(str(sim.db), read_only=True) as con:
        old = con.execute(
            "SELECT count(*) FROM tasks WHERE result_state = 'FAILED'"
            " AND end_time < ?::TIMESTAMPTZ - INTERVAL 60 DAY",
            [sim.now()],
        ).fetchone()
    assert old is not None and old[0] > 0
    stored = _errors(sim)
    assert _outputs(sim) == len(stored)
    assert all(r["failed_at"] >= sim.now() - timedelta(days=60) for r in stored.values())


def test_a_long_trace_keeps_both_ends_and_its_length() -> None:
    trace = "Traceback (most recent call last):\n" + "x" * 100_000 + "\nValueError: bad"
    kept, size = bound_trace(trace)
    assert size == len(trace.encode())
    assert kept is not None and len(kept.encode()) < 33_000
    assert kept.startswith("Traceback") and kept.endswith("ValueError: bad")
    assert bound_trace("short") == ("short", 5)


def test_changed_signer_version_re_signs_stored_errors(
    make_sim: MakeSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = make_sim(seed=5, runs=300)
    _extract(sim)
    before = _errors(sim)
    assert before
    with duckdb.connect(str(sim.db)) as con:
        con.execute("UPDATE task_errors SET signature = 'stale'")
        assert resign_errors(con) == 0  # same version: nothing to do
        monkeypatch.setattr("extractor.analytics.failures.SIGNATURE_VERSION", 99)
        assert resign_errors(con) == len(before)
        assert resign_errors(con) == 0
    after = _errors(sim)
    assert {r: v["signature"] for r, v in after.items()} == {
        r: v["signature"] for r, v in before.items()
    }
    assert {v["signature_version"] for v in after.values()} == {99}


def test_errors_and_events_are_stored_as_they_come_and_a_crash_keeps_them(
    make_sim: MakeSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stored every LATER_BATCH answers: a large workspace's failures do not wait in memory,
    # and those stored before a crash are never asked for again.
    whole = make_sim(seed=5, runs=300)
    everything = _extract(whole)
    expected = _errors(whole)
    assert everything.errors_fetched == len(expected) > 12 and everything.cluster_events_read > 8

    monkeypatch.setattr("extractor.extract.LATER_BATCH", 4)
    sim = make_sim(seed=5, runs=300, db=whole.db.with_name("batched.duckdb"))
    batches: list[int] = []
    original = Store.insert_task_errors

    def insert_then_crash(self: Store, con: Any, workspace_id: str, rows: Any) -> None:
        original(self, con, workspace_id, rows)
        batches.append(rows.num_rows)
        if len(batches) == 3:
            raise RuntimeError("the machine went down")

    monkeypatch.setattr(Store, "insert_task_errors", insert_then_crash)
    with pytest.raises(RuntimeError, match="went down"):
        _extract(sim)
    kept = _errors(sim)
    # The crash came inside the third batch's transaction: two batches were committed.
    assert batches == [4, 4, 4] and len(kept) == 8
    with duckdb.connect(str(sim.db), read_only=True) as con:
        events_read = con.execute("SELECT count(*) FROM cluster_event_reads").fetchone()
    assert events_read is not None and events_read[0] % 4 == 0 and events_read[0] > 0

    monkeypatch.setattr(Store, "insert_task_errors", original)
    sim.server.reset_stats()
    again = _extract(sim)
    assert _outputs(sim) == len(expected) - 8 == again.errors_fetched
    drop = ("extracted_at",)
    assert {k: {c: v for c, v in r.items() if c not in drop} for k, r in _errors(sim).items()} == {
        k: {c: v for c, v in r.items() if c not in drop} for k, r in expected.items()
    }
    with (
        duckdb.connect(str(sim.db), read_only=True) as con,
        duckdb.connect(str(whole.db), read_only=True) as whole_con,
    ):
        for query in (
            "SELECT * FROM cluster_workers ORDER BY ALL",
            "SELECT * EXCLUDE (fetched_at) FROM cluster_event_reads ORDER BY ALL",
        ):
            assert con.execute(query).fetchall() == whole_con.execute(query).fetchall()
