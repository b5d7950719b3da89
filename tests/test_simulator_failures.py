"""The simulated workspace's failures: every failed task run has a known family, its texts agree
with its state, and runs/get-output answers with the real shapes and error codes."""

from __future__ import annotations

from collections import Counter, defaultdict

import httpx
import pytest

from extractor.dev.simulator._failures import OUTPUT_FAMILIES, RECENT_MS, RECENT_ONLY, STATE_ONLY
from extractor.dev.simulator.workspace import MULTI_TASK_OUTPUT, ApiError, Workspace
from tests.conftest import START_MS, MakeSim

OUTPUT = "/api/2.2/jobs/runs/get-output"


@pytest.fixture(scope="module")
def ws() -> Workspace:
    return Workspace.generate(5, jobs=30, runs=3000, now_ms=START_MS)


def test_failure_families_are_deterministic() -> None:
    a = Workspace.generate(3, jobs=10, runs=400, now_ms=START_MS).failure_families()
    b = Workspace.generate(3, jobs=10, runs=400, now_ms=START_MS).failure_families()
    assert a == b and a


def test_families_are_varied_repeated_per_job_and_some_only_recent(ws: Workspace) -> None:
    families = ws.failure_families()
    assert len(set(families.values())) >= 15
    per_job: dict[int, Counter[str]] = defaultdict(Counter)
    starts: dict[str, list[int]] = defaultdict(list)
    for rid, family in families.items():
        job = ws.owner_job(rid)
        assert job is not None
        per_job[job][family] += 1
        task = ws._task_index[rid][1] if rid in ws._task_index else ws.runs[rid].tasks[-1]
        starts[family].append(task.start)
    # Some jobs fail again and again with one cause (beside the odd cluster or library failure).
    habitual = [c for c in per_job.values() if c.most_common(1)[0][1] >= max(5, 0.6 * c.total())]
    assert len(habitual) >= 2
    for family in RECENT_ONLY:
        assert starts[family], family
        assert min(starts[family]) >= START_MS - RECENT_MS


def test_state_messages_carry_cluster_failures_and_output_carries_the_rest(ws: Workspace) -> None:
    seen = set()
    for rid, family in ws.failure_families().items():
        if rid not in ws._task_index:
            continue
        out = ws.api_get_output({"run_id": str(rid)})
        task = out["metadata"]["tasks"][0]
        message = task["status"]["termination_details"]["message"]
        if family in STATE_ONLY:
            assert "error" not in out and message, family
        if family in ("cloud_launch_failure", "spot_loss", "driver_unreachable"):
            assert "luster" in message
        if family in OUTPUT_FAMILIES:
            assert out["error"] and out["error"].splitlines()[0][:100] in message
        if family == "timeout":
            assert task["state"]["result_state"] == "TIMEDOUT"
        seen.add(family)
    assert {"cloud_launch_failure", "driver_unreachable", "table_not_found"} <= seen


def test_get_output_refuses_a_multi_task_parent_and_unknown_runs(ws: Workspace) -> None:
    parent = next(r for r in ws.runs.values() if not r.legacy and not r.skipped)
    with pytest.raises(ApiError) as exc:
        ws.api_get_output({"run_id": str(parent.run_id)})
    assert exc.value.status == 400
    assert exc.value.body() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": MULTI_TASK_OUTPUT,
    }
    with pytest.raises(ApiError) as exc:
        ws.api_get_output({"run_id": "12345"})
    assert exc.value.body()["message"] == "Run 12345 does not exist."


def test_succeeded_task_output_has_no_error(ws: Workspace) -> None:
    families = ws.failure_families()
    rid = next(r for r, (_, t) in ws._task_index.items() if r not in families and t.end < START_MS)
    out = ws.api_get_output({"run_id": str(rid)})
    assert "error" not in out and out["metadata"]["run_id"] == rid


def test_served_get_output_and_forbidden_job(make_sim: MakeSim) -> None:
    sim = make_sim(seed=5, runs=300)
    workspace = sim.workspace
    rid = next(iter(workspace.failure_families()))
    headers = {"Authorization": f"Bearer {sim.server.token}"}
    with httpx.Client(base_url=sim.server.url, headers=headers) as http:
        ok = http.get(OUTPUT, params={"run_id": rid})
        assert ok.status_code == 200 and ok.json()["metadata"]["run_id"] == rid
        sim.server.forbidden_jobs.add(workspace.owner_job(rid))
        denied = http.get(OUTPUT, params={"run_id": rid})
        assert denied.status_code == 403
        assert denied.json()["error_code"] == "PERMISSION_DENIED"
