"""One extraction, told top to bottom: list, complete, refresh, sweep, rescan, store, log.

It orchestrates the client (HTTP) and the store (DuckDB): `plan` (extractor.plan) says which
windows to read and where the watermark ends; this module decides which runs to re-fetch,
completes them, and saves the plan's state only once everything read is stored. It never
writes from two threads at once (run batches are stored by a writer thread, which is done before
anything else is written) and never moves the watermark past unstored data.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pyarrow as pa

from extractor.analytics.rates import infer_dbu_rate, load_node_facts
from extractor.client import strip_paging
from extractor.errors import ApiError, NotFoundError, PermissionDeniedError
from extractor.flatten import (
    RunBundle,
    arrow_schema,
    flatten_clusters,
    flatten_instance_pools,
    flatten_jobs,
    flatten_node_types,
    flatten_task_errors,
    is_active,
    is_for_each,
    job_signature,
    prepare_runs,
    worker_intervals,
)
from extractor.plan import ExtractOptions, Range, dt, ms, ms_delta, plan
from extractor.schema import STATE_TABLES
from extractor.store import LOCK_WAIT_S, RunSignature, RunWriter, Store, StoredRuns, is_interrupt

log = logging.getLogger("jobruns.extract")

# An all-purpose cluster's spec changes rarely: clusters/get is asked at most once a day each.
CLUSTER_REFRESH = timedelta(hours=24)
# runs/get-output keeps a task's output as long as the run: 60 days (SDK get_run_output docs).
OUTPUT_RETENTION = timedelta(days=60)

# Signs one error: (error, error_trace, state_message, termination_code, result_state) -> the
# signature columns of task_errors. Given by the caller (the signer lives with the analytics).
Signer = Callable[[str | None, str | None, str | None, str | None, str | None], dict[str, Any]]
# An instance pool's node type is fixed at creation; re-read at most daily all the same.
POOL_REFRESH = timedelta(hours=24)
# Events are asked for a little beyond the tasks' span: the cluster starts before its first
# task runs and its last resize may precede the first task's start time by a few seconds.
EVENTS_MARGIN = timedelta(hours=1)
# Cluster events and task errors are stored every this many answers, not at the end: a large
# workspace's failures and autoscaling clusters would otherwise all wait in memory, and a crash
# would lose them (each stored batch is never asked for again).
LATER_BATCH = 500


class JobsApi(Protocol):
    """What extraction needs from the client (extractor.client.JobsClient)."""

    @property
    def workspace_id(self) -> str | None: ...

    @property
    def host(self) -> str: ...

    def list_runs_page(
        self,
        *,
        start_time_from: int | None,
        start_time_to: int | None,
        page_token: str | None = None,
        expand_tasks: bool = True,
    ) -> dict[str, Any]: ...

    def get_run(self, run_id: int, *, include_history: bool = True) -> dict[str, Any]: ...

    def iter_jobs(self) -> Iterator[dict[str, Any]]: ...

    def get_job(self, job_id: int) -> dict[str, Any]: ...

    def get_cluster(self, cluster_id: str) -> dict[str, Any]: ...

    def get_run_output(self, run_id: int) -> dict[str, Any]: ...
    def get_instance_pool(self, instance_pool_id: str) -> dict[str, Any]: ...

    def list_node_types(self) -> dict[str, Any]: ...

    def cluster_events(
        self, cluster_id: str, start_ms: int, end_ms: int
    ) -> list[dict[str, Any]]: ...

    def stats(self) -> dict[str, Any]: ...


class ProgressSink(Protocol):
    def update(
        self, *, phase: str, pages: int, runs: int, requests: int, fraction: float | None
    ) -> None: ...


@dataclass
class ExtractResult:
    extract_id: str
    workspace_id: str
    host: str
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    window_start: datetime | None = None
    window_end: datetime | None = None
    rescan: bool = False
    repair_sweep: bool = False
    pages: int = 0
    requests: int = 0
    runs_seen: int = 0
    runs_new: int = 0
    runs_changed: int = 0
    runs_refreshed: int = 0
    runs_deleted: int = 0
    jobs_seen: int = 0
    clusters_fetched: int = 0
    errors_fetched: int = 0
    pools_fetched: int = 0
    cluster_events_read: int = 0
    node_types_listed: int = 0
    skipped_runs: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    message: str = ""
    # Runs this extract wrote or marked deleted: what derived tables must recompute.
    changed_run_ids: set[int] = field(default_factory=set)

    def log_row(self) -> dict[str, Any]:
        """The extract_log row: the columns of extractor.schema's table, read off this result."""
        finished = self.finished_at or datetime.now(UTC)
        derived = {
            "finished_at": finished,
            "duration_ms": int((finished - self.started_at).total_seconds() * 1000),
        }
        return {
            c: derived[c] if c in derived else getattr(self, c) for c in STATE_TABLES["extract_log"]
        }


