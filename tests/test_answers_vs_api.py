"""End to end: what the views answer equals what the simulated API says, and odd API bodies
(unknown fields, unknown enum values, missing optional fields) load without a hitch."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

import extractor
from extractor.client import JobsClient
from extractor.config import resolve_workspace
from extractor.extract import extract
from extractor.plan import ExtractOptions
from tests.conftest import MakeSim, Sim, assert_store_matches, store_rows


def test_job_reliability_equals_the_simulators_per_job_aggregates(make_sim: MakeSim) -> None:
    sim: Sim = make_sim(seed=31, runs=500)
    sim.extract()
    expected = sim.workspace.job_aggregates()
    con = extractor.connect(sim.db)
    try:
        rows = con.execute(
            "SELECT job_id, runs, terminal_runs, succeeded, failed, canceled, skipped, repairs"
            " FROM job_reliability"
        ).fetchall()
    finally:
        con.close()
    got = {
        r[0]: dict(
            zip(
                ["runs", "terminal_runs", "succeeded", "failed", "canceled", "skipped", "repairs"],
                r[1:],
                strict=True,
            )
        )
        for r in rows
    }
    assert got.keys() >= expected.keys()
    for job_id, aggregates in expected.items():
        assert got[job_id] == aggregates, job_id


class OddBodies(httpx.BaseTransport):
    """Forwards to the simulator, then adds fields and enum values this jobruns never saw and
    drops optional fields, as a newer API might."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        if "runs/" not in request.url.path or response.status_code != 200:
            return response
        body = json.loads(response.content)
        for run in body.get("runs", [body] if "run_id" in body else []):
            run["brand_new_field"] = {"nested": [1, 2]}
            run.pop("creator_user_name", None)
            if run.get("trigger") == "PERIODIC":
                run["trigger"] = "SOLAR_ECLIPSE"
            for task in run.get("tasks", []):
                task["another_new_field"] = True
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return httpx.Response(200, headers=headers, content=json.dumps(body).encode())


def test_unknown_fields_and_enums_are_stored_and_warned_once(
    make_sim, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    sim: Sim = make_sim(seed=32, runs=200)
    config = resolve_workspace(host=sim.server.url, token=sim.server.token, env={})
    with (
        caplog.at_level(logging.WARNING, logger="jobruns"),
        JobsClient(config, max_rps=1000.0, transport=OddBodies()) as client,
    ):
        result = extract(client, sim.store, ExtractOptions(), now=sim.now)
    assert result.status == "ok"
    runs = store_rows(sim.db, "runs", ["run_id", "trigger", "creator_user_name", "raw"])
    assert any(r["trigger"] == "SOLAR_ECLIPSE" for r in runs.values())
    assert all(r["creator_user_name"] is None for r in runs.values())
    assert all(json.loads(r["raw"])["brand_new_field"] == {"nested": [1, 2]} for r in runs.values())
    messages = [r.getMessage() for r in caplog.records]
    for needle in ("SOLAR_ECLIPSE", "brand_new_field", "another_new_field"):
        assert sum(needle in m for m in messages) == 1, needle
    # Everything else is exactly what the API holds.
    truth_runs = sim.workspace.ground_truth()["runs"]
    stored = store_rows(sim.db, "runs", ["run_id", "end_time", "result_state", "task_count"])
    for run_id, row in truth_runs.items():
        got: dict[str, Any] = stored[run_id]
        assert (got["end_time"], got["result_state"], got["task_count"]) == (
            row["end_time"],
            row["result_state"],
            row["task_count"],
        )


def test_a_store_extracted_twice_through_odd_bodies_and_then_plainly_matches(
    make_sim: MakeSim,
) -> None:
    sim: Sim = make_sim(seed=33, runs=150)
    sim.extract(ExtractOptions(), transport=OddBodies())
    sim.extract(ExtractOptions(full_refresh=True))
    assert_store_matches(sim)
