"""The simulated workspace: determinism, realistic shapes, API invariants, ground truth."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from typing import Any

import pytest

from extractor.dev.simulator import ApiError, Workspace

NOW = 1_749_564_300_000
TERMINAL = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}
STATUS_OF = {
    "QUEUED": "QUEUED",
    "PENDING": "PENDING",
    "RUNNING": "RUNNING",
    "TERMINATING": "TERMINATING",
    "BLOCKED": "BLOCKED",
    "WAITING_FOR_RETRY": "WAITING",
    "TERMINATED": "TERMINATED",
    "SKIPPED": "TERMINATED",
    "INTERNAL_ERROR": "TERMINATED",
}
SLACK = 1000


@pytest.fixture(scope="module")
def ws() -> Workspace:
    return Workspace.generate(7, now_ms=NOW)


def phases(obj: dict[str, Any]) -> int:
    return sum(obj.get(k, 0) for k in ("setup_duration", "execution_duration", "cleanup_duration"))


def check_state(obj: dict[str, Any], where: str) -> None:
    lc, st = obj["state"]["life_cycle_state"], obj["status"]["state"]
    assert STATUS_OF[lc] == st, where
    td = obj["status"].get("termination_details")
    if lc in TERMINAL:
        assert td is not None, where
        assert obj["end_time"] > 0 and obj["end_time"] >= obj["start_time"], where
    else:
        assert obj["state"].get("result_state") is None and td is None, where
        assert obj["end_time"] == 0, where
    assert "queue_details" not in obj["status"] or lc == "QUEUED", where


def check_run(run: dict[str, Any]) -> None:
    """The rules of the API reference (§3-§6) on a merged runs/get?include_history=true body."""
    where = f"run {run['run_id']}"
    check_state(run, where)
    tasks = run.get("tasks", [])
    legacy = len(tasks) == 1 and tasks[0]["run_id"] == run["run_id"]
    terminal = run["state"]["life_cycle_state"] in TERMINAL
    if terminal:
        span = run["end_time"] - run["start_time"]
        if legacy:
            assert phases(run) <= span + SLACK, where
        else:
            assert phases(run) == 0, where
            assert 0 <= run["run_duration"] <= span, where
    attempt = run["attempt_number"]
    assert (attempt == 0) == (run["original_attempt_run_id"] == run["run_id"]), where
    assert (attempt > 0) == (run["trigger"] == "RETRY"), where
    assert str(run["run_page_url"]).endswith(f"#job/{run['job_id']}/run/{run['run_id']}")
    ids = [t["run_id"] for t in tasks]
    assert len(ids) == len(set(ids)), where
    keys = {t["task_key"] for t in tasks}
    cluster_keys = {c["job_cluster_key"] for c in run.get("job_clusters", [])}
    by_key: dict[str, list[dict[str, Any]]] = {}
    for t in tasks:
        tw = f"{where} task {t['task_key']}#{t['attempt_number']}"
        check_state(t, tw)
        by_key.setdefault(t["task_key"], []).append(t)
        for k in ("setup_duration", "execution_duration", "cleanup_duration"):
            assert t[k] % 1000 == 0, tw
        if t["start_time"]:
            assert t["start_time"] >= run["start_time"], tw
        if t["state"]["life_cycle_state"] in TERMINAL:
            assert phases(t) <= t["end_time"] - t["start_time"] + SLACK, tw
            if terminal:
                assert t["end_time"] <= run["end_time"], tw
        compute = [k for k in ("existing_cluster_id", "new_cluster", "job_cluster_key") if k in t]
        assert len(compute) <= 1, tw
        for dep in t.get("depends_on", []):
            assert dep["task_key"] in keys, tw
        if "job_cluster_key" in t:
            assert t["job_cluster_key"] in cluster_keys, tw
    for key, attempts in by_key.items():
        attempts.sort(key=lambda t: t["attempt_number"])
        assert [t["attempt_number"] for t in attempts] == list(range(len(attempts))), key
        for prev, nxt in itertools.pairwise(attempts):
            assert prev["state"]["life_cycle_state"] in TERMINAL, key
            assert nxt["start_time"] == 0 or nxt["start_time"] >= prev["end_time"], key
    check_history(run)


def check_history(run: dict[str, Any]) -> None:
    items = run["repair_history"]
    where = f"run {run['run_id']}"
    assert items[0]["type"] == "ORIGINAL" and "id" not in items[0], where
    assert all(i["type"] == "REPAIR" and "id" in i for i in items[1:]), where
    assert items[0]["start_time"] == run["start_time"], where
    assert items[-1]["end_time"] == run["end_time"], where
    assert items[-1]["status"] == run["status"], where
    for a, b in itertools.pairwise(items):
        assert 0 < a["end_time"] <= b["start_time"], where
    tasks = {t["run_id"]: t for t in run.get("tasks", [])}
    listed = [rid for i in items for rid in i["task_run_ids"]]
    assert sorted(listed) == sorted(tasks), where
    seen: dict[str, int] = {}
    for item in items:
        for rid in item["task_run_ids"]:
            t = tasks[rid]
            if t["start_time"]:
                assert item["start_time"] <= t["start_time"], where
            if t["end_time"] and item["end_time"]:
                assert t["end_time"] <= item["end_time"], where
        for rid in sorted(item["task_run_ids"], key=lambda r: tasks[r]["attempt_number"]):
            t = tasks[rid]
            assert t["attempt_number"] > seen.get(t["task_key"], -1), where
            seen[t["task_key"]] = t["attempt_number"]
    if run["state"]["life_cycle_state"] in TERMINAL and "run_duration" in run and len(items) > 1:
        active = sum(i["end_time"] - i["start_time"] for i in items)
        assert active <= run["run_duration"] <= run["end_time"] - run["start_time"], where


# ------------------------------------------------------------------------------------ generation
def test_same_seed_gives_the_same_workspace() -> None:
    a = Workspace.generate(3, runs=400, now_ms=NOW)
    b = Workspace.generate(3, runs=400, now_ms=NOW)
    assert a.workspace_id == b.workspace_id and a.host == b.host
    assert a.ground_truth() == b.ground_truth()
    a.advance(3600)
    b.advance(3600)
    assert a.ground_truth() == b.ground_truth()
    c = Workspace.generate(4, runs=400, now_ms=NOW)
    assert c.ground_truth()["runs"].keys() != a.ground_truth()["runs"].keys()


def test_generates_exactly_the_requested_runs_inside_the_window(ws: Workspace) -> None:
    assert len(ws.runs) == 2000
    starts = [r.start for r in ws.runs.values()]
    assert min(starts) >= NOW - 60 * 86_400_000 and max(starts) <= NOW
    assert all(len(str(r)) == 15 for r in ws.runs)


def test_every_run_obeys_the_api_rules(ws: Workspace) -> None:
    for run_id in ws.run_ids():
        check_run(ws.run_json(run_id))


def test_runs_cover_the_shapes_seen_in_production(ws: Workspace) -> None:
    bodies = [ws.run_json(r) for r in ws.run_ids()]
    triggers = Counter(b["trigger"] for b in bodies)
    assert {"PERIODIC", "ONE_TIME", "FILE_ARRIVAL", "CONTINUOUS", "RETRY"} <= set(triggers)
    assert {b["run_type"] for b in bodies} == {"JOB_RUN", "SUBMIT_RUN", "WORKFLOW_RUN"}
    lcs = Counter(b["state"]["life_cycle_state"] for b in bodies)
    assert {"TERMINATED", "SKIPPED", "RUNNING", "QUEUED", "INTERNAL_ERROR"} <= set(lcs)
    assert lcs["TERMINATED"] > 0.85 * len(bodies)
    tasks = [t for b in bodies for t in b.get("tasks", [])]
    results = {x["state"].get("result_state") for x in [*bodies, *tasks]}
    assert {
        "SUCCESS",
        "SUCCESS_WITH_FAILURES",
        "FAILED",
        "TIMEDOUT",
        "CANCELED",
        "EXCLUDED",
        "UPSTREAM_FAILED",
        "UPSTREAM_CANCELED",
        "DISABLED",
        "MAXIMUM_CONCURRENT_RUNS_REACHED",
    } <= results
    codes = {x["status"].get("termination_details", {}).get("code") for x in [*bodies, *tasks]}
    assert {
        "SUCCESS",
        "RUN_EXECUTION_ERROR",
        "USER_CANCELED",
        "SKIPPED",
        "CANCELED",
        "MAX_CONCURRENT_RUNS_EXCEEDED",
        "CLUSTER_ERROR",
        "CLOUD_FAILURE",
    } <= codes
    assert any(len(b.get("tasks", [])) > 100 for b in bodies)
    assert any(len(b["repair_history"]) > 1 for b in bodies)
    assert any("environment_key" in t for t in tasks)
    assert any("existing_cluster_id" in t for t in tasks)
    assert any("autoscale" in t.get("new_cluster", {}) for t in tasks)
    assert {t["new_cluster"]["runtime_engine"] for t in tasks if "new_cluster" in t} == {
        "PHOTON",
        "STANDARD",
    }
    assert any("for_each_task" in t for t in tasks)
    legacy = [b for b in bodies if b.get("tasks") and b["tasks"][0]["run_id"] == b["run_id"]]
    assert legacy and all("cluster_spec" in b for b in legacy)
    queued = [b for b in bodies if b["state"]["life_cycle_state"] == "QUEUED"]
    assert all(b["status"]["queue_details"]["code"] for b in queued)


def test_shared_job_cluster_and_repair_get_new_cluster(ws: Workspace) -> None:
    repaired = [ws.run_json(r) for r in ws.run_ids() if ws.runs[r].segments[1:]]
    repaired = [b for b in repaired if b.get("job_clusters")]
    assert repaired
    for b in repaired:
        by_item = [
            {
                t["cluster_instance"]["cluster_id"]
                for t in b["tasks"]
                if t["run_id"] in set(i["task_run_ids"])
                and "job_cluster_key" in t
                and "cluster_instance" in t
            }
            for i in b["repair_history"]
        ]
        for a, c in itertools.pairwise(by_item):
            assert not (a & c)


def test_for_each_iterations_are_only_in_the_task_run(ws: Workspace) -> None:
    fe = [
        (r, t)
        for r in ws.run_ids()
        for t in ws.run_json(r).get("tasks", [])
        if "for_each_task" in t
    ]
    assert fe
    run_id, task = next((r, t) for r, t in fe if t["state"]["life_cycle_state"] == "TERMINATED")
    assert "iterations" not in ws.run_json(run_id)
    body = ws.api_get_run({"run_id": str(task["run_id"])})
    assert body["job_run_id"] == run_id and body["tasks"] == [task]
    stats = task["for_each_task"]["stats"]["task_run_stats"]
    its = body["iterations"]
    while "next_page_token" in body:
        body = ws.api_get_run(
            {"run_id": str(task["run_id"]), "page_token": body["next_page_token"]}
        )
        assert body["tasks"] == [task]
        its += body["iterations"]
    assert stats["completed_iterations"] == stats["total_iterations"] <= len(its)


@pytest.mark.slow
def test_fifty_thousand_runs_generate_in_linear_time() -> None:
    # Benchmarks and memory tests generate 50,000 to 200,000 runs: generation must stay linear
    # (a few seconds here), never quadratic. A generous bound, not a speed target.
    t = time.perf_counter()
    big = Workspace.generate(1, runs=50_000, now_ms=NOW)
    assert time.perf_counter() - t < 60
    assert len(big.runs) == 50_000


# ------------------------------------------------------------------------------------ the clock
def test_advance_progresses_runs_and_adds_new_ones() -> None:
    w = Workspace.generate(11, runs=500, now_ms=NOW)
    active = [r for r in w.run_ids() if w.run_json(r)["end_time"] == 0]
    before = set(w.runs)
    w.advance(3 * 86_400)
    assert w.now_ms == NOW + 3 * 86_400_000
    assert set(w.runs) - before
    for r in active:
        if r in w.runs and w.runs[r].job.trigger != "CONTINUOUS":
            assert w.run_json(r)["end_time"] > 0
    for r in w.run_ids():
        check_run(w.run_json(r))


def test_repair_of_old_run_changes_end_and_status_but_not_start() -> None:
    w = Workspace.generate(5, runs=600, now_ms=NOW)
    failed = [
        r
        for r in w.run_ids(None, NOW - 7 * 86_400_000)
        if w.run_json(r)["state"].get("result_state") == "FAILED"
        and w.runs[r].job.shape != "legacy"
    ]
    run_id = failed[0]
    old = w.run_json(run_id)
    w.advance(60)
    repair_id = w.repair_run(run_id)
    w.advance(6 * 3600)
    new = w.run_json(run_id)
    assert new["start_time"] == old["start_time"]
    assert new["end_time"] > old["end_time"]
    assert len(new["tasks"]) > len(old["tasks"])
    assert new["repair_history"][-1]["id"] == repair_id
    assert new["run_duration"] > old["run_duration"]
    check_run(new)
    truth = w.ground_truth()
    assert truth["runs"][run_id]["repair_count"] == len(new["repair_history"]) - 1
    assert (run_id, repair_id) in truth["repair_history"]


def test_advance_repairs_deletes_and_expires_runs() -> None:
    w = Workspace.generate(9, runs=800, now_ms=NOW)
    first = set(w.runs)
    repairs_before = sum(len(r.segments) for r in w.runs.values())
    w.advance(10 * 86_400)
    assert sum(len(r.segments) for r in w.runs.values() if r.run_id in first) > 0
    assert all(r.start >= w.now_ms - 60 * 86_400_000 for r in w.runs.values())
    assert w.deleted - first == set() or w.deleted
    assert len(first - set(w.runs)) > 0
    assert repairs_before > 0


# ------------------------------------------------------------------------------------ API logic
def list_all(w: Workspace, **params: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = w.api_list_runs({"limit": "25", **params})
    while True:
        out += page.get("runs", [])
        if "next_page_token" not in page:
            return out
        page = w.api_list_runs({"limit": "25", "page_token": page["next_page_token"]})


def test_list_is_newest_first_and_sees_each_run_once_while_runs_arrive() -> None:
    w = Workspace.generate(2, runs=600, now_ms=NOW)
    expected = set(w.runs)
    seen: list[dict[str, Any]] = []
    page = w.api_list_runs({"limit": "25", "expand_tasks": "true"})
    while True:
        assert "has_more" not in page
        seen += page.get("runs", [])
        w.advance(1800)
        if "next_page_token" not in page:
            break
        page = w.api_list_runs({"page_token": page["next_page_token"], "limit": "25"})
    ids = [r["run_id"] for r in seen]
    assert len(ids) == len(set(ids))
    assert expected - w.deleted <= set(ids) | (expected - set(w.runs))
    keys = [(r["start_time"], r["run_id"]) for r in seen]
    assert keys == sorted(keys, reverse=True)


def test_list_filters_are_inclusive_and_combine() -> None:
    w = Workspace.generate(2, runs=300, now_ms=NOW)
    starts = sorted(r.start for r in w.runs.values())
    lo, hi = starts[50], starts[150]
    got = list_all(w, start_time_from=str(lo), start_time_to=str(hi))
    assert len(got) == 101
    job_id = next(iter(w.jobs))
    assert all(r["job_id"] == job_id for r in list_all(w, job_id=str(job_id)))
    active = list_all(w, active_only="true")
    assert active and all(r["end_time"] == 0 for r in active)
    done = list_all(w, completed_only="true")
    assert len(active) + len(done) == len(w.runs)
    assert {r["run_type"] for r in list_all(w, run_type="SUBMIT_RUN")} == {"SUBMIT_RUN"}


def test_expand_tasks_cuts_at_100_and_marks_has_more(ws: Workspace) -> None:
    runs = list_all(ws, expand_tasks="true")
    big = [r for r in runs if len(ws.run_json(r["run_id"]).get("tasks", [])) > 100]
    assert big and all(len(r["tasks"]) == 100 and r["has_more"] is True for r in big)
    assert not any("has_more" in r for r in runs if r not in big)
    assert all("tasks" not in r for r in list_all(ws))


def test_run_get_pages_arrays_by_100(ws: Workspace) -> None:
    run_id = next(r for r in ws.run_ids() if len(ws.runs[r].tasks) > 100)
    first = ws.api_get_run({"run_id": str(run_id), "include_history": "true"})
    assert len(first["tasks"]) == 100 and "next_page_token" in first
    tasks = list(first["tasks"])
    page = first
    while "next_page_token" in page:
        page = ws.api_get_run({"run_id": str(run_id), "page_token": page["next_page_token"]})
        tasks += page.get("tasks", [])
        assert "job_clusters" not in page
    assert tasks == ws.run_json(run_id)["tasks"]


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("api_list_runs", {"limit": "26"}, "Invalid limit 26 - it has to be no more than 25."),
        ("api_list_runs", {"active_only": "true", "completed_only": "true"}, "cannot both"),
        ("api_list_runs", {"offset": "10020"}, "offset 10020 has exceeded"),
        ("api_list_runs", {"page_token": "garbage!"}, "Invalid page token."),
        ("api_list_runs", {"limit": "x"}, "not an integer"),
        ("api_get_run", {"run_id": "123"}, "Run 123 does not exist."),
        ("api_get_run", {}, "run_id"),
        ("api_get_job", {"job_id": "42"}, "Job 42 does not exist."),
        ("api_list_jobs", {"limit": "101"}, "Invalid limit 101"),
    ],
)
def test_bad_requests_are_400_invalid_parameter_value(
    ws: Workspace, method: str, params: dict[str, str], message: str
) -> None:
    with pytest.raises(ApiError) as exc:
        getattr(ws, method)(params)
    assert exc.value.status == 400 and exc.value.error_code == "INVALID_PARAMETER_VALUE"
    assert message in exc.value.message


def test_limit_zero_means_25(ws: Workspace) -> None:
    assert len(ws.api_list_runs({"limit": "0"})["runs"]) == 25
    assert len(ws.api_list_runs({})["runs"]) == 20


def test_jobs_list_pages_newest_created_first(ws: Workspace) -> None:
    jobs: list[dict[str, Any]] = []
    page = ws.api_list_jobs({"limit": "5", "expand_tasks": "true"})
    while True:
        jobs += page["jobs"]
        if "next_page_token" not in page:
            break
        page = ws.api_list_jobs({"limit": "5", "page_token": page["next_page_token"]})
    created = [j["created_time"] for j in jobs]
    assert created == sorted(created, reverse=True)
    assert {j["job_id"] for j in jobs} == set(ws.ground_truth()["jobs"])
    big = next(j for j in jobs if j.get("has_more"))
    full = ws.api_get_job({"job_id": str(big["job_id"])})
    assert len(full["settings"]["tasks"]) == 100 and "next_page_token" in full


# ------------------------------------------------------------------------------------ ground truth
def test_ground_truth_matches_what_the_api_serves(ws: Workspace) -> None:
    truth = ws.ground_truth()
    assert set(truth) == {"runs", "tasks", "repair_history", "task_iterations", "jobs"}
    for run_id, row in truth["runs"].items():
        body = ws.run_json(run_id)
        assert row["end_time"] == (body["end_time"] or None)
        assert row["is_active"] == (body["end_time"] == 0)
        assert row["task_count"] == len(body.get("tasks", []))
        assert row["repair_count"] == len(body["repair_history"]) - 1
        assert row["status_state"] == body["status"]["state"]
        if not row["is_active"]:
            expected = body.get("run_duration", phases(body))
            assert row["duration_ms"] == expected
        for t in body.get("tasks", []):
            trow = truth["tasks"][t["run_id"]]
            assert trow["job_run_id"] == run_id and trow["attempt_number"] == t["attempt_number"]
            assert trow["result_state"] == t["state"].get("result_state")
            assert trow["cluster_id"] == t.get("cluster_instance", {}).get("cluster_id")
    kinds = Counter(r["compute_kind"] for r in truth["tasks"].values())
    assert {"job_cluster", "new_cluster", "existing_cluster", "serverless", None} <= set(kinds)
    assert all(
        r["repair_id"] == 0 or r["type"] == "REPAIR" for r in truth["repair_history"].values()
    )


def test_ground_truth_window_is_inclusive(ws: Workspace) -> None:
    starts = sorted(r.start for r in ws.runs.values())
    truth = ws.ground_truth(starts[10], starts[20])
    assert len(truth["runs"]) == 11
    assert {r["job_run_id"] for r in truth["tasks"].values()} <= set(truth["runs"])


def test_job_aggregates_add_up(ws: Workspace) -> None:
    aggs = ws.job_aggregates()
    assert sum(a["runs"] for a in aggs.values()) == len(ws.runs)
    for a in aggs.values():
        parts = a["succeeded"] + a["failed"] + a["canceled"] + a["skipped"]
        assert parts == a["terminal_runs"] <= a["runs"]