def workspace_id_of(run: dict[str, Any]) -> str | None:
    """The numeric workspace id in a run_page_url (`?o=<id>`), if any."""
    url = run.get("run_page_url") or ""
    marker = "?o="
    if marker not in url:
        return None
    rest = url.split(marker, 1)[1]
    digits = ""
    for ch in rest:
        if not ch.isdigit():
            break
        digits += ch
    return digits or None


def listed_signature(run: dict[str, Any]) -> RunSignature:
    state = run.get("state") or {}
    status = run.get("status") or {}
    end = run.get("end_time") or None
    lcs = state.get("life_cycle_state")
    duration = run.get("run_duration")
    return RunSignature(
        end_time=None if end is None else int(end),
        life_cycle_state=lcs,
        result_state=state.get("result_state"),
        status_state=status.get("state"),
        run_duration_ms=None if duration is None else int(duration),
        is_active=is_active(lcs, status.get("state")),
        deleted=False,
    )


def needs_full_fetch(run: dict[str, Any]) -> bool:
    """Whether a listed (expanded) run lacks something only runs/get gives.

    runs/get is needed when the task list was cut at 100 (`has_more`), or when any task was
    re-run (attempt_number > 0): that may be a repair, and only include_history tells.
    A run none of whose tasks was re-run had no repair; its history is the ORIGINAL item alone.
    """
    if run.get("has_more"):
        return True
    return any((t.get("attempt_number") or 0) > 0 for t in run.get("tasks") or [])


def complete_run(client: Any, run: dict[str, Any]) -> RunBundle:
    """A runs/get body with the iterations of its for-each tasks read: what the store keeps of
    one run. `client` needs only get_run."""
    iterations: dict[int, list[dict[str, Any]]] = {}
    for task in run.get("tasks") or []:
        if not is_for_each(task):
            continue
        if _never_iterated(task):
            iterations[int(task["run_id"])] = []
            continue
        parent = client.get_run(int(task["run_id"]), include_history=False)
        iterations[int(task["run_id"])] = parent.get("iterations") or []
    return RunBundle(run, iterations)


def _never_iterated(task: dict[str, Any]) -> bool:
    """A finished for-each task whose stats count no iteration needs no runs/get."""
    stats = ((task.get("for_each_task") or {}).get("stats") or {}).get("task_run_stats") or {}
    finished = (task.get("state") or {}).get("life_cycle_state") in ("TERMINATED", "SKIPPED")
    return finished and stats.get("total_iterations") == 0


