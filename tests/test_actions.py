"""jobruns repair / cancel / output through the CLI against the simulator: dry runs send no
write request, --yes acts on exactly the plan, the guards hold, and the store shows the result."""

from __future__ import annotations

import json
import random
from typing import Any

import duckdb
import pytest

from extractor.actions import TRANSIENT_TERMINATION_CODES, is_transient
from extractor.actions.transient import TRANSIENT_SIGNATURES
from extractor.analytics.signatures import sign
from extractor.dev.simulator import Faults, _errors
from extractor.errors import UncertainWriteError
from tests.conftest import MakeSim, Sim, cycle_clock_ms, jobruns

REPAIR = "/api/2.2/jobs/runs/repair"


def _setup(
    make_sim: MakeSim,
    capsys: pytest.CaptureFixture[str],
    seed: int = 23,
    runs: int = 300,
    **kwargs: Any,
) -> Sim:
    # The same runs whenever the test runs; they start within 44 days of the workspace's clock,
    # at most 14 days behind the machine's: none ages past the 60-day retention.
    sim = make_sim(seed, runs=runs, jobs=12, now_ms=cycle_clock_ms(), days=44, **kwargs)
    code, text = jobruns(capsys, "extract", *_ws(sim), "-q")
    assert code == 0, text
    sim.server.reset_stats()
    return sim


def _ws(sim: Sim) -> list[str]:
    return ["--host", sim.server.url, "--token", sim.server.token, "--db", str(sim.db)]


