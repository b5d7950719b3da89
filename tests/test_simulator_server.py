"""The simulator over HTTP: auth, error bodies, headers, faults, admin endpoints, the SDK."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from extractor.dev.simulator import Faults, SimServer, Workspace, serve
from tests.conftest import sample_path

NOW = 1_749_564_300_000
RUNS_LIST = "/api/2.2/jobs/runs/list"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    ws = Workspace.generate(21, runs=600, now_ms=NOW)
    with serve(ws) as server:
        yield server


def get(sim: SimServer, path: str, token: str | None = None, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or sim.token}"}
    return httpx.get(sim.url + path, params=params, headers=headers, timeout=10)


def test_server_starts_fast_and_stops() -> None:
    import time

    ws = Workspace.generate(1, runs=50, now_ms=NOW)
    t = time.perf_counter()
    server = serve(ws)
    assert time.perf_counter() - t < 1
    assert server.url.startswith("http://127.0.0.1:")
    server.stop()


def test_pat_works_and_every_response_names_the_workspace(sim: SimServer) -> None:
    r = get(sim, RUNS_LIST, limit=3)
    assert r.status_code == 200
    assert r.headers["X-Databricks-Org-Id"] == str(sim.workspace.workspace_id)
    assert len(r.json()["runs"]) == 3
    missing = httpx.get(sim.url + "/api/2.2/nope")
    assert missing.status_code == 404
    assert missing.headers["X-Databricks-Org-Id"] == str(sim.workspace.workspace_id)


def test_missing_credentials_are_401_with_numeric_code(sim: SimServer) -> None:
    r = httpx.get(sim.url + RUNS_LIST)
    assert r.status_code == 401
    assert r.json() == {
        "error_code": 401,
        "message": "Credential was not sent or was of an unsupported type for this API.",
    }


def test_bad_token_is_403_not_401(sim: SimServer) -> None:
    r = get(sim, RUNS_LIST, token="dapi-wrong")
    assert r.status_code == 403
    assert r.json() == {"error_code": 403, "message": "Invalid access token."}
    assert r.headers["X-Databricks-Reason-Phrase"] == "Invalid access token."


def test_oauth_m2m_token_grants_access(sim: SimServer) -> None:
    meta = httpx.get(sim.url + "/oidc/.well-known/oauth-authorization-server").json()
    assert meta["token_endpoint"] == sim.url + "/oidc/v1/token"
    r = httpx.post(
        meta["token_endpoint"],
        data={"grant_type": "client_credentials", "scope": "all-apis"},
        auth=(sim.client_id, sim.client_secret),
    )
    body = r.json()
    assert r.status_code == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert get(sim, RUNS_LIST, token=body["access_token"], limit=1).status_code == 200
    form = httpx.post(
        meta["token_endpoint"],
        data={
            "grant_type": "client_credentials",
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
        },
    )
    assert form.status_code == 200
    bad = httpx.post(
        meta["token_endpoint"], data={"grant_type": "client_credentials"}, auth=("x", "y")
    )
    assert bad.status_code == 401


def test_expired_oauth_token_is_rejected() -> None:
    ws = Workspace.generate(1, runs=20, now_ms=NOW)
    with serve(ws, oauth_expires_in=0) as server:
        tok = httpx.post(
            server.url + "/oidc/v1/token",
            data={"grant_type": "client_credentials"},
            auth=(server.client_id, server.client_secret),
        ).json()["access_token"]
        assert get(server, RUNS_LIST, token=tok).status_code == 403


def test_forbidden_job_is_listed_but_not_readable(sim: SimServer) -> None:
    run = get(sim, RUNS_LIST, limit=1).json()["runs"][0]
    sim.forbidden_jobs.add(run["job_id"])
    try:
        r = get(sim, "/api/2.2/jobs/runs/get", run_id=run["run_id"])
        assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED"
        assert get(sim, RUNS_LIST, limit=1).json()["runs"][0]["run_id"] == run["run_id"]
    finally:
        sim.forbidden_jobs.clear()


def test_error_bodies_match_the_samples(sim: SimServer) -> None:
    samples = json.loads((sample_path("errors.json")).read_text())
    r = get(sim, RUNS_LIST, limit=26)
    assert (r.status_code, r.json()) == (400, samples["limit_out_of_range"]["body"])
    r = get(sim, "/api/2.2/jobs/runs/get", run_id=123)
    assert (r.status_code, r.json()) == (400, samples["run_not_found_400"]["body"])
    r = get(sim, "/api/2.2/jobs/get", job_id=42)
    assert (r.status_code, r.json()) == (400, samples["job_not_found"]["body"])
    r = get(sim, RUNS_LIST, offset=10020)
    assert (r.status_code, r.json()) == (400, samples["offset_too_large_runs"]["body"])


def test_faults_appear_at_roughly_the_configured_rates() -> None:
    ws = Workspace.generate(1, runs=50, now_ms=NOW)
    faults = Faults(error_5xx_rate=0.2, html_502_rate=0.1, drop_rate=0.1, seed=3)
    with serve(ws, faults=faults) as server, httpx.Client() as client:
        codes: list[int] = []
        for _ in range(300):
            try:
                r = client.get(
                    server.url + RUNS_LIST, headers={"Authorization": f"Bearer {server.token}"}
                )
                codes.append(r.status_code)
                if r.status_code == 502:
                    assert r.headers["content-type"] == "text/html"
                    assert "<title>502 Bad Gateway</title>" in r.text
                if r.status_code in (500, 503):
                    assert r.json()["error_code"] in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE")
            except httpx.TransportError:
                codes.append(0)
        n = len(codes)
        assert 0.12 < sum(c in (500, 503) for c in codes) / n < 0.28
        assert 0.04 < codes.count(502) / n < 0.16
        assert 0.04 < codes.count(0) / n < 0.16
        server.set_faults(Faults())
        assert (
            client.get(
                server.url + RUNS_LIST, headers={"Authorization": f"Bearer {server.token}"}
            ).status_code
            == 200
        )
        assert server.stats()["faults"]["drop"] == codes.count(0)


def test_rate_limit_answers_429_with_retry_after() -> None:
    ws = Workspace.generate(1, runs=50, now_ms=NOW)
    # A slow refill (one request per 10 s) keeps the test independent of machine speed.
    with serve(ws, faults=Faults(rate_limit_rps=0.1, rate_limit_burst=5)) as server:
        codes = [get(server, RUNS_LIST).status_code for _ in range(20)]
        assert codes[:5] == [200] * 5 and 429 in codes
        r = get(server, RUNS_LIST)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"


def test_admin_endpoints_drive_the_clock_and_faults(sim: SimServer) -> None:
    before = httpx.get(sim.url + "/_sim/now").json()["now_ms"]
    after = httpx.post(sim.url + "/_sim/advance", params={"seconds": 60}).json()["now_ms"]
    assert after == before + 60_000
    f = httpx.post(sim.url + "/_sim/faults", json={"latency_ms": 1}).json()
    assert f["latency_ms"] == 1
    httpx.post(sim.url + "/_sim/faults", json={"latency_ms": 0})
    stats = httpx.get(sim.url + "/_sim/stats").json()
    assert stats["requests"][RUNS_LIST] >= 1


def test_cli_parser_serves(capsys: pytest.CaptureFixture[str]) -> None:
    from extractor.dev.simulator.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--error-5xx-rate" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ the SDK
@pytest.fixture(scope="module")
def sdk(sim: SimServer) -> Any:
    os.environ["DATABRICKS_CONFIG_FILE"] = "/nonexistent/databrickscfg"
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(host=sim.url, token=sim.token, auth_type="pat")


def drop_empty(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: drop_empty(v) for k, v in x.items() if v != []}
    if isinstance(x, list):
        return [drop_empty(v) for v in x]
    return x


def test_sdk_lists_every_run_once_and_merges_big_runs(sim: SimServer, sdk: Any) -> None:
    ws = sim.workspace
    runs = list(sdk.jobs.list_runs(expand_tasks=True, start_time_from=0, start_time_to=ws.now_ms))
    ids = [r.run_id for r in runs]
    assert len(ids) == len(set(ids)) == len(ws.run_ids(None, ws.now_ms))
    big = [r for r in runs if len(r.tasks or []) > 100]
    assert big
    for r in big:
        assert len(r.tasks) == len(ws.run_json(r.run_id)["tasks"])


def test_sdk_get_run_merges_pages_and_history(sim: SimServer, sdk: Any) -> None:
    ws = sim.workspace
    repaired = next(r for r in ws.run_ids() if len(ws.runs[r].segments) > 1)
    run = sdk.jobs.get_run(repaired, include_history=True)
    assert run.as_dict() == drop_empty(ws.run_json(repaired))
    big = next(r for r in ws.run_ids() if len(ws.runs[r].tasks) > 100)
    assert len(sdk.jobs.get_run(big).tasks) == len(ws.runs[big].tasks)


def test_sdk_lists_and_gets_jobs(sim: SimServer, sdk: Any) -> None:
    jobs = list(sdk.jobs.list(expand_tasks=True))
    assert {j.job_id for j in jobs} == set(sim.workspace.ground_truth()["jobs"])
    big = max(jobs, key=lambda j: len(j.settings.tasks or []))
    assert len(big.settings.tasks) > 100


def test_every_body_round_trips_through_the_sdk_models(sim: SimServer) -> None:
    from databricks.sdk.service.jobs import Job, ListJobsResponse, ListRunsResponse, Run

    ws = sim.workspace
    page = ws.api_list_runs({"limit": "25", "expand_tasks": "true"})
    while True:
        assert ListRunsResponse.from_dict(page).as_dict() == drop_empty(page)
        if "next_page_token" not in page:
            break
        page = ws.api_list_runs({"limit": "25", "page_token": page["next_page_token"]})
    for run_id in ws.run_ids():
        body = ws.run_json(run_id)
        assert Run.from_dict(body).as_dict() == drop_empty(body), run_id
        for t in body.get("tasks", []):
            if "for_each_task" in t:
                fe = ws.api_get_run({"run_id": str(t["run_id"])})
                assert Run.from_dict(fe).as_dict() == drop_empty(fe)
    jobs = ws.api_list_jobs({"limit": "100", "expand_tasks": "true"})
    assert ListJobsResponse.from_dict(jobs).as_dict() == drop_empty(jobs)
    for j in jobs["jobs"]:
        body = ws.api_get_job({"job_id": str(j["job_id"])})
        assert Job.from_dict(body).as_dict() == drop_empty(body)


# ------------------------------------------------------------------------------------ samples
def keysets(obj: Any, kind: str, out: dict[str, set[str]]) -> None:
    """Collect the keys seen per object kind (run, task, state, status, history item, ...)."""
    if isinstance(obj, list):
        for x in obj:
            keysets(x, kind, out)
        return
    if not isinstance(obj, dict):
        return
    out.setdefault(kind, set()).update(obj)
    for key in ("state", "status", "cluster_instance", "for_each_task", "schedule"):
        if key in obj:
            keysets(obj[key], f"{kind}.{key}", out)
    for key, child in (
        ("tasks", "task"),
        ("iterations", "task"),
        ("repair_history", "history"),
        ("runs", "run"),
        ("job_clusters", "job_cluster"),
    ):
        if key in obj:
            keysets(obj[key], child, out)


def test_served_shapes_match_the_samples(sim: SimServer) -> None:
    ws = sim.workspace
    sample: dict[str, set[str]] = {}
    for name in ("runs_list_page.json", "runs_list_last_page.json"):
        keysets(json.loads((sample_path(name)).read_text()), "list", sample)
    for name in (
        "run_multitask_repaired.json",
        "run_single_task_submit.json",
        "run_queued.json",
        "run_active.json",
        "run_serverless.json",
        "run_foreach_task.json",
        "run_big_page1.json",
    ):
        keysets(json.loads((sample_path(name)).read_text()), "run", sample)
    served: dict[str, set[str]] = {}
    page = ws.api_list_runs({"limit": "25", "expand_tasks": "true"})
    while True:
        keysets(page, "list", served)
        if "next_page_token" not in page:
            break
        page = ws.api_list_runs({"limit": "25", "page_token": page["next_page_token"]})
    big = next(r for r in ws.run_ids() if len(ws.runs[r].tasks) > 100)
    keysets(ws.api_get_run({"run_id": str(big)}), "run", served)
    for run_id in ws.run_ids():
        body = ws.run_json(run_id)
        keysets(body, "run", served)
        for t in body.get("tasks", []):
            if "for_each_task" in t:
                keysets(ws.api_get_run({"run_id": str(t["run_id"])}), "run", served)
    allowed_extra = {
        "run": {"has_more", "job_run_id", "overriding_parameters"},
        "task": {"disabled", "condition_task", "spark_jar_task", "environment_key"},
    }
    for kind in ("run", "task", "history", "run.state", "run.status", "task.state", "task.status"):
        missing = sample.get(kind, set()) - served.get(kind, set())
        extra = served.get(kind, set()) - sample.get(kind, set()) - allowed_extra.get(kind, set())
        assert not missing, (kind, missing)
        assert not extra, (kind, extra)


CLUSTERS_GET = "/api/2.1/clusters/get"


def test_clusters_get_body_round_trips_through_the_sdk(sim: SimServer) -> None:
    from databricks.sdk.service.compute import ClusterDetails

    from extractor.dev.simulator._catalog import ALL_PURPOSE_CLUSTERS

    shapes = set()
    for cluster_id in ALL_PURPOSE_CLUSTERS:
        r = get(sim, CLUSTERS_GET, cluster_id=cluster_id)
        assert r.status_code == 200
        body = r.json()
        assert body == get(sim, CLUSTERS_GET, cluster_id=cluster_id).json()  # deterministic
        assert ClusterDetails.from_dict(body).as_dict() == body
        assert body["cluster_source"] == "UI" and body["state"] in ("RUNNING", "TERMINATED")
        assert body["runtime_engine"] in ("STANDARD", "PHOTON")
        shapes.add("autoscale" if "autoscale" in body else "fixed")
    assert shapes == {"autoscale", "fixed"}


def test_clusters_get_of_unknown_cluster_is_400_like_the_api(sim: SimServer) -> None:
    r = get(sim, CLUSTERS_GET, cluster_id="0000-000000-nothere")
    assert r.status_code == 400
    assert r.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "Cluster 0000-000000-nothere does not exist",
    }