class Extraction:
    """One extract of one workspace into one store."""

    def __init__(
        self,
        client: JobsApi,
        store: Store,
        options: ExtractOptions | None = None,
        *,
        now: Callable[[], datetime] | None = None,
        progress: ProgressSink | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.client = client
        self.signer = signer
        self.store = store
        self.options = options or ExtractOptions()
        self.now = now or (lambda: datetime.now(UTC))
        self.progress = progress
        self._buffer: list[RunBundle] = []
        self._last_flush = time.monotonic()
        self._unknown_logged: set[tuple[str, str]] = set()
        self._done: set[int] = set()
        self._vanished: list[int] = []
        # existing_cluster_id of the tasks stored so far, and what clusters/get said of each.
        self._clusters_used: set[str] = set()
        self._clusters: dict[str, dict[str, Any] | str] = {}
        # Failed task runs whose runs/get-output answered (or was refused for good), until
        # stored (every LATER_BATCH and at the end).
        self._task_errors: list[dict[str, Any]] = []
        # Instance pools named by tasks stored so far and by cluster specs, and their answers.
        self._pools_used: set[str] = set()
        self._pools: dict[str, dict[str, Any] | str] = {}
        # cluster_id -> (job run, the worker-count events or why the API refused), until stored.
        self._events: dict[str, tuple[int, list[dict[str, Any]] | str]] = {}
        # What was asked for already: the events of these clusters, the output of these task
        # runs (failures that ended after `_outputs_after`).
        self._events_asked: set[str] = set()
        self._outputs_asked: set[int] = set()
        self._outputs_after: datetime | None = None
        # The runs of the batch handed to the writer last.
        self._writing: frozenset[int] = frozenset()
        self._node_types: list[dict[str, Any]] | None = None
        self._result: ExtractResult | None = None

    # -- the story ---------------------------------------------------------------------

    def run(self) -> ExtractResult:
        with self.store.holding():
            return self._run()

    @property
    def partial(self) -> ExtractResult | None:
        """The result so far, also of a run that raised (its changed_run_ids then hold every run
        it may have written); None before the run reached the store."""
        return self._result

    def _run(self) -> ExtractResult:
        started = self.now()
        t0 = ms(started)
        self.store.initialize()
        # The workspace id keys every row. A store that has seen this host knows it; otherwise
        # the first response tells (header, else a run_page_url, else the host itself).
        known = self.store.workspace_of_host(self.client.host)
        self.result = self._result = result = ExtractResult(
            extract_id=uuid.uuid4().hex,
            workspace_id=known or self.client.host,
            host=self.client.host,
            started_at=started,
        )
        try:
            jobs: list[dict[str, Any]] | None = None
            if known is None:
                jobs = list(self.client.iter_jobs())
                known = self.client.workspace_id or self._workspace_from_runs()
            self.workspace_id = result.workspace_id = known
            self._extract(jobs, t0)
            result.status = "ok"
        except BaseException as exc:
            result.status = "interrupted" if is_interrupt(exc) else "failed"
            result.errors.append(str(exc) or type(exc).__name__)
            raise
        finally:
            result.finished_at = self.now()
            result.requests = int(self.client.stats().get("requests", 0))
            self._write_log(result)
        return result

    def _extract(self, jobs: list[dict[str, Any]] | None, t0: int) -> None:
        ws = self.workspace_id
        todo = plan(self.store.state(ws), self.options, dt(t0))
        result = self.result
        result.window_start, result.window_end = todo.window_start, todo.window_end
        result.rescan, result.repair_sweep = todo.rescan, todo.repair_sweep
        self._read(list(todo.ranges), jobs, self.store.active_runs(ws), t0)
        with self.store.transaction() as con:
            self.store.save_state(con, ws, self.client.host, **todo.stamps)

    # -- fetching ------------------------------------------------------------------------

    def _slices(self, rng: Range) -> list[tuple[int, int]]:
        """Split a range into disjoint start_time slices that are listed concurrently."""
        span = max(1, rng.end_ms - rng.start_ms + 1)
        count = max(
            1,
            min(
                self.options.concurrency * 4,
                math.ceil(span / ms_delta(self.options.slice_span)),
            ),
        )
        step = math.ceil(span / count)
        out = []
        lo = rng.start_ms
        while lo <= rng.end_ms:
            hi = min(rng.end_ms, lo + step - 1)
            out.append((lo, hi))
            lo = hi + 1
        # Newest slices first: fresh runs land before the long tail of history.
        return out[::-1]

    def _read(
        self,
        ranges: list[Range],
        jobs: list[dict[str, Any]] | None,
        active_before: dict[int, int | None],
        t0: int,
    ) -> None:
        """Everything the extract reads, in one pool: jobs, every page of every range, the
        runs that need completing and the formerly active runs. Writes stay on this thread.

        Each request is queued with the handler of its answer (`_on_page`, `_on_jobs`,
        `_on_job`, `_on_run`, `_on_cluster`, `_on_events`, `_on_pool`, `_on_node_types`,
        `_on_output`); the loops below only feed the pool and call handlers. The events of
        ended autoscaling job clusters and the errors of failed task runs are asked for the
        runs stored once every page is read, and for the rest once every run is stored. Then
        come the all-purpose clusters and, each as soon as the answers it needs are in, the
        instance pools that tasks and clusters name and the node types (once, only if a stored
        node type is missing from the rate card), beside the events and errors still in flight.
        """
        with self.store.connect() as con:
            stored = [
                self.store.signatures(con, self.workspace_id, r.start_ms, r.end_ms) for r in ranges
            ]
            stored_jobs = self.store.job_signatures(con, self.workspace_id)
        reading = _Reading(ranges, stored, stored_jobs, [self._slices(rng) for rng in ranges])
        with _pool(self.options.concurrency) as pool:
            work = _WorkQueue(pool, in_flight=self.options.concurrency * 3)
            self._work, self._reading = work, reading
            if jobs is None:
                work.add_run(lambda: list(self.client.iter_jobs()), self._on_jobs)
            else:
                self._take_jobs(jobs)
            for index, parts in enumerate(reading.slices):
                for lo, hi in parts:
                    self._list_page(index, lo, hi, None)
            for run_id, job_id in active_before.items():
                if run_id not in self._done:
                    self._done.add(run_id)
                    stub = {"run_id": run_id, "job_id": job_id}
                    call = functools.partial(self._complete, "get", stub)
                    work.add_run(call, functools.partial(self._on_refresh, run_id, stub))
            phase = "listing" if len(ranges) == 1 else "listing and rescanning"
            asked_early = False
            with RunWriter(self.store, self.workspace_id) as self._writer:
                for fut, handler in work.results(until=lambda: not work.listing()):
                    handler(fut)
                    self._report(phase, reading.fraction_read())
                    self._maybe_flush()
                    if not asked_early and work.pages_read():
                        # The last runs to complete take a round trip or more and a batch to
                        # be stored: meanwhile, ask about the runs this extract has stored for
                        # good (each run is stored once per extract; the batch handed over
                        # last may still be being written).
                        asked_early = True
                        self._queue_later(self.result.changed_run_ids - self._writing)
                self._flush()
            self._take_stored(self._writer.stored)
            self._queue_clusters()
            self._queue_later()
            for fut, handler in work.results():
                handler(fut)
            self._store_events()
            self._store_task_errors()
            self._store_node_types()
        self._sweep_deletions(reading)
        self._store_jobs(reading, t0)

    # -- handlers of answers (on the writer thread) -----------------------------------------

    def _list_page(self, index: int, lo: int, hi: int, token: str | None) -> None:
        call = functools.partial(
            self.client.list_runs_page,
            start_time_from=lo,
            start_time_to=hi,
            page_token=token,
            expand_tasks=self._reading.ranges[index].expand,
        )
        self._work.add_page(call, functools.partial(self._on_page, index, lo, hi))

    def _on_page(self, index: int, lo: int, hi: int, fut: Future[Any]) -> None:
        """A page of a slice: queue the next page, and the runs that are new or changed."""
        reading = self._reading
        page: dict[str, Any] = fut.result()
        self.result.pages += 1
        token = page.get("next_page_token")
        if token:
            tokens = reading.tokens.setdefault((index, lo, hi), set())
            if token in tokens:
                raise ApiError(
                    f"runs/list on {self.client.host} returned a page token it had already"
                    " returned; stopping instead of looping forever"
                )
            tokens.add(token)
            self._list_page(index, lo, hi, token)
        runs = page.get("runs") or []
        rng, stored = reading.ranges[index], reading.stored[index]
        if stored:
            # What the deletion sweep needs: which stored runs are still listed.
            reading.seen[index].update(
                r for r in (int(run["run_id"]) for run in runs) if r in stored
            )
        # Pages come newest first: a slice is read down to the oldest start_time of its page.
        oldest = min((int(r.get("start_time") or hi) for r in runs), default=lo)
        reading.covered[(index, lo, hi)] = hi - (max(oldest, lo) if token else lo) + 1
        for run_id, job, listed in self._triage(runs, rng, stored, self.options.full_refresh):
            call = functools.partial(self._complete, job, listed)
            self._work.add_run(call, functools.partial(self._on_run, run_id, listed))

    def _on_jobs(self, fut: Future[Any]) -> None:
        self._take_jobs(fut.result())

    def _take_jobs(self, listed: list[dict[str, Any]]) -> None:
        """Jobs as listed; those whose listing changed are re-read in full with jobs/get."""
        self._reading.listed_jobs.extend(listed)
        for job in listed:
            if self._reading.stored_jobs.get(int(job["job_id"])) != job_signature(job):
                call = functools.partial(self.client.get_job, int(job["job_id"]))
                self._work.add_run(call, functools.partial(self._on_job, job))

    def _on_job(self, listed: dict[str, Any], fut: Future[Any]) -> None:
        try:
            self._reading.full_jobs.append(fut.result())
        except NotFoundError:
            pass  # deleted between the listing and now
        except PermissionDeniedError:
            self._reading.full_jobs.append(listed)

    def _queue_clusters(self) -> None:
        """clusters/get for the all-purpose clusters of the stored runs; once all are answered,
        they are stored and the instance pools are asked for."""
        with self.store.connect() as con:
            todo = self.store.clusters_to_fetch(
                con, self.workspace_id, self._clusters_used, self.now() - CLUSTER_REFRESH
            )
        self._ask_all(
            [
                (
                    functools.partial(self.client.get_cluster, cluster_id),
                    functools.partial(self._on_cluster, cluster_id),
                )
                for cluster_id in todo
            ],
            then=self._clusters_answered,
        )

    def _clusters_answered(self) -> None:
        self._store_clusters()
        self._queue_pools()

    def _ask_all(
        self, requests: list[tuple[Callable[[], Any], Handler]], *, then: Callable[[], None]
    ) -> None:
        """Queue requests ahead of the others; `then` runs once every one is answered (at once
        if there are none), so the next step of a chain starts beside the slower phases."""
        left = len(requests)

        def answered(handler: Handler, fut: Future[Any]) -> None:
            nonlocal left
            handler(fut)
            left -= 1
            if not left:
                then()

        for call, handler in requests:
            self._work.add_run(call, functools.partial(answered, handler))
        if not requests:
            then()

    def _on_cluster(self, cluster_id: str, fut: Future[Any]) -> None:
        """A cluster's spec, or why the API refused it: stored either way, so a deleted or
        forbidden cluster is asked again only a day later."""
        try:
            self._clusters[cluster_id] = fut.result()
        except NotFoundError:
            self._clusters[cluster_id] = "not found"
        except PermissionDeniedError:
            self._clusters[cluster_id] = "permission denied"
        except ApiError as exc:
            # The runs are stored already; a cluster that failed is read at the next extract.
            log.warning("could not read cluster %s: %s", cluster_id, exc)
            self.result.errors.append(str(exc))

    def _queue_later(self, runs: set[int] | None = None) -> None:
        """Requests about the stored runs (or only these `runs`), each asked once however often
        this is called: the events of ended autoscaling job clusters and the errors of failed
        task runs."""
        self._queue_events(runs)
        if self.options.errors:
            self._queue_outputs(runs)

    def _queue_outputs(self, runs: set[int] | None) -> None:
        """runs/get-output for each stored failed task run that has no error row yet."""
        if self._outputs_after is None:
            self._outputs_after = self.now() - OUTPUT_RETENTION
        with self.store.connect() as con:
            todo = self.store.failures_without_error(con, self.workspace_id, self._outputs_after)
        for failure in todo:
            run_id = int(failure["run_id"])
            if run_id in self._outputs_asked or (
                runs is not None and failure["job_run_id"] not in runs
            ):
                continue
            self._outputs_asked.add(run_id)
            call = functools.partial(self.client.get_run_output, run_id)
            self._work.add_later(call, functools.partial(self._on_output, failure))

    def _on_output(self, failure: dict[str, Any], fut: Future[Any]) -> None:
        """A task run's output, or the API's refusal, which is kept so it is never asked again
        (a deleted or expired run, a job we may not view, a run id that is not a task run)."""
        try:
            output, status = fut.result(), "ok"
        except NotFoundError:
            output, status = None, "not found"
        except PermissionDeniedError:
            output, status = None, "permission denied"
        except ApiError as exc:
            if exc.status != 400:
                # Faults the retries did not cure: asked again at the next extract.
                log.warning("could not read the output of task run %s: %s", failure["run_id"], exc)
                self.result.errors.append(str(exc))
                return
            output, status = None, "invalid"
        row = {**failure, "output": output, "status": status}
        if self.signer is not None:
            error = str((output or {}).get("error") or "").strip() or None
            if error == failure.get("state_message"):
                error = None  # signed from the state message, as re-signing will (stored once)
            trace = (output or {}).get("error_trace") or None
            row |= self.signer(
                error,
                trace,
                failure.get("state_message"),
                failure.get("termination_code"),
                failure.get("result_state"),
            )
        self._task_errors.append(row)
        if len(self._task_errors) >= LATER_BATCH:
            self._store_task_errors()

    def _queue_events(self, runs: set[int] | None) -> None:
        with self.store.connect() as con:
            todo = self.store.autoscale_instances_to_read(con, self.workspace_id)
        margin = ms_delta(EVENTS_MARGIN)
        for cluster_id, job_run_id, start, end in todo:
            if cluster_id in self._events_asked or (runs is not None and job_run_id not in runs):
                continue
            self._events_asked.add(cluster_id)
            call = functools.partial(
                self.client.cluster_events, cluster_id, ms(start) - margin, ms(end) + margin
            )
            self._work.add_later(call, functools.partial(self._on_events, cluster_id, job_run_id))

    def _on_events(self, cluster_id: str, job_run_id: int, fut: Future[Any]) -> None:
        """An ended autoscaling cluster's events; a refusal is kept too: asked once, ever."""
        try:
            self._events[cluster_id] = (job_run_id, fut.result())
        except NotFoundError:
            self._events[cluster_id] = (job_run_id, "not found")
        except PermissionDeniedError:
            self._events[cluster_id] = (job_run_id, "permission denied")
        except ApiError as exc:
            log.warning("could not read the events of cluster %s: %s", cluster_id, exc)
            self.result.errors.append(str(exc))
        if len(self._events) >= LATER_BATCH:
            self._store_events()

    def _queue_pools(self) -> None:
        for answer in self._clusters.values():
            if isinstance(answer, dict):
                self._pools_used.update(
                    p
                    for p in (answer.get("instance_pool_id"), answer.get("driver_instance_pool_id"))
                    if p
                )
        with self.store.connect() as con:
            todo = self.store.pools_to_fetch(
                con, self.workspace_id, self._pools_used, self.now() - POOL_REFRESH
            )
        self._ask_all(
            [
                (
                    functools.partial(self.client.get_instance_pool, pool_id),
                    functools.partial(self._on_pool, pool_id),
                )
                for pool_id in todo
            ],
            then=self._pools_answered,
        )

    def _pools_answered(self) -> None:
        self._store_pools()
        self._queue_node_types()

    def _on_pool(self, pool_id: str, fut: Future[Any]) -> None:
        try:
            self._pools[pool_id] = fut.result()
        except NotFoundError:
            self._pools[pool_id] = "not found"
        except PermissionDeniedError:
            self._pools[pool_id] = "permission denied"
        except ApiError as exc:
            log.warning("could not read instance pool %s: %s", pool_id, exc)
            self.result.errors.append(str(exc))

    def _queue_node_types(self) -> None:
        with self.store.connect() as con:
            unknown = self.store.unknown_node_types(con, self.workspace_id)
        if unknown:
            log.info("%d node types not in the rate card: reading the node types", len(unknown))
            self._work.add_run(self.client.list_node_types, self._on_node_types)

    def _on_node_types(self, fut: Future[Any]) -> None:
        try:
            self._node_types = list(fut.result().get("node_types") or [])
        except ApiError as exc:
            # Without node facts those runs keep 'node type not in rate card'; asked next time.
            log.warning("could not list the node types: %s", exc)
            self.result.errors.append(str(exc))

    def _on_refresh(self, run_id: int, stub: dict[str, Any], fut: Future[Any]) -> None:
        self.result.runs_refreshed += 1
        self._on_run(run_id, stub, fut)

    def _on_run(self, run_id: int, listed: dict[str, Any], fut: Future[Any]) -> None:
        try:
            self._buffer.append(fut.result())
        except NotFoundError:
            # Listed (or stored as active) a moment ago, gone now: deleted meanwhile.
            self._vanished.append(run_id)
        except PermissionDeniedError as exc:
            from_list = listed.get("tasks") is not None
            log.warning(
                "no permission to read run %s of job %s: kept %s (%s)",
                run_id,
                listed.get("job_id"),
                "what the list gave" if from_list else "the stored copy",
                exc,
            )
            self.result.skipped_runs.append(run_id)
            if from_list:
                self._buffer.append(RunBundle(strip_paging(listed)))

    # -- the tail --------------------------------------------------------------------------

    def _sweep_deletions(self, reading: _Reading) -> None:
        """Runs gone since listed, and runs stored in a fully read range but no longer listed."""
        with self.store.transaction() as con:
            self.result.runs_deleted += self.store.mark_deleted(
                con, self.workspace_id, self._vanished, self.now()
            )
            self.result.changed_run_ids.update(self._vanished)
            for index, rng in enumerate(reading.ranges):
                stored = reading.stored[index]
                gone = {r for r, sig in stored.items() if not sig.deleted} - reading.seen[index]
                if gone:
                    log.info(
                        "%d runs no longer listed in %s window: marked deleted",
                        len(gone),
                        rng.label,
                    )
                self.result.runs_deleted += self.store.mark_deleted(
                    con, self.workspace_id, gone, self.now()
                )
                self.result.changed_run_ids.update(gone)

    def _store_clusters(self) -> None:
        if not self._clusters:
            return
        with self.store.transaction() as con:
            # Runs costed from a cluster's row are recomputed when that row changes.
            self.result.changed_run_ids |= self.store.upsert_clusters(
                con,
                self.workspace_id,
                flatten_clusters(self._clusters, self.workspace_id, self.now()),
            )
        self.result.clusters_fetched = len(self._clusters)

    def _store_task_errors(self) -> None:
        if not self._task_errors:
            return
        rows = flatten_task_errors(self._task_errors, self.workspace_id, self.now())
        with self.store.transaction() as con:
            self.store.insert_task_errors(con, self.workspace_id, rows)
        self.result.errors_fetched += len(self._task_errors)
        self._task_errors = []

    def _store_events(self) -> None:
        if not self._events:
            return
        rows: dict[str, list[Any]] = {"cluster_id": [], "since": [], "workers": []}
        reads: dict[str, list[Any]] = {
            "cluster_id": [],
            "job_run_id": [],
            "events": [],
            "error": [],
        }
        for cluster_id, (job_run_id, answer) in sorted(self._events.items()):
            intervals = [] if isinstance(answer, str) else worker_intervals(answer)
            for at, workers in intervals:
                rows["cluster_id"].append(cluster_id)
                rows["since"].append(at)
                rows["workers"].append(workers)
            reads["cluster_id"].append(cluster_id)
            reads["job_run_id"].append(job_run_id)
            reads["events"].append(None if isinstance(answer, str) else len(answer))
            reads["error"].append(answer if isinstance(answer, str) else None)
        workers = _table("cluster_workers", self.workspace_id, rows, self.now())
        done = _table("cluster_event_reads", self.workspace_id, reads, self.now())
        with self.store.transaction() as con:
            ids = list(self._events)
            self.store.replace_rows(
                con, "cluster_workers", self.workspace_id, "cluster_id", workers, keys=ids
            )
            self.store.replace_rows(
                con, "cluster_event_reads", self.workspace_id, "cluster_id", done
            )
        self.result.changed_run_ids.update(job for job, _ in self._events.values())
        self.result.cluster_events_read += len(self._events)
        self._events = {}

    def _store_pools(self) -> None:
        if not self._pools:
            return
        pools = flatten_instance_pools(self._pools, self.workspace_id, self.now())
        with self.store.transaction() as con:
            self.store.replace_rows(
                con, "instance_pools", self.workspace_id, "instance_pool_id", pools
            )
            self.result.changed_run_ids |= self.store.runs_using(
                con, self.workspace_id, pools=self._pools
            )
        self.result.pools_fetched = len(self._pools)

    def _store_node_types(self) -> None:
        """The listed node facts, with a DBU rate inferred for each type the card lacks."""
        if self._node_types is None:
            return
        card = load_node_facts()
        inferred: dict[str, tuple[str | None, float | None, str | None]] = {}
        for node in self._node_types:
            node_type_id = str(node.get("node_type_id") or "")
            if not node_type_id or node_type_id in card:
                continue
            cloud = _cloud_of(node_type_id)
            memory_mb = node.get("memory_mb")
            found = infer_dbu_rate(
                cloud,
                node_type_id,
                node.get("num_cores"),
                float(memory_mb) / 1024 if memory_mb else None,
                {k: v for k, v in card.items() if _cloud_of(k) == cloud},
            )
            inferred[node_type_id] = (cloud, *found) if found else (cloud, None, None)
        table = flatten_node_types(self._node_types, self.workspace_id, self.now(), inferred)
        with self.store.transaction() as con:
            self.store.replace_rows(con, "node_types", self.workspace_id, "node_type_id", table)
            self.result.changed_run_ids |= self.store.runs_using(
                con, self.workspace_id, node_types=inferred
            )
        self.result.node_types_listed = table.num_rows

    def _store_jobs(self, reading: _Reading, t0: int) -> None:
        hashes = {int(j["job_id"]): job_signature(j) for j in reading.listed_jobs}
        with self.store.transaction() as con:
            self.store.upsert_jobs(
                con,
                self.workspace_id,
                flatten_jobs(reading.full_jobs, self.workspace_id, dt(t0), hashes),
                list(hashes),
                dt(t0),
            )
        self.result.jobs_seen = len(reading.listed_jobs)

    def _triage(
        self,
        runs: list[dict[str, Any]],
        rng: Range,
        stored: dict[int, RunSignature],
        force: bool,
    ) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """Decide for each listed run: skip (unchanged), store as listed, or fetch in full."""
        for run in runs:
            run_id = int(run["run_id"])
            if run_id in self._done:
                continue
            self.result.runs_seen += 1
            old = stored.get(run_id)
            sig = listed_signature(run)
            if old is None:
                self.result.runs_new += 1
            elif force or old.deleted or old.is_active or _changed(old, sig):
                self.result.runs_changed += 1
            else:
                continue
            self._done.add(run_id)
            if not rng.expand or needs_full_fetch(run):
                yield run_id, "get", run
            elif any(is_for_each(t) for t in run.get("tasks") or []):
                yield run_id, "iterations", run
            else:
                self._buffer.append(RunBundle(strip_paging(run)))

    def _complete(self, job: str, listed: dict[str, Any]) -> RunBundle:
        """Runs in a worker thread: fetch what the listing lacked. No store access here."""
        run = (
            strip_paging(self.client.get_run(int(listed["run_id"])))
            if job == "get"
            else strip_paging(listed)
        )
        return complete_run(self.client, run)

    # -- writing -------------------------------------------------------------------------

    def _maybe_flush(self) -> None:
        if len(self._buffer) >= self.options.flush_runs or (
            self._buffer and time.monotonic() - self._last_flush >= self.options.flush_seconds
        ):
            self._flush()

    def _flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        batch = prepare_runs(self._buffer, self.now())
        self._buffer = []
        self._writer.store(batch)
        self._writing = frozenset(batch.run_ids)
        self.result.changed_run_ids.update(self._writing)

    def _take_stored(self, stored: StoredRuns) -> None:
        """What the writer saw in the runs it stored: unknown values, clusters and pools."""
        for item in sorted(stored.unknown - self._unknown_logged):
            log.warning("unknown %s %r: kept as it came (raw JSON, plain strings)", *item)
        self._unknown_logged |= stored.unknown
        self._clusters_used |= stored.clusters
        self._pools_used |= stored.pools

    def _write_log(self, result: ExtractResult) -> None:
        # After Ctrl-C, stopping promptly beats waiting for a reader to let go of the file.
        wait_s = 1.0 if result.status == "interrupted" else LOCK_WAIT_S
        try:
            with self.store.transaction(wait_s=wait_s) as con:
                self.store.log_extract(con, result.log_row())
        except Exception:  # the log must never hide the real outcome
            log.exception("could not write the extract log")

    def _report(self, phase: str, fraction: float | None) -> None:
        if self.progress is not None:
            self.progress.update(
                phase=phase,
                pages=self.result.pages,
                runs=self.result.runs_seen,
                requests=int(self.client.stats().get("requests", 0)),
                fraction=fraction,
            )

    def _workspace_from_runs(self) -> str:
        page = self.client.list_runs_page(
            start_time_from=None, start_time_to=None, expand_tasks=False
        )
        for run in page.get("runs") or []:
            found = workspace_id_of(run)
            if found:
                return found
        return self.client.workspace_id or self.client.host


@dataclass
class _Reading:
    """What one extract's reading loop knows so far."""

    ranges: list[Range]
    stored: list[dict[int, RunSignature]]
    stored_jobs: dict[int, str]
    slices: list[list[tuple[int, int]]]
    # Per range, the stored runs its pages listed (the others are not needed: nothing to sweep).
    seen: dict[int, set[int]] = field(default_factory=dict)
    covered: dict[tuple[int, int, int], int] = field(default_factory=dict)
    tokens: dict[tuple[int, int, int], set[str]] = field(default_factory=dict)
    listed_jobs: list[dict[str, Any]] = field(default_factory=list)
    full_jobs: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.seen = {i: set() for i in range(len(self.ranges))}
        self.total_span = sum(hi - lo + 1 for parts in self.slices for lo, hi in parts)

    def fraction_read(self) -> float | None:
        """Share of the listed time span read so far, for the progress bar's ETA."""
        return sum(self.covered.values()) / self.total_span if self.total_span else None


Handler = Callable[[Future[Any]], None]


class _WorkQueue:
    """Requests waiting for room in the pool, each with the handler of its answer.

    Work waits here until the pool has room, so fetched pages and runs never pile up faster
    than they are stored (bounded memory). Completing runs goes first: it frees what a page
    brought; a new page brings more. Requests about runs already stored (`add_later`: cluster
    events, task errors) go last: nothing waits for their answers before the listing ends, and
    they keep the pool full while the listing's last answers come in and are stored.
    """

    def __init__(self, pool: ThreadPoolExecutor, *, in_flight: int) -> None:
        self._pool = pool
        self._in_flight = in_flight
        # By priority: runs (and jobs), pages, later.
        self._queues: tuple[deque[tuple[Callable[[], Any], Handler]], ...] = (
            deque(),
            deque(),
            deque(),
        )
        self._pending: dict[Future[Any], tuple[Handler, int]] = {}

    def add_run(self, call: Callable[[], Any], handler: Handler) -> None:
        self._queues[_RUN].append((call, handler))

    def add_page(self, call: Callable[[], Any], handler: Handler) -> None:
        self._queues[_PAGE].append((call, handler))

    def add_later(self, call: Callable[[], Any], handler: Handler) -> None:
        self._queues[_LATER].append((call, handler))

    def listing(self) -> bool:
        """Whether a run or a page is queued or in flight."""
        return bool(self._queues[_RUN] or self._queues[_PAGE]) or any(
            kind != _LATER for _, kind in self._pending.values()
        )

    def pages_read(self) -> bool:
        """Whether every page is read while runs are still queued or in flight."""
        kinds = {kind for _, kind in self._pending.values()}
        runs_left = bool(self._queues[_RUN]) or _RUN in kinds
        return runs_left and not self._queues[_PAGE] and _PAGE not in kinds

    def _feed(self) -> None:
        while len(self._pending) < self._in_flight:
            kind = next((k for k, queue in enumerate(self._queues) if queue), None)
            if kind is None:
                return
            call, handler = self._queues[kind].popleft()
            self._pending[self._pool.submit(call)] = (handler, kind)

    def results(
        self, *, until: Callable[[], bool] | None = None
    ) -> Iterator[tuple[Future[Any], Handler]]:
        """Answers as they complete, until nothing is queued or in flight, or until `until()`
        holds after an answer was handled (what is left stays queued and in flight)."""
        self._feed()
        while self._pending:
            done = wait(list(self._pending), return_when=FIRST_COMPLETED)[0]
            for fut in done:
                yield fut, self._pending.pop(fut)[0]
                if until is not None and until():
                    self._feed()
                    return
            self._feed()


_RUN, _PAGE, _LATER = range(3)


@contextlib.contextmanager
def _pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool that, on error or Ctrl-C, cancels queued work instead of waiting for it."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jobruns")
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _cloud_of(node_type_id: str) -> str:
    """The cloud a node type name belongs to: Azure's start with Standard_, AWS's have a dot
    (m5d.xlarge), GCP's are dashed (n2-highmem-8)."""
    if node_type_id.startswith("Standard_"):
        return "AZURE"
    return "AWS" if "." in node_type_id else "GCP"


