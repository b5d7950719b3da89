"""The Jobs API client against httpx.MockTransport: auth, paging, merging, retries, limits.

Nothing sleeps for real: a fake clock is injected as `sleep` and `monotonic`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from extractor import __version__
from extractor.client import JobsClient
from extractor.config import WorkspaceConfig
from extractor.errors import (
    ApiError,
    AuthError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
)

HOST = "https://dbc-test.cloud.databricks.com"
PAT = "dapi-very-secret-pat-0123456789abcdef"
CLIENT_ID = "9b2e4c71-3f0a-4d8e-b6a5-2c1d7e8f9a03"
CLIENT_SECRET = "dose-very-secret-client-secret-42"


class RotatingTokens:
    """Credentials like the SDK's OAuth providers: tok-1, then a new token after each refresh."""

    def __init__(self) -> None:
        self.issued = 1
        self.header_calls = 0

    def headers(self) -> dict[str, str]:
        self.header_calls += 1
        return {"Authorization": f"Bearer tok-{self.issued}"}

    def refresh(self) -> bool:
        self.issued += 1
        return True

    def secrets(self) -> list[str]:
        return [CLIENT_SECRET]


PAT_CONFIG = WorkspaceConfig.with_token(HOST, PAT)


def oauth_config() -> WorkspaceConfig:
    return WorkspaceConfig(host=HOST, auth_type="oauth-m2m", credentials=RotatingTokens())


OAUTH_CONFIG = oauth_config()

Handler = Callable[[httpx.Request], httpx.Response]
Step = httpx.Response | Exception | Handler


