"""HTTP client of the Databricks Jobs API 2.2: auth header, rate limit, retries, paging; returns dicts.

It knows nothing of DuckDB or of the extraction algorithm, and it must never write a token, a
client secret or an Authorization header into a log line or an exception message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Final

import httpx

from extractor._version import __version__
from extractor.config import WorkspaceConfig
from extractor.errors import (
    ApiError,
    AuthError,
    JobrunsError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    UncertainWriteError,
)

logger = logging.getLogger("jobruns.client")

JsonDict = dict[str, Any]
Params = Mapping[str, str | int | bool | None]

USER_AGENT: Final = f"jobruns/{__version__}"
RUNS_LIST: Final = "/api/2.2/jobs/runs/list"
RUNS_GET: Final = "/api/2.2/jobs/runs/get"
RUNS_GET_OUTPUT: Final = "/api/2.2/jobs/runs/get-output"
JOBS_LIST: Final = "/api/2.2/jobs/list"
JOBS_GET: Final = "/api/2.2/jobs/get"
CLUSTERS_GET: Final = "/api/2.1/clusters/get"
RUNS_REPAIR: Final = "/api/2.2/jobs/runs/repair"
RUNS_CANCEL: Final = "/api/2.2/jobs/runs/cancel"
RUNS_CANCEL_ALL: Final = "/api/2.2/jobs/runs/cancel-all"
RUNS_EXPORT: Final = "/api/2.2/jobs/runs/export"
CLUSTERS_EVENTS: Final = "/api/2.1/clusters/events"
NODE_TYPES_LIST: Final = "/api/2.1/clusters/list-node-types"
INSTANCE_POOLS_GET: Final = "/api/2.0/instance-pools/get"
SQL_STATEMENTS: Final = "/api/2.0/sql/statements"
# Event types that change or state a cluster's worker count (databricks-sdk compute.EventType).
WORKER_EVENT_TYPES: Final = ("RUNNING", "RESIZING", "UPSIZE_COMPLETED")
EVENTS_PAGE_LIMIT: Final = 500

RETRYABLE_STATUS: Final = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_CAP_S: Final = 60.0
BACKOFF_BASE_S: Final = 1.0
BACKOFF_CAP_S: Final = 30.0
# A host that cannot be resolved or refuses connections should fail fast (~30 s worst case: this
# budget plus one connect timeout), not after the whole per-call deadline.
CONNECT_RETRY_BUDGET_S: Final = 20.0
CONNECT_TIMEOUT_S: Final = 10.0
RUNS_LIST_FALLBACK_LIMIT: Final = 20
JOBS_LIST_LIMIT: Final = 100
MAX_RUN_READS: Final = 3

RUN_ARRAYS: Final = ("tasks", "job_clusters", "job_parameters", "repair_history", "iterations")
JOB_SETTINGS_ARRAYS: Final = ("tasks", "job_clusters", "environments", "parameters")
PAGING_KEYS: Final = ("next_page_token", "prev_page_token", "has_more")

_TITLE_RE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_INVALID_TOKEN = "invalid access token"
MIN_SCRUBBED_SECRET = 4


class _TokenBucket:
    """Thread-safe token bucket that halves its rate after a 429 and recovers over ~10 s.

    Each caller reserves a token (the balance may go negative) and sleeps off its own deficit
    outside the lock, so waiting threads are served in arrival order without busy loops.
    """

    def __init__(
        self, rate: float, monotonic: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        if rate <= 0:
            raise ValueError("max_rps must be positive")
        self._max_rate = rate
        self._min_rate = min(rate, max(rate / 32, 0.2))
        self._rate = rate
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last = monotonic()
        self._tokens = self._capacity()
        self._not_before = 0.0
        self._last_slowdown = float("-inf")

    def _capacity(self) -> float:
        # A fifth of a second's worth: smooth enough not to trip concurrency limits.
        return max(1.0, self._rate / 5)

    def _advance(self, now: float) -> None:
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self._capacity(), self._tokens + elapsed * self._rate)
        self._rate = min(self._max_rate, self._rate + elapsed * self._max_rate / 20)

    @property
    def rate(self) -> float:
        with self._lock:
            return self._rate

    def acquire(self) -> None:
        with self._lock:
            now = self._monotonic()
            self._advance(now)
            self._tokens -= 1.0
            wait = max(-self._tokens / self._rate, self._not_before - now, 0.0)
        if wait > 0:
            self._sleep(wait)

    def slow_down(self, pause_s: float) -> None:
        """After a 429: halve the rate (once per second at most) and pause every caller."""
        with self._lock:
            now = self._monotonic()
            self._advance(now)
            if now - self._last_slowdown >= 1.0:
                self._rate = max(self._min_rate, self._rate / 2)
                self._tokens = min(self._tokens, self._capacity())
                self._last_slowdown = now
            self._not_before = max(self._not_before, now + pause_s)


class _RetryableError(Exception):
    """Internal carrier: a real error plus how to wait before the next attempt."""

    def __init__(
        self,
        error: JobrunsError,
        *,
        retry_after: float | None = None,
        connect: bool = False,
        throttled: bool = False,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.connect = connect
        # Refused before the server acted on it: a 429, or a connection never made.
        self.not_applied = connect or throttled


class JobsClient:
    """Client of the Jobs endpoints jobruns reads, and of the few it acts with (repair, cancel);
    safe to share between threads."""

    def __init__(
        self,
        config: WorkspaceConfig,
        *,
        max_rps: float = 25.0,
        max_concurrency: int = 8,
        deadline_s: float = 300.0,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.config = config
        self.host = config.host
        self._deadline_s = deadline_s
        self._timeout_s = timeout_s
        self._sleep = sleep
        self._monotonic = monotonic
        self._rng = rng if rng is not None else random.Random()
        self._rng_lock = threading.Lock()
        self._bucket = _TokenBucket(max_rps, monotonic, sleep)
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._stats_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._endpoint_counts: Counter[str] = Counter()
        self._workspace_id: str | None = None
        self._runs_limit_cap: int | None = None
        self._sent_lock = threading.Lock()
        # Authorization values sent so far (the SDK refreshes them): scrubbed from error texts.
        self._sent_secrets: set[str] = set()
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if config.workspace_id:
            headers["X-Databricks-Workspace-Id"] = config.workspace_id
        self._http = httpx.Client(
            base_url=config.host,
            transport=transport,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
            follow_redirects=False,
        )
        # Result links of the SQL Statement Execution API are presigned cloud-storage URLs:
        # they carry their own credentials and must be fetched without ours.
        self._storage = httpx.Client(
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
            follow_redirects=False,
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> JobsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self._storage.close()

    def __repr__(self) -> str:
        return f"JobsClient({self.config!r})"

    # -- observability ---------------------------------------------------------------------------

    @property
    def workspace_id(self) -> str | None:
        """The X-Databricks-Org-Id of the first response seen; None before any response."""
        with self._stats_lock:
            return self._workspace_id

    def stats(self) -> dict[str, Any]:
        """Counters since construction: requests, retries, throttled (429s), bytes, per endpoint."""
        with self._stats_lock:
            return {
                "requests": self._counts["requests"],
                "retries": self._counts["retries"],
                "throttled": self._counts["throttled"],
                "bytes": self._counts["bytes"],
                "endpoints": dict(self._endpoint_counts),
                "rate_limit_rps": round(self._bucket.rate, 3),
            }

    # -- endpoints -------------------------------------------------------------------------------

    def list_runs_page(
        self,
        *,
        start_time_from: int | None,
        start_time_to: int | None,
        page_token: str | None = None,
        expand_tasks: bool = True,
        limit: int = 25,
        active_only: bool = False,
        job_id: int | None = None,
    ) -> JsonDict:
        """One page of jobs/runs/list (newest first); follow `next_page_token`, never `has_more`."""
        with self._stats_lock:
            cap = self._runs_limit_cap
        effective = min(limit, cap) if cap is not None else limit
        params: dict[str, str | int | bool | None] = {
            "start_time_from": start_time_from,
            "start_time_to": start_time_to,
            "page_token": page_token,
            "expand_tasks": expand_tasks,
            "limit": effective,
            "active_only": True if active_only else None,
            "job_id": job_id,
        }
        try:
            return self._get(RUNS_LIST, params)
        except ApiError as exc:
            if not _is_limit_rejection(exc) or effective <= RUNS_LIST_FALLBACK_LIMIT:
                raise
            logger.warning(
                "%s refused limit=%d (%s); using limit=%d from now on",
                RUNS_LIST,
                effective,
                exc,
                RUNS_LIST_FALLBACK_LIMIT,
            )
            with self._stats_lock:
                self._runs_limit_cap = RUNS_LIST_FALLBACK_LIMIT
            params["limit"] = RUNS_LIST_FALLBACK_LIMIT
            return self._get(RUNS_LIST, params)

    def get_run_page(
        self, run_id: int, *, include_history: bool = True, page_token: str | None = None
    ) -> JsonDict:
        """One page of jobs/runs/get (arrays hold at most 100 elements each)."""
        params = {"run_id": run_id, "include_history": include_history, "page_token": page_token}
        return self._get(RUNS_GET, params)

    def get_run(self, run_id: int, *, include_history: bool = True) -> JsonDict:
        """The whole run: every page's tasks, job_clusters, job_parameters, repair_history and
        iterations appended to the first page, without paging keys.

        If the run changes between pages (its end_time or status differ), the read starts over, up
        to MAX_RUN_READS times; the last read is returned even if the run kept changing.
        """
        merged: JsonDict = {}
        for attempt in range(1, MAX_RUN_READS + 1):
            merged, consistent = self._read_run_once(run_id, include_history)
            if consistent:
                return merged
            logger.info("run %s changed while its pages were read (read %d)", run_id, attempt)
        logger.warning(
            "run %s kept changing across %d reads; keeping the last one", run_id, MAX_RUN_READS
        )
        return merged

    def iter_jobs(self, *, expand_tasks: bool = False) -> Iterator[JsonDict]:
        """Every job of the workspace (jobs/list, 100 per page), one dict per job."""

        def fetch(token: str | None) -> JsonDict:
            params = {"limit": JOBS_LIST_LIMIT, "expand_tasks": expand_tasks, "page_token": token}
            return self._get(JOBS_LIST, params)

        for page in self._follow_pages(fetch, JOBS_LIST):
            yield from page.get("jobs") or []

    def get_job(self, job_id: int) -> JsonDict:
        """The whole job: settings.tasks, job_clusters, environments and parameters of all pages."""

        def fetch(token: str | None) -> JsonDict:
            return self._get(JOBS_GET, {"job_id": job_id, "page_token": token})

        pages = self._follow_pages(fetch, JOBS_GET)
        merged = _strip_paging(next(pages), JOB_SETTINGS_ARRAYS, "settings")
        for page in pages:
            _append_arrays(
                merged.setdefault("settings", {}), page.get("settings") or {}, JOB_SETTINGS_ARRAYS
            )
        return merged

    def get_run_output(self, run_id: int) -> JsonDict:
        """One task run's output (runs/get-output): metadata, error, error_trace. A multi-task
        job run is refused with 400 INVALID_PARAMETER_VALUE: ask for its task runs."""
        return self._get(RUNS_GET_OUTPUT, {"run_id": run_id})

    def get_cluster(self, cluster_id: str) -> JsonDict:
        """One cluster's ClusterDetails (clusters/get): node types, size, engine, state."""
        return self._get(CLUSTERS_GET, {"cluster_id": cluster_id})

    def list_node_types(self) -> JsonDict:
        """Every node type of the workspace (clusters/list-node-types): cores, memory, category."""
        return self._get(NODE_TYPES_LIST, {})

    def get_instance_pool(self, instance_pool_id: str) -> JsonDict:
        """One instance pool (instance-pools/get): the node type its clusters run on."""
        return self._get(INSTANCE_POOLS_GET, {"instance_pool_id": instance_pool_id})

    # -- SQL Statement Execution API ------------------------------------------------------------

    def execute_statement(self, body: JsonDict) -> JsonDict:
        """Submit a SQL statement (POST sql/statements); the StatementResponse as a dict.

        Retried like a read: jobruns submits only SELECTs, so a statement that ran twice after
        a lost answer costs warehouse time but changes nothing (the orphan ends on its own)."""
        return self._call("POST", SQL_STATEMENTS, json_body=body)

    def get_statement(self, statement_id: str) -> JsonDict:
        """The statement's status, and once SUCCEEDED its manifest and first result chunk."""
        return self._get(f"{SQL_STATEMENTS}/{statement_id}", {})

    def get_statement_chunk(self, statement_id: str, chunk_index: int) -> JsonDict:
        """One result chunk (ResultData): external_links or data_array, by chunk index."""
        return self._get(f"{SQL_STATEMENTS}/{statement_id}/result/chunks/{chunk_index}", {})

    def cancel_statement(self, statement_id: str) -> None:
        """Ask the warehouse to stop a statement (it may have finished already)."""
        self._call("POST", f"{SQL_STATEMENTS}/{statement_id}/cancel", json_body={})

    def download(self, url: str, headers: Mapping[str, str] | None = None) -> bytes:
        """GET a presigned result link without the workspace's Authorization header.

        Transport failures and 5xx are retried under the deadline; any other refusal (an
        expired link is 403) raises ApiError with the storage's status. The URL holds a
        temporary credential: only its host ever reaches a log line or a message."""
        where = httpx.URL(url).host or "cloud storage"
        start = self._monotonic()
        attempt = 0
        while True:
            attempt += 1
            error: JobrunsError
            try:
                with self._slots:
                    response = self._storage.get(url, headers=dict(headers or {}))
            except httpx.TransportError as exc:
                error = NetworkError(
                    f"cannot download a result chunk from {where}: {type(exc).__name__}"
                )
            else:
                with self._stats_lock:
                    self._counts["requests"] += 1
                    self._counts["bytes"] += len(response.content)
                    self._endpoint_counts["result download"] += 1
                if response.is_success:
                    return response.content
                error = ApiError(
                    f"HTTP {response.status_code} from {where} for a result chunk: "
                    f"{_short(response.text, 200) or '(empty body)'}",
                    status=response.status_code,
                )
                if response.status_code not in RETRYABLE_STATUS:
                    raise error
            delay = self._delay(attempt, None)
            if self._monotonic() + delay > start + self._deadline_s:
                raise error
            with self._stats_lock:
                self._counts["retries"] += 1
            logger.warning(
                "result download from %s failed (%s); retry in %.1f s", where, error, delay
            )
            self._sleep(delay)

    def cluster_events(self, cluster_id: str, start_ms: int, end_ms: int) -> list[JsonDict]:
        """A cluster's worker-count events between two times, oldest first, every page.

        The API pages by returning the next request body as `next_page`
        (databricks-sdk ClustersAPI.events); each page is one request in the rate limit.
        """
        body: JsonDict = {
            "cluster_id": cluster_id,
            "start_time": start_ms,
            "end_time": end_ms,
            "order": "ASC",
            "event_types": list(WORKER_EVENT_TYPES),
            "limit": EVENTS_PAGE_LIMIT,
        }
        events: list[JsonDict] = []
        seen: set[str] = set()
        while True:
            page = self._call("POST", CLUSTERS_EVENTS, json_body=body)
            events.extend(page.get("events") or [])
            following = page.get("next_page")
            if not following:
                return events
            key = json.dumps(following, sort_keys=True)
            if key in seen:
                raise ApiError(
                    f"{CLUSTERS_EVENTS} on {self.host} returned a next page it had already "
                    "returned; stopping instead of looping forever"
                )
            seen.add(key)
            body = dict(following)

    def export_run(self, task_run_id: int, views_to_export: str = "CODE") -> JsonDict:
        """runs/export of a notebook task run: {views: [{content (HTML), name, type}]}."""
        return self._get(RUNS_EXPORT, {"run_id": task_run_id, "views_to_export": views_to_export})

    # -- writes (only `jobruns repair` / `cancel` with --yes call these) -----------------------

    def repair_run(self, run_id: int, *, latest_repair_id: int | None) -> JsonDict:
        """runs/repair of every failed task and what depends on it -> {repair_id}.

        Not idempotent: retried only when the server surely did not act (429, no connection);
        a timeout or 5xx raises UncertainWriteError so the caller re-reads the run.
        """
        body: JsonDict = {
            "run_id": run_id,
            "rerun_all_failed_tasks": True,
            "rerun_dependent_tasks": True,
        }
        if latest_repair_id:
            body["latest_repair_id"] = latest_repair_id
        return self._call("POST", RUNS_REPAIR, json_body=body, safe=False)

    def cancel_run(self, run_id: int) -> JsonDict:
        """runs/cancel (asynchronous: the run ends a moment later). Cancelling twice is harmless."""
        return self._call("POST", RUNS_CANCEL, json_body={"run_id": run_id})

    def cancel_all_runs(self, job_id: int, *, all_queued_runs: bool = False) -> JsonDict:
        """runs/cancel-all of one job's active runs (and queued ones with all_queued_runs)."""
        body: JsonDict = {"job_id": job_id}
        if all_queued_runs:
            body["all_queued_runs"] = True
        return self._call("POST", RUNS_CANCEL_ALL, json_body=body)

    # -- paging helpers --------------------------------------------------------------------------

    def _follow_pages(
        self, fetch: Callable[[str | None], JsonDict], path: str
    ) -> Generator[JsonDict, None, None]:
        seen: set[str] = set()
        token: str | None = None
        while True:
            page = fetch(token)
            yield page
            token = page.get("next_page_token") or None
            if token is None:
                return
            if token in seen:
                raise ApiError(
                    f"{path} on {self.host} returned a page token it had already returned; "
                    "stopping instead of looping forever"
                )
            seen.add(token)

    def _read_run_once(self, run_id: int, include_history: bool) -> tuple[JsonDict, bool]:
        def fetch(token: str | None) -> JsonDict:
            return self.get_run_page(run_id, include_history=include_history, page_token=token)

        pages = self._follow_pages(fetch, RUNS_GET)
        first = next(pages)
        merged = _strip_paging(first, RUN_ARRAYS, None)
        seen_tasks = {task.get("run_id") for task in merged.get("tasks", [])}
        for page in pages:
            if _changed(first, page, "end_time") or _changed(first, page, "status"):
                pages.close()
                return merged, False
            # A for-each task run repeats its single task on every page: keep only new task runs.
            page = dict(page)
            tasks = [t for t in page.pop("tasks", None) or [] if t.get("run_id") not in seen_tasks]
            seen_tasks.update(t.get("run_id") for t in tasks)
            page["tasks"] = tasks
            _append_arrays(merged, page, RUN_ARRAYS)
        return merged, True

    # -- transport -------------------------------------------------------------------------------

    def _get(self, path: str, params: Params) -> JsonDict:
        query = {k: _query_value(v) for k, v in params.items() if v is not None}
        return self._call("GET", path, query=query)

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        json_body: JsonDict | None = None,
        safe: bool = True,
    ) -> JsonDict:
        """One logical call with retries under the deadline; raises the last real error.

        `safe=False` (a write that must not happen twice) retries only what was surely not
        applied and turns any other retryable failure into UncertainWriteError."""
        start = self._monotonic()
        deadline = start + self._deadline_s
        connect_failing_since: float | None = None
        refreshed_token = False
        attempt = 0
        while True:
            attempt += 1
            headers = self._auth_headers()
            try:
                return self._attempt(method, path, query, form, json_body, headers)
            except AuthError:
                # An OAuth token may have been revoked or expired early: get a new one, once.
                if refreshed_token or not self.config.credentials.refresh():
                    raise
                refreshed_token = True
                logger.warning(
                    "%s %s: access token refused; getting a new %s token",
                    method,
                    path,
                    self.config.auth_type,
                )
                continue
            except _RetryableError as retry:
                error = retry.error
                if not safe and not retry.not_applied:
                    raise UncertainWriteError(
                        f"{method} {path} may or may not have been applied: {error}",
                        status=getattr(error, "status", None),
                        error_code=getattr(error, "error_code", None),
                    ) from None
                now = self._monotonic()
                if retry.connect:
                    if connect_failing_since is None:
                        connect_failing_since = now
                    limit = min(deadline, connect_failing_since + CONNECT_RETRY_BUDGET_S)
                else:
                    connect_failing_since = None
                    limit = deadline
                delay = self._delay(attempt, retry.retry_after)
                if now + delay > limit:
                    raise error from None
                with self._stats_lock:
                    self._counts["retries"] += 1
                logger.warning(
                    "%s %s failed (%s); retry %d in %.1f s", method, path, error, attempt, delay
                )
                self._sleep(delay)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        with self._rng_lock:
            jitter = self._rng.random()
        if retry_after is not None:
            return retry_after + jitter * 0.5
        # Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))].
        return jitter * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** (attempt - 1))

    def _attempt(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        form: Mapping[str, str] | None,
        json_body: JsonDict | None,
        headers: Mapping[str, str],
    ) -> JsonDict:
        self._bucket.acquire()
        with self._stats_lock:
            self._counts["requests"] += 1
            self._endpoint_counts[path] += 1
        began = self._monotonic()
        try:
            with self._slots:
                response = self._http.request(
                    method, path, params=query, data=form, json=json_body, headers=headers
                )
        except httpx.TransportError as exc:
            raise self._transport_error(exc, path) from None
        elapsed_ms = (self._monotonic() - began) * 1000
        self._record(response)
        logger.debug("%s %s -> %d in %.0f ms", method, path, response.status_code, elapsed_ms)
        if response.is_success:
            return self._json_body(response, path)
        error = self._error_from_response(response, path)
        if response.status_code == 429:
            with self._stats_lock:
                self._counts["throttled"] += 1
        if response.status_code not in RETRYABLE_STATUS:
            raise error
        retry_after = _retry_after_seconds(response)
        if retry_after is not None:
            retry_after = min(retry_after, RETRY_AFTER_CAP_S)
        if response.status_code == 429:
            self._bucket.slow_down(retry_after if retry_after is not None else 1.0)
        raise _RetryableError(error, retry_after=retry_after, throttled=response.status_code == 429)

    def _record(self, response: httpx.Response) -> None:
        org_id = response.headers.get("X-Databricks-Org-Id")
        with self._stats_lock:
            self._counts["bytes"] += len(response.content)
            if self._workspace_id is None and org_id:
                self._workspace_id = org_id.strip()

    def _transport_error(self, exc: httpx.TransportError, path: str) -> Exception:
        detail = self._scrub(str(exc) or type(exc).__name__)
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return _RetryableError(
                NetworkError(
                    f"cannot reach {self.host}: {detail} (check the host name, network or proxy)"
                ),
                connect=True,
            )
        if isinstance(exc, httpx.TimeoutException):
            return _RetryableError(
                NetworkError(
                    f"no answer from {self.host} for {path} within {self._timeout_s:g} s ({detail})"
                )
            )
        if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
            return _RetryableError(
                NetworkError(f"connection to {self.host} dropped during {path}: {detail}")
            )
        return NetworkError(f"cannot talk to {self.host}: {type(exc).__name__}: {detail}")

    def _json_body(self, response: httpx.Response, path: str) -> JsonDict:
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(
                self._not_json_message(response, path), status=response.status_code
            ) from None
        if not isinstance(body, dict):
            raise ApiError(
                f"{path} on {self.host} returned JSON that is not an object",
                status=response.status_code,
            )
        return body

    def _not_json_message(self, response: httpx.Response, path: str) -> str:
        status = response.status_code
        text = response.text.strip()
        if text[:200].lower().startswith(
            ("<!doctype", "<html", "<")
        ) or "html" in response.headers.get("Content-Type", ""):
            hint = " (gateway error)" if status in (502, 503, 504) else ""
            title = _TITLE_RE.search(text)
            shown = f": {_short(title.group(1))}" if title and not hint else ""
            return f"HTTP {status} from {self.host} returned an HTML page, not JSON{hint}{shown} [{path}]"
        kind = response.headers.get("Content-Type") or "no content type"
        snippet = f": {_short(text, 80)}" if text else " (empty body)"
        return f"HTTP {status} from {self.host} returned a non-JSON body ({kind}){snippet} [{path}]"

    def _error_from_response(self, response: httpx.Response, path: str) -> JobrunsError:
        status = response.status_code
        error_code: str | None = None
        message = ""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if isinstance(body, dict):
            raw_code = body.get("error_code", body.get("error"))
            error_code = None if raw_code is None else str(raw_code)
            message = str(
                body.get("message") or body.get("error_description") or body.get("error") or ""
            )
            code = f"{error_code}: " if error_code else ""
            detail = self._scrub(f"{code}{_short(message) or '(no message)'} [{path}]")
            sentence = f"HTTP {status} from {self.host}: {detail}"
        else:
            message = response.text
            sentence = detail = self._scrub(self._not_json_message(response, path))
        reason = response.headers.get("X-Databricks-Reason-Phrase", "")
        token_refused = _INVALID_TOKEN in (message + " " + reason).lower()

        if status == 401 or (status == 403 and (token_refused or error_code == "403")):
            return AuthError(
                f"authentication failed ({status}) for {self.host}: {detail}. {self._auth_hint()}"
            )
        if status == 403 and error_code == "PERMISSION_DENIED":
            return PermissionDeniedError(
                f"permission denied on {self.host}: {detail}", status=status, error_code=error_code
            )
        if (
            status == 404
            or error_code == "RESOURCE_DOES_NOT_EXIST"
            or (status == 400 and "does not exist" in message.lower())
        ):
            return NotFoundError(
                f"not found on {self.host}: {detail}", status=status, error_code=error_code
            )
        if status == 429:
            return ApiError(
                f"rate limited (HTTP 429) by {self.host}: {detail}",
                status=status,
                error_code=error_code,
            )
        return ApiError(sentence, status=status, error_code=error_code)

    def _auth_hint(self) -> str:
        where = f" (profile {self.config.profile})" if self.config.profile else ""
        hint = _AUTH_HINTS.get(self.config.auth_type, _AUTH_HINTS["default"])
        return f"{hint}{where}; `jobruns auth describe` shows which credentials were used."

    def _scrub(self, text: str) -> str:
        for secret in self._secrets():
            # A secret of a few characters would turn every word containing them into "***";
            # real tokens and secrets are long, and short ones are never echoed by the API.
            if len(secret) >= MIN_SCRUBBED_SECRET:
                text = text.replace(secret, "***")
        return text

    def _secrets(self) -> list[str]:
        with self._sent_lock:
            sent = list(self._sent_secrets)
        return [*sent, *self.config.credentials.secrets()]

    # -- auth ------------------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        """Fresh headers from the credentials (the SDK refreshes an expiring token itself)."""
        headers = self.config.credentials.headers()
        with self._sent_lock:
            for name, value in headers.items():
                if "authorization" in name.lower() or "token" in name.lower():
                    self._sent_secrets.update((value, value.partition(" ")[2]))
        return headers


