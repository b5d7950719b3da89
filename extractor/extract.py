"""One extraction, told top to bottom: list, complete, refresh, sweep, rescan, store, log.

It orchestrates the client (HTTP) and the store (DuckDB) and owns the rules that keep the
store equal to the API: which windows to read, which runs to re-fetch, when the watermark moves.
It never writes from more than one thread and never moves the watermark past unstored data.
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

from extractor.errors import NotFoundError, PermissionDeniedError
from extractor.flatten import (
    RunBundle,
    flatten_jobs,
    flatten_runs,
    is_active,
    job_signature,
    task_type,
)
from extractor.store import LOCK_WAIT_S, RunSignature, Store

log = logging.getLogger("jobruns.extract")

RETENTION = timedelta(days=60)
# Runs this close to the retention edge may expire while we read them; a rescan does not
# take their absence as a deletion.
RETENTION_MARGIN = timedelta(hours=1)
# Keys the API adds for paging; they describe a response, not the run.
PAGING_KEYS = ("has_more", "next_page_token", "prev_page_token")


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

    def stats(self) -> dict[str, Any]: ...


class ProgressSink(Protocol):
    def update(
        self, *, phase: str, pages: int, runs: int, requests: int, fraction: float | None
    ) -> None: ...


@dataclass
class ExtractOptions:
    since: datetime | None = None
    until: datetime | None = None
    rescan: bool = False
    full_refresh: bool = False
    repair_window: timedelta = timedelta(days=7)
    repair_every: timedelta = timedelta(hours=1)
    rescan_every: timedelta = timedelta(hours=24)
    overlap: timedelta = timedelta(hours=1)
    concurrency: int = 8
    slice_span: timedelta = timedelta(hours=6)
    flush_seconds: float = 1.0
    flush_runs: int = 500


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
    skipped_runs: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    message: str = ""
    # Runs this extract wrote or marked deleted: what derived tables must recompute.
    changed_run_ids: set[int] = field(default_factory=set)

    def log_row(self) -> dict[str, Any]:
        finished = self.finished_at or datetime.now(UTC)
        return {
            "extract_id": self.extract_id,
            "workspace_id": self.workspace_id,
            "host": self.host,
            "started_at": self.started_at,
            "finished_at": finished,
            "status": self.status,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "rescan": self.rescan,
            "repair_sweep": self.repair_sweep,
            "pages": self.pages,
            "requests": self.requests,
            "runs_seen": self.runs_seen,
            "runs_new": self.runs_new,
            "runs_changed": self.runs_changed,
            "runs_refreshed": self.runs_refreshed,
            "runs_deleted": self.runs_deleted,
            "jobs_seen": self.jobs_seen,
            "skipped_runs": self.skipped_runs,
            "errors": self.errors,
            "duration_ms": int((finished - self.started_at).total_seconds() * 1000),
            "message": self.message,
        }


@dataclass
class _Range:
    """A start_time range [start_ms, end_ms], read to its end page by page."""

    start_ms: int
    end_ms: int
    expand: bool
    label: str


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _dt(value_ms: int) -> datetime:
    return datetime.fromtimestamp(value_ms / 1000, tz=UTC)


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


def _never_iterated(task: dict[str, Any]) -> bool:
    """A finished for-each task whose stats count no iteration needs no runs/get."""
    stats = ((task.get("for_each_task") or {}).get("stats") or {}).get("task_run_stats") or {}
    finished = (task.get("state") or {}).get("life_cycle_state") in ("TERMINATED", "SKIPPED")
    return finished and stats.get("total_iterations") == 0


def strip_paging(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k not in PAGING_KEYS}


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
    ) -> None:
        self.client = client
        self.store = store
        self.options = options or ExtractOptions()
        self.now = now or (lambda: datetime.now(UTC))
        self.progress = progress
        self._buffer: list[RunBundle] = []
        self._last_flush = time.monotonic()
        self._unknown_logged: set[tuple[str, str]] = set()
        self._done: set[int] = set()
        self._vanished: list[int] = []

    # -- the story ---------------------------------------------------------------------

    def run(self) -> ExtractResult:
        started = self.now()
        t0 = _ms(started)
        self.store.initialize()
        # The workspace id keys every row. A store that has seen this host knows it; otherwise
        # the first response tells (header, else a run_page_url, else the host itself).
        known = self.store.workspace_of_host(self.client.host)
        self.result = result = ExtractResult(
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
            result.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            result.errors.append(str(exc) or type(exc).__name__)
            raise
        finally:
            result.finished_at = self.now()
            result.requests = int(self.client.stats().get("requests", 0))
            self._write_log(result)
        return result

    def _extract(self, jobs: list[dict[str, Any]] | None, t0: int) -> None:
        opts, result, ws = self.options, self.result, self.workspace_id
        state = self.store.state(ws)
        watermark = state["watermark"]
        retention_start = t0 - _ms_delta(RETENTION)
        if opts.since is not None:
            start = _ms(opts.since)
        elif watermark is not None and not opts.full_refresh:
            start = _ms(watermark) - _ms_delta(opts.overlap)
        else:
            start = retention_start
        end = _ms(opts.until) if opts.until is not None else t0
        result.window_start, result.window_end = _dt(start), _dt(end)

        # New runs are listed with their tasks; older ranges re-read for repairs and deletions
        # are listed without (cheaper), and only runs that changed are fetched in full.
        ranges = [_Range(start, end, expand=True, label="new runs")]
        first_time = watermark is None or opts.full_refresh
        rescan_due = (
            opts.rescan or first_time or _older_than(state["last_rescan_at"], t0, opts.rescan_every)
        )
        sweep_due = rescan_due or _older_than(state["last_repair_sweep_at"], t0, opts.repair_every)
        cheap_from = start
        if rescan_due:
            cheap_from = retention_start + _ms_delta(RETENTION_MARGIN)
        elif sweep_due:
            cheap_from = max(t0 - _ms_delta(opts.repair_window), retention_start)
        if sweep_due and cheap_from < start:
            ranges.append(_Range(cheap_from, start - 1, expand=False, label="repairs"))
        result.rescan, result.repair_sweep = rescan_due, sweep_due

        self._fetch_all(ranges, jobs, self.store.active_runs(ws), t0, force=opts.full_refresh)

        new_watermark = watermark
        if (
            opts.until is None
            and (watermark is None or start <= _ms(watermark) or opts.full_refresh)
        ) or (opts.until is not None and watermark is not None and start <= _ms(watermark) < end):
            new_watermark = _dt(end)
        stamps: dict[str, Any] = {"last_extract_at": _dt(t0), "last_success_at": _dt(t0)}
        if new_watermark is not None:
            stamps["watermark"] = new_watermark
        if rescan_due:
            stamps["last_rescan_at"] = _dt(t0)
        if sweep_due:
            stamps["last_repair_sweep_at"] = _dt(t0)
        with self.store.transaction() as con:
            self.store.save_state(con, ws, self.client.host, **stamps)

    # -- fetching ------------------------------------------------------------------------

    def _slices(self, rng: _Range) -> list[tuple[int, int]]:
        """Split a range into disjoint start_time slices that are listed concurrently."""
        span = max(1, rng.end_ms - rng.start_ms + 1)
        count = max(
            1,
            min(
                self.options.concurrency * 4,
                math.ceil(span / _ms_delta(self.options.slice_span)),
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

    def _fetch_all(
        self,
        ranges: list[_Range],
        jobs: list[dict[str, Any]] | None,
        active_before: dict[int, int | None],
        t0: int,
        *,
        force: bool,
    ) -> None:
        """Everything the extract reads, in one pool: jobs, every page of every range, the
        runs that need completing and the formerly active runs. Writes stay on this thread."""
        seen: dict[int, set[int]] = {i: set() for i in range(len(ranges))}
        with self.store.connect() as con:
            stored = [
                self.store.signatures(con, self.workspace_id, r.start_ms, r.end_ms) for r in ranges
            ]
            stored_jobs = self.store.job_signatures(con, self.workspace_id)
        listed_jobs: list[dict[str, Any]] = []
        full_jobs: list[dict[str, Any]] = []
        with _pool(self.options.concurrency) as pool:
            pending: dict[Future[Any], tuple[str, Any]] = {}
            # Work waits here until the pool has room, so fetched pages and runs never pile up
            # faster than they are stored (bounded memory). Completing runs goes first: it
            # frees what a page brought; a new page brings more.
            runs_queue: deque[tuple[str, Any, Callable[[], Any]]] = deque()
            pages_queue: deque[tuple[str, Any, Callable[[], Any]]] = deque()
            in_flight = self.options.concurrency * 3

            def feed() -> None:
                while len(pending) < in_flight and (runs_queue or pages_queue):
                    kind, info, call = (runs_queue or pages_queue).popleft()
                    pending[pool.submit(call)] = (kind, info)

            # Share of the listed time span read so far, for the progress bar's ETA: pages come
            # newest first, so a slice is read down to the oldest start_time of its last page.
            covered: dict[tuple[int, int, int], int] = {}
            slices = [self._slices(rng) for rng in ranges]
            total_span = sum(hi - lo + 1 for parts in slices for lo, hi in parts)

            def list_page(index: int, lo: int, hi: int, token: str | None) -> None:
                call = functools.partial(
                    self.client.list_runs_page,
                    start_time_from=lo,
                    start_time_to=hi,
                    page_token=token,
                    expand_tasks=ranges[index].expand,
                )
                pages_queue.append(("page", (index, lo, hi), call))

            def take_jobs(listed: list[dict[str, Any]]) -> None:
                listed_jobs.extend(listed)
                for job in listed:
                    if stored_jobs.get(int(job["job_id"])) != job_signature(job):
                        call = functools.partial(self.client.get_job, int(job["job_id"]))
                        runs_queue.append(("job", job, call))

            if jobs is None:
                runs_queue.append(("jobs", None, lambda: list(self.client.iter_jobs())))
            else:
                take_jobs(jobs)
            for index, parts in enumerate(slices):
                for lo, hi in parts:
                    list_page(index, lo, hi, None)
            for run_id, job_id in active_before.items():
                if run_id not in self._done:
                    self._done.add(run_id)
                    stub = {"run_id": run_id, "job_id": job_id}
                    call = functools.partial(self._complete, "get", stub)
                    runs_queue.append(("refresh", (run_id, stub), call))
            feed()
            while pending:
                done: set[Future[Any]] = wait(list(pending), return_when=FIRST_COMPLETED)[0]
                for fut in done:
                    kind, info = pending.pop(fut)
                    if kind == "page":
                        index, lo, hi = info
                        page: dict[str, Any] = fut.result()
                        self.result.pages += 1
                        token = page.get("next_page_token")
                        if token:
                            list_page(index, lo, hi, token)
                        runs = page.get("runs") or []
                        seen[index].update(int(run["run_id"]) for run in runs)
                        oldest = min((int(r.get("start_time") or hi) for r in runs), default=lo)
                        covered[(index, lo, hi)] = hi - (max(oldest, lo) if token else lo) + 1
                        for run_id, job, listed in self._triage(
                            runs, ranges[index], stored[index], force
                        ):
                            call = functools.partial(self._complete, job, listed)
                            runs_queue.append(("run", (run_id, listed), call))
                    elif kind == "jobs":
                        listed_page: list[dict[str, Any]] = fut.result()
                        take_jobs(listed_page)
                    elif kind == "job":
                        try:
                            full_job: dict[str, Any] = fut.result()
                            full_jobs.append(full_job)
                        except NotFoundError:
                            pass  # deleted between the listing and now
                        except PermissionDeniedError:
                            full_jobs.append(info)
                    else:
                        run_id, listed = info
                        if kind == "refresh":
                            self.result.runs_refreshed += 1
                        self._collect(fut, run_id, listed)
                    self._report(
                        "listing" if len(ranges) == 1 else "listing and rescanning",
                        sum(covered.values()) / total_span if total_span else None,
                    )
                self._maybe_flush()
                feed()
        self._flush()
        with self.store.transaction() as con:
            # Whatever the store holds inside a fully read range and the API did not list is gone.
            self.result.runs_deleted += self.store.mark_deleted(
                con, self.workspace_id, self._vanished, self.now()
            )
            self.result.changed_run_ids.update(self._vanished)
            for index, rng in enumerate(ranges):
                gone = {r for r, sig in stored[index].items() if not sig.deleted} - seen[index]
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
            hashes = {int(j["job_id"]): job_signature(j) for j in listed_jobs}
            self.store.upsert_jobs(
                con,
                self.workspace_id,
                flatten_jobs(full_jobs, self.workspace_id, _dt(t0), hashes),
                list(hashes),
                _dt(t0),
            )
        self.result.jobs_seen = len(listed_jobs)

    def _triage(
        self,
        runs: list[dict[str, Any]],
        rng: _Range,
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
            elif any(task_type(t) == "for_each_task" for t in run.get("tasks") or []):
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
        iterations: dict[int, list[dict[str, Any]]] = {}
        for task in run.get("tasks") or []:
            if task_type(task) != "for_each_task":
                continue
            if _never_iterated(task):
                iterations[int(task["run_id"])] = []
                continue
            parent = self.client.get_run(int(task["run_id"]), include_history=False)
            iterations[int(task["run_id"])] = parent.get("iterations") or []
        return RunBundle(run, iterations)

    def _collect(self, fut: Future[Any], run_id: int, listed: dict[str, Any]) -> None:
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
        flat = flatten_runs(self._buffer, self.workspace_id, self.now())
        for item in sorted(flat.unknown - self._unknown_logged):
            log.warning("unknown %s %r: kept as it came (raw JSON, plain strings)", *item)
        self._unknown_logged |= flat.unknown
        with self.store.transaction() as con:
            self.store.upsert_runs(con, self.workspace_id, flat)
        self.result.changed_run_ids.update(flat.runs.column("run_id").to_pylist())
        self._buffer = []

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


def _ms_delta(value: timedelta) -> int:
    return int(value.total_seconds() * 1000)


def _older_than(stamp: datetime | None, now_ms: int, age: timedelta) -> bool:
    return stamp is None or now_ms - _ms(stamp) >= _ms_delta(age)


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
) -> ExtractResult:
    """Run one extraction; see Extraction for the rules."""
    return Extraction(client, store, options, now=now, progress=progress).run()