class FakeClock:
    """`monotonic` and `sleep` for the client: sleeping advances time instantly."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class Script:
    """A transport that plays the given steps in order (the last one repeats) and records requests."""

    def __init__(self, steps: Iterable[Step]) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)

    def params(self, index: int = -1) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.requests[index].url.query.decode()).items()}


def ok(body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


def error(status: int, code: str | int | None, message: str, **headers: str) -> httpx.Response:
    body: dict[str, Any] = {"message": message}
    if code is not None:
        body["error_code"] = code
    return httpx.Response(status, json=body, headers=headers)


def html(status: int, title: str) -> httpx.Response:
    page = f"<html>\r\n<head><title>{title}</title></head>\r\n<body><h1>{title}</h1></body></html>"
    return httpx.Response(status, text=page, headers={"Content-Type": "text/html"})


def make_client(
    script: Handler,
    clock: FakeClock,
    config: WorkspaceConfig = PAT_CONFIG,
    **options: Any,
) -> JobsClient:
    return JobsClient(
        config,
        transport=httpx.MockTransport(script),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        rng=random.Random(1234),
        **options,
    )


def list_page(n: int, token: str | None = None, start: int = 0) -> httpx.Response:
    body: dict[str, Any] = {"runs": [{"run_id": start + i} for i in range(n)]}
    if token is not None:
        body["next_page_token"] = token
    return ok(body)


# -- requests, headers, paging ---------------------------------------------------------------


def test_request_carries_bearer_token_accept_user_agent_and_boolean_strings() -> None:
    script = Script([list_page(1)])
    with make_client(script, FakeClock()) as client:
        client.list_runs_page(start_time_from=1, start_time_to=2, active_only=True, job_id=7)
    request = script.requests[0]
    assert request.method == "GET"
    assert request.url.path == "/api/2.2/jobs/runs/list"
    assert request.headers["Authorization"] == f"Bearer {PAT}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["User-Agent"] == f"jobruns/{__version__}"
    assert script.params() == {
        "start_time_from": "1",
        "start_time_to": "2",
        "expand_tasks": "true",
        "limit": "25",
        "active_only": "true",
        "job_id": "7",
    }


def test_runs_list_falls_back_to_limit_20_once_and_remembers() -> None:
    refused = error(
        400, "INVALID_PARAMETER_VALUE", "Invalid limit 25 - it has to be no more than 20."
    )
    script = Script([refused, list_page(20), list_page(20)])
    with make_client(script, FakeClock()) as client:
        client.list_runs_page(start_time_from=None, start_time_to=None)
        client.list_runs_page(start_time_from=None, start_time_to=None)
    assert [script.params(i)["limit"] for i in range(3)] == ["25", "20", "20"]


def test_other_bad_requests_are_not_mistaken_for_the_limit() -> None:
    script = Script([error(400, "INVALID_PARAMETER_VALUE", "Invalid page token.")])
    with make_client(script, FakeClock()) as client, pytest.raises(ApiError) as info:
        client.list_runs_page(start_time_from=None, start_time_to=None, page_token="garbage")
    assert info.value.status == 400 and info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert type(info.value) is ApiError
    assert len(script.requests) == 1


def tasks(first: int, count: int) -> list[dict[str, Any]]:
    return [{"run_id": first + i, "task_key": f"t{first + i}"} for i in range(count)]


RUN = {"run_id": 9, "start_time": 1, "end_time": 5, "status": {"state": "TERMINATED"}}


def test_get_run_merges_250_tasks_over_three_pages() -> None:
    pages = [
        ok(
            {
                **RUN,
                "tasks": tasks(1000, 100),
                "job_clusters": [{"job_cluster_key": "c"}],
                "repair_history": [{"type": "ORIGINAL"}],
                "has_more": True,
                "next_page_token": "p2",
            }
        ),
        ok({**RUN, "tasks": tasks(1100, 100), "next_page_token": "p3"}),
        ok({**RUN, "tasks": tasks(1200, 50), "repair_history": [{"type": "REPAIR", "id": 1}]}),
    ]
    script = Script(pages)
    with make_client(script, FakeClock()) as client:
        run = client.get_run(9)
    assert [t["run_id"] for t in run["tasks"]] == list(range(1000, 1250))
    assert run["job_clusters"] == [{"job_cluster_key": "c"}]
    assert [item["type"] for item in run["repair_history"]] == ["ORIGINAL", "REPAIR"]
    assert "next_page_token" not in run and "has_more" not in run
    assert run["end_time"] == 5
    assert [script.params(i).get("page_token") for i in range(3)] == [None, "p2", "p3"]
    assert all(script.params(i)["include_history"] == "true" for i in range(3))


def test_get_run_pages_iterations_and_keeps_the_repeated_for_each_task_once() -> None:
    parent = [{"run_id": 50, "task_key": "loop", "for_each_task": {}}]
    pages = [
        ok({**RUN, "tasks": parent, "iterations": tasks(100, 100), "next_page_token": "i2"}),
        ok({**RUN, "tasks": parent, "iterations": tasks(200, 30)}),
    ]
    with make_client(Script(pages), FakeClock()) as client:
        run = client.get_run(50)
    assert run["tasks"] == parent
    assert len(run["iterations"]) == 130


def test_get_run_starts_over_when_an_active_run_changes_between_pages() -> None:
    active = {**RUN, "end_time": 0, "status": {"state": "RUNNING"}}
    done = {**RUN, "end_time": 77, "status": {"state": "TERMINATED"}}
    pages = [
        ok({**active, "tasks": tasks(1, 100), "next_page_token": "x"}),
        ok({**done, "tasks": tasks(101, 1)}),
        ok({**done, "tasks": tasks(1, 100), "next_page_token": "y"}),
        ok({**done, "tasks": tasks(101, 2)}),
    ]
    script = Script(pages)
    with make_client(script, FakeClock()) as client:
        run = client.get_run(9)
    assert run["end_time"] == 77
    assert len(run["tasks"]) == 102
    assert len(script.requests) == 4


def test_iter_jobs_reads_all_pages_of_100() -> None:
    script = Script(
        [
            ok({"jobs": [{"job_id": i} for i in range(100)], "next_page_token": "j2"}),
            ok({"jobs": [{"job_id": 100}]}),
        ]
    )
    with make_client(script, FakeClock()) as client:
        jobs = list(client.iter_jobs())
    assert len(jobs) == 101
    assert script.params(0) == {"limit": "100", "expand_tasks": "false"}
    assert script.params(1)["page_token"] == "j2"


def test_get_job_merges_settings_arrays_of_all_pages() -> None:
    script = Script(
        [
            ok(
                {
                    "job_id": 4,
                    "settings": {
                        "name": "big",
                        "tasks": tasks(0, 100),
                        "parameters": [{"name": "a"}],
                    },
                    "next_page_token": "g2",
                }
            ),
            ok(
                {
                    "job_id": 4,
                    "settings": {"name": "big", "tasks": tasks(100, 5), "environments": [{}]},
                }
            ),
        ]
    )
    with make_client(script, FakeClock()) as client:
        job = client.get_job(4)
    assert len(job["settings"]["tasks"]) == 105
    assert job["settings"]["parameters"] == [{"name": "a"}]
    assert job["settings"]["environments"] == [{}]
    assert "next_page_token" not in job


def test_workspace_id_comes_from_the_first_org_id_header() -> None:
    script = Script(
        [
            ok({}, **{"X-Databricks-Org-Id": "4187230015569021"}),
            ok({}, **{"X-Databricks-Org-Id": "999"}),
        ]
    )
    with make_client(script, FakeClock()) as client:
        assert client.workspace_id is None
        client.get_run_page(1)
        client.get_run_page(2)
        assert client.workspace_id == "4187230015569021"


# -- retries and errors ----------------------------------------------------------------------


def test_retry_after_in_seconds_is_honoured() -> None:
    clock = FakeClock()
    throttled = error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests.", **{"Retry-After": "7"})
    script = Script([throttled, ok({"run_id": 1})])
    with make_client(script, clock) as client:
        assert client.get_run_page(1) == {"run_id": 1}
        stats = client.stats()
    assert len(script.requests) == 2
    assert 7.0 <= max(clock.sleeps) <= 7.5
    assert stats["throttled"] == 1 and stats["retries"] == 1


def test_retry_after_as_http_date_is_honoured() -> None:
    clock = FakeClock()
    throttled = error(
        503,
        "TEMPORARILY_UNAVAILABLE",
        "Please try again later.",
        **{"Retry-After": "Tue, 10 Jun 2025 14:05:12 GMT", "Date": "Tue, 10 Jun 2025 14:05:00 GMT"},
    )
    with make_client(Script([throttled, ok({})]), clock) as client:
        client.get_run_page(1)
    assert 12.0 <= max(clock.sleeps) <= 12.5


def test_huge_retry_after_is_capped() -> None:
    clock = FakeClock()
    throttled = error(429, "REQUEST_LIMIT_EXCEEDED", "slow down", **{"Retry-After": "3600"})
    with make_client(Script([throttled, ok({})]), clock) as client:
        client.get_run_page(1)
    assert max(clock.sleeps) <= 61


def test_429_halves_the_request_rate_which_then_recovers() -> None:
    clock = FakeClock()
    throttled = error(429, "REQUEST_LIMIT_EXCEEDED", "slow down", **{"Retry-After": "1"})
    with make_client(Script([throttled, ok({})]), clock, max_rps=20) as client:
        client.get_run_page(1)
        assert client.stats()["rate_limit_rps"] < 20
        clock.advance(30)
        client.get_run_page(1)
        assert client.stats()["rate_limit_rps"] == 20


@pytest.mark.parametrize(
    "failure",
    [
        error(500, "INTERNAL_ERROR", "Internal error occurred while processing the request."),
        error(503, "TEMPORARILY_UNAVAILABLE", "No webapps are available"),
        html(502, "502 Bad Gateway"),
        html(504, "504 Gateway Time-out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset by peer"),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectError("[Errno 111] Connection refused"),
    ],
    ids=["500", "503", "502-html", "504-html", "dropped", "reset", "read-timeout", "refused-once"],
)
def test_transient_failures_are_retried_then_succeed(failure: Step) -> None:
    script = Script([failure, failure, ok({"run_id": 3})])
    with make_client(script, FakeClock()) as client:
        assert client.get_run_page(3) == {"run_id": 3}
        assert client.stats()["retries"] == 2
    assert len(script.requests) == 3


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            error(
                400,
                "INVALID_PARAMETER_VALUE",
                "active_only and completed_only cannot both be true.",
            ),
            ApiError,
        ),
        (
            error(401, 401, "Credential was not sent or was of an unsupported type for this API."),
            AuthError,
        ),
        (error(403, 403, "Invalid access token."), AuthError),
        (
            error(403, "PERMISSION_DENIED", "User does not have Can View permission on job 7."),
            PermissionDeniedError,
        ),
        (error(400, "INVALID_PARAMETER_VALUE", "Run 123 does not exist."), NotFoundError),
        (error(404, "RESOURCE_DOES_NOT_EXIST", "Run 123 does not exist."), NotFoundError),
        (html(403, "Error 403 Invalid access token."), AuthError),
    ],
    ids=[
        "400",
        "401-numeric",
        "403-invalid-token",
        "403-permission",
        "400-missing",
        "404",
        "403-html",
    ],
)
def test_client_errors_are_not_retried_and_map_to_their_class(
    response: httpx.Response, expected: type[Exception]
) -> None:
    script = Script([response, ok({})])
    with make_client(script, FakeClock()) as client, pytest.raises(expected) as info:
        client.get_run_page(123)
    assert type(info.value) is expected
    assert len(script.requests) == 1


def test_auth_error_names_the_host_status_and_a_hint() -> None:
    script = Script([error(403, 403, "Invalid access token.")])
    with make_client(script, FakeClock()) as client, pytest.raises(AuthError) as info:
        client.get_run_page(1)
    message = str(info.value)
    assert message.startswith(f"authentication failed (403) for {HOST}")
    assert "DATABRICKS_TOKEN" in message


def test_numeric_error_code_is_kept_as_text() -> None:
    script = Script([error(500, 500, "boom")])
    with make_client(script, FakeClock(), deadline_s=0) as client, pytest.raises(ApiError) as info:
        client.get_run_page(1)
    assert info.value.error_code == "500" and info.value.status == 500


def test_deadline_surfaces_the_last_api_error_not_a_timeout() -> None:
    clock = FakeClock()
    script = Script(
        [error(503, "TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable.")]
    )
    with make_client(script, clock, deadline_s=120) as client, pytest.raises(ApiError) as info:
        client.get_run_page(1)
    assert info.value.status == 503
    assert "temporarily unavailable" in str(info.value)
    assert not isinstance(info.value, TimeoutError)
    assert 1_000 + 60 < clock.now <= 1_000 + 120
    assert len(script.requests) > 3


def test_deadline_surfaces_the_most_recent_kind_of_error() -> None:
    script = Script(
        [error(500, "INTERNAL_ERROR", "x"), httpx.ReadError("connection reset by peer")]
    )
    with (
        make_client(script, FakeClock(), deadline_s=60) as client,
        pytest.raises(NetworkError) as info,
    ):
        client.get_run_page(1)
    assert "dropped" in str(info.value) and "reset" in str(info.value)


def test_unreachable_host_fails_with_network_error_within_30_seconds() -> None:
    clock = FakeClock()
    script = Script([httpx.ConnectError("[Errno -2] Name or service not known")])
    with make_client(script, clock) as client, pytest.raises(NetworkError) as info:
        client.get_run_page(1)
    assert str(info.value).startswith(f"cannot reach {HOST}: [Errno -2] Name or service not known")
    assert clock.now - 1_000 <= 30
    assert len(script.requests) >= 3


def test_html_gateway_page_becomes_a_short_clear_error() -> None:
    script = Script([html(502, "502 Bad Gateway")])
    with make_client(script, FakeClock(), deadline_s=0) as client, pytest.raises(ApiError) as info:
        client.get_run_page(1)
    message = str(info.value)
    assert message.startswith(
        f"HTTP 502 from {HOST} returned an HTML page, not JSON (gateway error)"
    )
    assert "<html" not in message
    assert info.value.status == 502


def test_non_json_success_body_is_an_api_error() -> None:
    script = Script([httpx.Response(200, text="<html><title>Sign in</title></html>")])
    with (
        make_client(script, FakeClock()) as client,
        pytest.raises(ApiError, match="HTML page, not JSON"),
    ):
        client.get_run_page(1)


# -- credentials ---------------------------------------------------------------------------


class TokenApi:
    """An API that refuses listed tokens with 403 "Invalid access token." and records the rest."""

    def __init__(self, *refused: str) -> None:
        self.refused = set(refused)
        self.api_tokens: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        self.api_tokens.append(token)
        if token in self.refused:
            return error(403, 403, "Invalid access token.")
        return ok({"run_id": 1})


def test_headers_are_asked_of_the_credentials_for_every_request() -> None:
    # The SDK's providers refresh an expiring token inside headers(): asking per request is
    # what keeps a long extract signed in.
    config = oauth_config()
    api = TokenApi()
    with make_client(api, FakeClock(), config=config) as client:
        client.get_run_page(1)
        client.get_run_page(1)
    assert isinstance(config.credentials, RotatingTokens)
    assert config.credentials.header_calls == 2
    assert api.api_tokens == ["tok-1", "tok-1"]


def test_oauth_token_is_refreshed_once_after_invalid_access_token() -> None:
    api = TokenApi("tok-1")
    with make_client(api, FakeClock(), config=oauth_config()) as client:
        assert client.get_run_page(1) == {"run_id": 1}
    assert api.api_tokens == ["tok-1", "tok-2"]


def test_oauth_refusal_of_the_fresh_token_too_is_an_auth_error() -> None:
    api = TokenApi("tok-1", "tok-2", "tok-3")
    with (
        make_client(api, FakeClock(), config=oauth_config()) as client,
        pytest.raises(AuthError, match="auth describe"),
    ):
        client.get_run_page(1)
    assert api.api_tokens == ["tok-1", "tok-2"]


def test_refused_personal_access_token_is_not_retried() -> None:
    api = TokenApi(PAT)
    with make_client(api, FakeClock()) as client, pytest.raises(AuthError):
        client.get_run_page(1)
    assert api.api_tokens == [PAT]


# -- secrets ---------------------------------------------------------------------------------


def echo_authorization(status: int) -> Handler:
    """A hostile server that echoes the Authorization header back in its error message."""

    def handler(request: httpx.Request) -> httpx.Response:
        return error(status, "X", f"got header {request.headers.get('Authorization')}")

    return handler


@pytest.mark.parametrize("config", [PAT_CONFIG, OAUTH_CONFIG], ids=["pat", "oauth"])
def test_tokens_and_secrets_never_reach_exception_text_or_logs(
    config: WorkspaceConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    for status in (400, 401, 403, 500):
        handler = echo_authorization(status)
        with make_client(handler, FakeClock(), config=config, deadline_s=5) as client:
            with pytest.raises((ApiError, AuthError)) as info:
                client.get_run_page(1)
            texts.append(str(info.value))
            texts.append(repr(client))
    texts.append(caplog.text)
    secrets = (PAT, CLIENT_SECRET, "tok-1", "tok-2")
    assert "retry" in caplog.text and "/api/2.2/jobs/runs/get -> 500" in caplog.text
    for text in texts:
        for secret in secrets:
            assert secret not in text


# -- rate limit and threads ------------------------------------------------------------------


def test_rate_limiter_throughput_is_about_max_rps() -> None:
    clock = FakeClock()
    script = Script([ok({})])
    with make_client(script, clock, max_rps=20) as client:
        for _ in range(200):
            client.get_run_page(1)
    elapsed = clock.now - 1_000
    assert 9.0 <= elapsed <= 10.5, elapsed


def test_shared_client_is_safe_in_a_thread_pool() -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.001)
        with lock:
            in_flight -= 1
        run_id = int(request.url.params["run_id"])
        if run_id % 10 == 0 and request.url.params.get("page_token") is None:
            return ok({"run_id": run_id, "tasks": tasks(run_id * 1000, 1), "next_page_token": "p2"})
        return ok({"run_id": run_id, "tasks": tasks(run_id * 1000 + 1, 1)})

    with make_client(handler, FakeClock(), max_concurrency=3, max_rps=1000) as client:
        with ThreadPoolExecutor(max_workers=12) as pool:
            runs = list(pool.map(client.get_run, range(200)))
        stats = client.stats()
    assert [run["run_id"] for run in runs] == list(range(200))
    assert all(len(run["tasks"]) == (2 if run["run_id"] % 10 == 0 else 1) for run in runs)
    assert stats["requests"] == 220
    assert stats["endpoints"] == {"/api/2.2/jobs/runs/get": 220}
    assert peak <= 3