def _table(name: str, workspace_id: str, columns: dict[str, list[Any]], now: datetime) -> pa.Table:
    """A store table from columns; workspace_id and fetched_at filled in where it has them."""
    schema = arrow_schema(name)
    count = len(next(iter(columns.values())))
    fill = {"workspace_id": [workspace_id] * count, "fetched_at": [ms(now)] * count}
    data = {**fill, **columns}
    return pa.table(
        [pa.array(data.get(f.name, [None] * count), type=f.type) for f in schema], schema=schema
    )


def _changed(old: RunSignature, new: RunSignature) -> bool:
    return (
        old.end_time != new.end_time
        or old.life_cycle_state != new.life_cycle_state
        or old.result_state != new.result_state
        or old.status_state != new.status_state
        or (new.run_duration_ms is not None and old.run_duration_ms != new.run_duration_ms)
    )


def extract(
    client: JobsApi,
    store: Store,
    options: ExtractOptions | None = None,
    *,
    now: Callable[[], datetime] | None = None,
    progress: ProgressSink | None = None,
    signer: Signer | None = None,
) -> ExtractResult:
    """Run one extraction; see Extraction for the rules. `signer` signs captured errors (without
    one, they are stored unsigned and the pipeline's re-signing fills them in)."""
    return Extraction(client, store, options, now=now, progress=progress, signer=signer).run()