_AUTH_HINTS: Final = {
    "pat": (
        "The personal access token may be expired, revoked or for another workspace: create a "
        "new one and pass it with --token or DATABRICKS_TOKEN"
    ),
    "oauth-m2m": (
        "The service principal may lack workspace access or its OAuth secret may be revoked: "
        "check DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET"
    ),
    "databricks-cli": (
        "The Databricks CLI's login may have expired or be for another workspace: run "
        "`databricks auth login --host HOST` again"
    ),
    "azure-cli": (
        "The Azure CLI's account may have no access to this workspace: check `az account show` "
        "or run `az login` again"
    ),
    "default": (
        "The workspace refused these credentials: they may be expired, revoked or for another "
        "workspace"
    ),
}


def _query_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _short(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _retry_after_seconds(response: httpx.Response) -> float | None:
    """Retry-After as integer seconds or an HTTP date (measured against the Date header)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    now_header = response.headers.get("Date")
    try:
        now = email.utils.parsedate_to_datetime(now_header) if now_header else None
    except (TypeError, ValueError, IndexError):
        now = None
    if now is None or now.tzinfo is None:
        now = datetime.now(when.tzinfo)
    return max(0.0, (when - now).total_seconds())


def _is_limit_rejection(error: ApiError) -> bool:
    return (
        error.status == 400
        and "limit" in str(error).lower()
        and not isinstance(error, NotFoundError)
    )


def strip_paging(body: Mapping[str, Any]) -> JsonDict:
    """A copy of a response body without the keys the API adds for paging (they describe the
    response, not the run)."""
    return {k: v for k, v in body.items() if k not in PAGING_KEYS}


def _strip_paging(page: JsonDict, arrays: tuple[str, ...], container: str | None) -> JsonDict:
    """A copy of the first page without paging keys, its arrays copied so appends stay local."""
    merged = strip_paging(page)
    target = merged
    if container is not None:
        if not isinstance(merged.get(container), dict):
            return merged
        target = merged[container] = dict(merged[container])
    for key in arrays:
        if isinstance(target.get(key), list):
            target[key] = list(target[key])
    return merged


def _append_arrays(target: JsonDict, page: Mapping[str, Any], arrays: tuple[str, ...]) -> None:
    for key in arrays:
        items = page.get(key)
        if items:
            target.setdefault(key, []).extend(items)


def _changed(first: Mapping[str, Any], page: Mapping[str, Any], key: str) -> bool:
    return key in page and page[key] != first.get(key)