def _sql(sim: Sim, query: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(sim.db), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def _posted(sim: Sim, path: str = REPAIR) -> list[dict[str, Any]]:
    return [e for e in sim.server.request_log("POST") if e["path"] == path]


# Failed runs that are the latest attempt of their logical run (no retry of any later number).
FAILED = (
    "SELECT run_id FROM runs AS r WHERE NOT is_active AND deleted_at IS NULL"
    " AND (result_state IN ('FAILED', 'TIMEDOUT') OR life_cycle_state = 'INTERNAL_ERROR')"
    " AND NOT EXISTS (SELECT 1 FROM runs AS o"
    "   WHERE coalesce(o.original_attempt_run_id, o.run_id)"
    "     = coalesce(r.original_attempt_run_id, r.run_id)"
    "   AND coalesce(o.attempt_number, 0) > coalesce(r.attempt_number, 0))"
)


@pytest.mark.slow
def test_repair_dry_run_then_yes_repairs_exactly_the_plan_once_and_records_it(
    make_sim: MakeSim, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = _setup(make_sim, capsys)
    expected = {r[0] for r in _sql(sim, FAILED)}
    assert len(expected) >= 3

    code, text = jobruns(capsys, "repair", "--failed-since", "60d", "--max", "500", *_ws(sim))
    assert code == 0, text
    assert "dry run" in text and f"{len(expected)} to repair" in text
    assert sim.server.request_log("POST") == []

    code, text = jobruns(capsys, "repair", "--failed-since", "60d", "--max", "1", *_ws(sim))
    assert code == 2 and "more than --max 1" in text

    code, text = jobruns(
        capsys, "repair", "--failed-since", "60d", "--max", "500", "--yes", *_ws(sim)
    )
    assert code == 0, text
    posted = _posted(sim)
    assert {e["body"]["run_id"] for e in posted} == expected
    # Single-task (legacy) runs are refused by the API: reported, not an error.
    refused = {e["body"]["run_id"] for e in posted if e["status"] != 200}
    assert all(e["status"] in (200, 400) for e in posted)
    expected -= refused
    assert all(
        e["body"]["rerun_all_failed_tasks"] and e["body"]["rerun_dependent_tasks"] for e in posted
    )
    # The store re-read them at once: `jobruns status` sees them active.
    active = {r[0] for r in _sql(sim, "SELECT run_id FROM runs WHERE is_active")}
    assert expected <= active
    rows = _sql(
        sim,
        "SELECT run_id, action, outcome, repair_id, request, actor FROM actions"
        " WHERE outcome = 'done'",
    )
    assert {r[0] for r in rows} == expected
    assert all(r[1] == "repair" and r[2] == "done" and r[3] for r in rows)
    assert json.loads(rows[0][4])["rerun_all_failed_tasks"] is True and "@" in rows[0][5]

    code, text = jobruns(
        capsys, "repair", "--failed-since", "60d", "--max", "500", "--yes", *_ws(sim)
    )
    assert code == 0, text
    assert len(_posted(sim)) == len(expected) + 2 * len(refused)  # only the refused again

    # The repairs finish by the clock; the next extract stores them.
    sim.advance(6 * 3600)
    code, text = jobruns(capsys, "extract", *_ws(sim), "-q")
    assert code == 0, text
    repaired = {
        r[0] for r in _sql(sim, "SELECT job_run_id FROM repair_history WHERE type = 'REPAIR'")
    }
    assert expected <= repaired


@pytest.mark.slow
def test_transient_only_and_a_forbidden_job_among_several(
    make_sim: MakeSim, capsys: pytest.CaptureFixture[str]
) -> None:
    # A workspace whose latest attempts include failures for transient causes.
    # Enough runs that, whatever the time of day, failures of several jobs are left after it.
    sim = _setup(make_sim, capsys, seed=31, runs=800)
    failed = {r[0] for r in _sql(sim, FAILED)}
    codes: dict[int, set[str]] = {}
    for run_id, code in _sql(
        sim,
        "SELECT job_run_id, termination_code FROM tasks WHERE result_state IN ('FAILED','TIMEDOUT')"
        " OR life_cycle_state = 'INTERNAL_ERROR'",
    ):
        codes.setdefault(run_id, set()).add(code)
    code, text = jobruns(
        capsys, "repair", "--failed-since", "60d", "--transient-only", "--max", "500", "--yes",
        *_ws(sim),
    )  # fmt: skip
    assert code == 0, text
    chosen = {e["body"]["run_id"] for e in _posted(sim)}
    assert chosen and chosen < failed
    signatures: dict[int, set[str]] = {}
    for run_id, signature, title in _sql(
        sim, "SELECT job_run_id, signature, title FROM task_errors WHERE signature IS NOT NULL"
    ):
        signatures.setdefault(run_id, set()).add(signature)
        if title.startswith("Cluster terminated: "):
            signatures[run_id].add("reason")
    for run_id in failed:
        # The latest attempts decide; every chosen run failed for a transient cause: a transient
        # termination code, or a captured error whose signature is a transient one.
        if run_id in chosen:
            transient_sigs = signatures.get(run_id, set()) & {*TRANSIENT_SIGNATURES, "reason"}
            assert codes[run_id] & TRANSIENT_TERMINATION_CODES or transient_sigs

    rest = sorted(failed - chosen)
    jobs = dict(
        _sql(sim, f"SELECT run_id, job_id FROM runs WHERE run_id IN ({','.join(map(str, rest))})")
    )
    # Forbid the job of one of them, such that a multitask run of another job is left: a
    # single-task run of the old format cannot be repaired (HTTP 400).
    multitask = {r[0] for r in _sql(sim, "SELECT job_run_id FROM tasks WHERE run_id <> job_run_id")}
    others = [jobs[r] for r in rest if any(jobs[m] != jobs[r] for m in rest if m in multitask)]
    assert others, "the workspace should leave a repairable run outside the forbidden job"
    forbidden = others[0]
    sim.server.manage_forbidden_jobs.add(forbidden)
    code, text = jobruns(capsys, "repair", *map(str, rest), "--yes", "--max", "500", *_ws(sim))
    assert code == 1
    assert f"lacks CAN MANAGE RUN on job {forbidden}" in text
    answers = {e["body"]["run_id"]: e["status"] for e in _posted(sim)}
    assert all(answers[r] == 403 for r in rest if jobs[r] == forbidden)
    assert all(answers[r] in (200, 400) for r in rest if jobs[r] != forbidden)
    assert any(answers[r] == 200 for r in rest if jobs[r] != forbidden)
    outcomes = dict(
        _sql(sim, f"SELECT outcome, count(*) FROM actions WHERE job_id = {forbidden} GROUP BY 1")
    )
    assert outcomes.get("failed", 0) >= 1


@pytest.mark.slow
def test_cancel_skips_finished_runs_and_cancels_active_ones(
    make_sim: MakeSim, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = _setup(make_sim, capsys)
    finished = _sql(sim, "SELECT run_id FROM runs WHERE NOT is_active LIMIT 1")[0][0]
    code, text = jobruns(capsys, "cancel", str(finished), "--yes", *_ws(sim))
    assert code == 0, text
    assert "already finished" in text
    assert sim.server.request_log("POST") == []

    active = [r[0] for r in _sql(sim, "SELECT run_id FROM runs WHERE is_active ORDER BY run_id")]
    assert active
    code, text = jobruns(capsys, "cancel", str(active[0]), *_ws(sim))
    assert code == 0 and "dry run" in text and sim.server.request_log("POST") == []
    code, text = jobruns(capsys, "cancel", str(active[0]), "--yes", *_ws(sim))
    assert code == 0, text
    assert [e["body"] for e in _posted(sim, "/api/2.2/jobs/runs/cancel")] == [{"run_id": active[0]}]
    sim.advance(10)
    state = sim.workspace.run_json(active[0])["state"]
    assert state["result_state"] == "CANCELED"


@pytest.mark.slow
def test_output_reads_the_api_and_exports_notebook_html(
    make_sim: MakeSim, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    sim = _setup(make_sim, capsys)
    task = _sql(
        sim,
        "SELECT run_id FROM tasks WHERE task_type = 'notebook_task' AND result_state = 'FAILED'"
        " LIMIT 1",
    )[0][0]
    code, text = jobruns(
        capsys, "output", str(task), "--export", "CODE", "-o", str(tmp_path), *_ws(sim)
    )
    assert code == 0, text
    assert "error:" in text and "saved" in text
    files = list(tmp_path.glob(f"{task}-*.html"))
    assert len(files) == 1 and "<html>" in files[0].read_text()
    assert sim.server.request_log("POST") == []


def test_a_repair_that_gets_a_5xx_is_not_retried(make_sim: MakeSim) -> None:
    sim = make_sim(23, runs=50, jobs=5, faults=Faults(error_5xx_rate=1.0, seed=3))
    with (
        sim.client(deadline_s=30, sleep=lambda s: None) as client,
        pytest.raises(UncertainWriteError),
    ):
        client.repair_run(123, latest_repair_id=None)
    assert sim.server.stats()["requests"][REPAIR] == 1


def test_transient_list_agrees_with_the_simulators_failure_families() -> None:
    for name in _errors.family_names():
        failure = _errors.draw_failure(random.Random(5), name)
        sig = sign(
            failure.error, failure.error_trace, failure.state_message, failure.termination_code
        )
        has_text = bool(failure.error or failure.error_trace)
        assert is_transient(sig, failure.termination_code, has_error_text=has_text) == (
            _errors.is_transient(name)
        ), name
