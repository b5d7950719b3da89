"""What `jobruns repair --cause` and `jobruns cancel --job ID --all` select and send, through
the CLI against the simulator."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tests.conftest import MakeSim, jobruns, wall_clock_ms
from tests.test_actions import FAILED, _posted, _sql, _ws

CANCEL_ALL = "/api/2.2/jobs/runs/cancel-all"
# The cause of each task's last attempt that failed: what a repair would re-run (an earlier
# attempt that failed and was retried is not).
LATEST_FAILURE_CAUSES = (
    "SELECT e.job_run_id, e.signature FROM task_errors AS e JOIN tasks AS t"
    " ON t.workspace_id = e.workspace_id AND t.run_id = e.run_id"
    " WHERE e.signature IS NOT NULL AND NOT EXISTS (SELECT 1 FROM tasks AS l"
    "   WHERE l.workspace_id = t.workspace_id AND l.job_run_id = t.job_run_id"
    "   AND l.task_key = t.task_key AND l.start_time > t.start_time)"
)


@pytest.mark.slow
def test_repair_by_cause_plans_exactly_the_runs_that_failed_for_it(
    make_sim: MakeSim, capsys: pytest.CaptureFixture[str]
) -> None:
    # The workspace is generated up to the wall clock (`--failed-since` counts back from it),
    # so which runs failed, and why, moves with the time of day: the first of a few seeds whose
    # failures have a cause shared by some of them but not all, so the filter has work to do.
    for seed in (23, 25, 27, 29, 31):
        sim = make_sim(seed, runs=150, jobs=8, now_ms=wall_clock_ms(), days=50)
        code, text = jobruns(capsys, "extract", *_ws(sim), "-q")
        assert code == 0, text
        failed = {r[0] for r in _sql(sim, FAILED)}
        by_signature: dict[str, set[int]] = {}
        for run_id, signature in _sql(sim, LATEST_FAILURE_CAUSES):
            if run_id in failed:
                by_signature.setdefault(signature, set()).add(run_id)
        counts = Counter({s: len(r) for s, r in by_signature.items() if len(r) < len(failed)})
        if counts:
            break
    else:
        pytest.fail("none of the seeds has a cause shared by some failed runs but not all")
    sim.server.reset_stats()
    signature, _ = counts.most_common(1)[0]
    expected = by_signature[signature]

    code, text = jobruns(
        capsys, "repair", "--failed-since", "60d", "--cause", signature, "--max", "500", *_ws(sim)
    )
    assert code == 0, text
    planned = {int(r) for r in re.findall(r"run (\d+) job \d+", text)}
    assert planned == expected, text
    assert f"dry run: {len(expected)} to repair" in text
    assert sim.server.request_log("POST") == []

    # Upper case and a cause nobody has: the same answer, and an empty plan.
    code, text = jobruns(
        capsys, "repair", "--failed-since", "60d", "--cause", signature.upper(), *_ws(sim)
    )
    assert code == 0 and f"dry run: {len(expected)} to repair" in text
    code, text = jobruns(capsys, "repair", "--failed-since", "60d", "--cause", "0" * 12, *_ws(sim))
    assert code == 0 and "no run to repair" in text


@pytest.mark.slow
def test_cancel_all_of_a_job_sends_one_request_and_the_store_sees_its_runs_end(
    make_sim: MakeSim, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = make_sim(23, runs=300, jobs=12, now_ms=wall_clock_ms(), days=50)
    code, text = jobruns(capsys, "extract", *_ws(sim), "-q")
    assert code == 0, text
    sim.server.reset_stats()
    job_id, active = _sql(
        sim,
        "SELECT job_id, count(*) FROM runs WHERE is_active GROUP BY job_id ORDER BY 2 DESC, 1",
    )[0]
    others = _sql(sim, f"SELECT count(*) FROM runs WHERE is_active AND job_id <> {job_id}")[0][0]

    code, text = jobruns(capsys, "cancel", "--all", *_ws(sim))
    assert code == 2 and "exactly one --job" in text
    code, text = jobruns(capsys, "cancel", "--job", str(job_id), "--queued", *_ws(sim))
    assert code == 2 and "--queued goes with --all" in text

    code, text = jobruns(capsys, "cancel", "--job", str(job_id), "--all", *_ws(sim))
    assert code == 0, text
    assert f"({active} active runs in the store)" in text and "dry run" in text
    assert sim.server.request_log("POST") == []

    code, text = jobruns(
        capsys, "cancel", "--job", str(job_id), "--all", "--queued", "--yes", *_ws(sim)
    )
    assert code == 0, text
    assert [e["body"] for e in _posted(sim, CANCEL_ALL)] == [
        {"job_id": job_id, "all_queued_runs": True}
    ]
    assert _sql(sim, "SELECT count(*) FROM actions WHERE action = 'cancel-all'")[0][0] == 1

    sim.advance(10)
    code, text = jobruns(capsys, "extract", *_ws(sim), "-q")
    assert code == 0, text
    assert _sql(sim, f"SELECT count(*) FROM runs WHERE is_active AND job_id = {job_id}")[0][0] == 0
    canceled = _sql(
        sim,
        f"SELECT count(*) FROM runs WHERE job_id = {job_id} AND result_state = 'CANCELED'",
    )[0][0]
    assert canceled >= active
    # Runs of other jobs are untouched (some may have ended on their own meanwhile).
    still = _sql(sim, f"SELECT count(*) FROM runs WHERE is_active AND job_id <> {job_id}")[0][0]
    assert still > 0 or others == 0
