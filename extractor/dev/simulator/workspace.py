"""A simulated Databricks workspace: jobs, 60 days of runs, a clock, and the Jobs 2.2 API.

`Workspace.generate` builds a deterministic workspace per seed; `advance` moves its clock (new
runs, progress, late repairs, deletions, retention); the `api_*` methods answer like the real
endpoints (reads here, repair/cancel/export in `_actions`). Never reads the wall clock except for the default `now_ms`, never uses global random.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import heapq
import json
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any

from . import _actions, _catalog, _cost
from ._billing import PRICE_COLUMNS, USAGE_COLUMNS, Billing, write_csv
from ._failures import RECENT_MS, FailureBook
from ._model import DAY_MS, HOUR_MS, RETENTION_MS, ApiError, JobDef, RunRec, TaskRun
from ._planner import Planner, is_failure
from ._render import Renderer, run_view, task_view, visible_segments, visible_tasks
from ._truth import job_aggregates, truth_tables

PAGE = 100  # array elements per runs/get page
RUNS_OFFSET_CAP = 10_000
JOBS_OFFSET_CAP = 1_000
# runs/get-output on a multi-task job run (databricks/databricks-sdk-py#997, PrefectHQ/prefect#13127).
MULTI_TASK_OUTPUT = (
    "Retrieving the output of runs with multiple tasks is not supported. Please retrieve the "
    "output of each individual task run instead."
)


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def _encode(obj: Mapping[str, Any]) -> str:
    raw = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        obj = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise invalid("Invalid page token.") from exc
    if not isinstance(obj, dict):
        raise invalid("Invalid page token.")
    return obj


def _bool(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name)
    if value is None or value == "":
        return False
    if value.lower() not in ("true", "false"):
        raise invalid(f"Invalid value for parameter {name}: {value!r} is not a boolean.")
    return value.lower() == "true"


def _int(params: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise invalid(f"Invalid value for parameter {name}: {value!r} is not an integer.") from exc


def _host(cloud: str, workspace_id: int, ids: random.Random) -> str:
    """A host name of the cloud's shape (dbc-<id>.cloud.databricks.com on AWS,
    adb-<workspace id>.<n>.azuredatabricks.net, <workspace id>.<n>.gcp.databricks.com)."""
    if cloud == "azure":
        return f"https://adb-{workspace_id}.{ids.randint(1, 19)}.azuredatabricks.net"
    if cloud == "gcp":
        return f"https://{workspace_id}.{ids.randint(0, 9)}.gcp.databricks.com"
    return f"https://dbc-{ids.getrandbits(32):08x}-{ids.getrandbits(16):04x}.cloud.databricks.com"


def _pool_attributes(cloud: str) -> dict[str, Any]:
    """An instance pool's availability (InstancePoolAwsAttributes, ...AzureAttributes,
    ...GcpAttributes: GCP's field is gcp_availability)."""
    if cloud == "azure":
        return {"azure_attributes": {"availability": "ON_DEMAND_AZURE"}}
    if cloud == "gcp":
        return {"gcp_attributes": {"gcp_availability": "ON_DEMAND_GCP"}}
    return {"aws_attributes": {"availability": "ON_DEMAND", "zone_id": "auto"}}


class Workspace:
    """The whole simulated workspace. Not thread-safe: the server holds a lock around it."""

    def __init__(
        self, seed: int, now_ms: int, workspace_id: int, host: str, cloud: str = "aws"
    ) -> None:
        if cloud not in _catalog.CLOUD:
            raise ValueError(f"cloud must be one of {', '.join(_catalog.CLOUDS)}")
        self.seed = seed
        self.cloud = cloud
        self.catalog = _catalog.CLOUD[cloud]
        self.now_ms = now_ms
        self.workspace_id = workspace_id
        self.host = host.rstrip("/")
        self.rng = random.Random(seed)
        self.jobs: dict[int, JobDef] = {}
        self.runs: dict[int, RunRec] = {}
        self._keys: list[tuple[int, int]] = []  # (start_time, run_id), ascending
        self._task_index: dict[
            int, tuple[int, TaskRun]
        ] = {}  # task/iteration run id -> (run, task)
        # Job-cluster id -> the run that created it (clusters/events looks clusters up by id).
        self._cluster_runs: dict[str, int] = {}
        self._events: list[tuple[int, int, str, int]] = []  # (time, seq, kind, job or run id)
        self._seq = 0
        self._next_id = self.rng.randrange(100_000_000_000_000, 800_000_000_000_000)
        self.renderer = Renderer(self.host, workspace_id)
        self.planner = Planner(self.rng, self._new_id)
        self.deleted: set[int] = set()
        self.failures = FailureBook(seed, now_ms - RECENT_MS)
        # The most clusters/events returns per page whatever the limit (tests page with less).
        self.events_page_limit = 500

    # ------------------------------------------------------------------------ generation
    @classmethod
    def generate(
        cls,
        seed: int,
        jobs: int = 20,
        runs: int = 2000,
        days: int = 60,
        now_ms: int | None = None,
        workspace_id: int | None = None,
        host: str | None = None,
        cloud: str | None = None,
    ) -> Workspace:
        """A workspace with `jobs` jobs and exactly `runs` runs started in the last `days` days.

        Deterministic for equal arguments (pass now_ms; it defaults to the current time).
        workspace_id and host default to values derived from the seed; the cloud (aws, azure
        or gcp) to the host's, else aws. Every cloud has the same runs at the same times for a
        seed; node types, pools, attributes and host are those of the cloud.
        """
        if jobs < 1 or runs < 0 or not 1 <= days <= 60:
            raise ValueError("need jobs >= 1, runs >= 0 and 1 <= days <= 60")
        ids = random.Random(seed * 7919 + 17)
        wid = workspace_id if workspace_id is not None else ids.randrange(10**15, 10**16)
        cloud = cloud or (_catalog.cloud_of_host(host) if host else "aws")
        if host is None:
            host = _host(cloud, wid, ids)
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        ws = cls(seed, now, wid, host, cloud)
        ws._build(jobs, runs, days)
        return ws

    def _new_id(self) -> int:
        self._next_id += self.rng.randint(1, 90)
        return self._next_id

    def _push(self, at: int, kind: str, ref: int) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, self._seq, kind, ref))

    def _build(self, n_jobs: int, n_runs: int, days: int) -> None:
        rng = self.rng
        now = self.now_ms
        window = days * DAY_MS - HOUR_MS
        start_of_window = now - window
        rotation = _catalog.ROTATION
        jobs: list[JobDef] = []
        used: set[int] = set()
        for i in range(n_jobs):
            template, weight = rotation[i % len(rotation)]
            suffix = "" if i < len(rotation) else f"_{i // len(rotation) + 1}"
            job_id = rng.randrange(10**14, 2 * 10**15)
            while job_id in used:
                job_id = rng.randrange(10**14, 2 * 10**15)
            used.add(job_id)
            job = template(rng, job_id, suffix)
            _catalog.localize(job, self.catalog, self.seed)
            job.quota = int(weight * 1000)  # relative weight for now
            jobs.append(job)
            self.jobs[job.job_id] = job
        # Quotas: the fan-out job gets "a few" runs, the rest share by weight.
        fanout = [j for j in jobs if j.quota == 0]
        for j in fanout:
            j.quota = min(n_runs, max(2, n_runs // 600))
        left = n_runs - sum(j.quota for j in fanout)
        weighted = [j for j in jobs if j not in fanout]
        total_w = sum(j.quota for j in weighted) or 1
        shares = [left * j.quota / total_w for j in weighted]
        for j, share in zip(weighted, shares, strict=True):
            j.quota = int(share)
        rest = left - sum(j.quota for j in weighted)
        for j in sorted(weighted, key=lambda j: -j.quota)[: max(0, rest)]:
            j.quota += 1
        deficit = 0
        for job in jobs:
            deficit += self._seed_triggers(job, start_of_window, now, window)
        irregular = [j for j in jobs if j.trigger in ("ONE_TIME", "FILE_ARRIVAL")]
        if deficit and irregular:
            extra = irregular[0]
            for t in sorted(rng.randint(start_of_window, now) for _ in range(deficit)):
                self._push(t, "gen", extra.job_id)
        for job in jobs:
            job.created_time = job.last_trigger - rng.randint(DAY_MS, 30 * DAY_MS)
        self._process_until(now)
        excess = len(self._keys) - n_runs
        for _start, run_id in list(self._keys[: max(0, excess)]):
            self._remove(run_id)
        for job in jobs:
            self._push_next(job, now)
        self.deleted.clear()

    def _seed_triggers(self, job: JobDef, lo: int, now: int, window: int) -> int:
        """Queue the generation triggers of one job; returns how many of its quota did not fit."""
        rng = self.rng
        q = job.quota
        if q <= 0:
            job.last_trigger = lo
            return 0
        if job.trigger == "CONTINUOUS":
            job.tasks[0].base_secs = max(600, int(window / q * 0.8 / 1000))
            self._push(lo + rng.randint(0, 60_000), "chain", job.job_id)
            job.last_trigger = lo
            return 0
        if job.trigger == "PERIODIC":
            period = _catalog.nice_period_ms(window // q)
            job.period_ms = period
            job.cron = _catalog.cron_for(period, rng)
            if job.tasks[0].base_secs == 0:
                job.tasks[0].base_secs = int(period * 0.8 / 1000)
            fit = min(q, window // period)
            last = now // period * period
            times = [last - k * period for k in range(fit)]
            for t in times:
                self._push(t + rng.randint(5, 600), "gen", job.job_id)
            job.last_trigger = min(times) if times else lo
            return q - fit
        times = sorted(rng.randint(lo, now) for _ in range(q))
        if job.tasks[0].base_secs >= 3600 and q >= 2:
            times[-2:] = [now - 2 * HOUR_MS, now - 35 * 60_000]  # one running, one queued behind it
            self._push(times[-2], "long", job.job_id)
            times = times[:-2] + times[-1:]
        for t in times:
            self._push(t, "gen", job.job_id)
        job.last_trigger = min(times) if times else lo
        return 0

    def _push_next(self, job: JobDef, after: int) -> None:
        """Schedule the job's next trigger after `after` (continuous jobs chain on run end)."""
        rng = self.rng
        if job.trigger == "CONTINUOUS":
            return
        if job.trigger == "PERIODIC" and job.period_ms:
            nxt = (after // job.period_ms + 1) * job.period_ms + rng.randint(5, 600)
        else:
            rate_ms = max(HOUR_MS, (60 * DAY_MS) // max(1, job.quota))
            nxt = after + int(rng.expovariate(1.0) * rate_ms) + 1
        self._push(nxt, "next", job.job_id)

    # ------------------------------------------------------------------------ the clock
    def advance(self, seconds: float) -> None:
        """Move the clock: new runs, progress, repairs of old failures, deletions, retention."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        old = self.now_ms
        new = old + int(seconds * 1000)
        self._random_repairs(old, new)
        self._process_until(new)
        self.now_ms = new
        self._random_deletes(seconds)
        cutoff = new - RETENTION_MS
        while self._keys and self._keys[0][0] < cutoff:
            self._remove(self._keys[0][1])

    def _random_repairs(self, old: int, new: int) -> None:
        """Some failed runs from the last three weeks get repaired during (old, new]."""
        rng = self.rng
        p = min(1.0, (new - old) / (6 * DAY_MS))
        if p <= 0:
            return
        lo = bisect.bisect_left(self._keys, (old - 21 * DAY_MS, 0))
        for _, run_id in self._keys[lo:]:
            run = self.runs[run_id]
            seg = run.segments[-1]
            if (
                seg.end > old
                or run.legacy
                or run.skipped
                or seg.outcome.result in ("SUCCESS", None)
            ):
                continue
            if rng.random() < p:
                self._push(rng.randint(old + 1, new), "repair", run_id)

    def _random_deletes(self, seconds: float) -> None:
        rng = self.rng
        expected = seconds / DAY_MS * 1000 * 0.5  # about one deletion every two days
        n = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
        for _ in range(n):
            if not self._keys:
                return
            _, run_id = self._keys[rng.randrange(len(self._keys))]
            if not run_view(self.runs[run_id], self.now_ms).active:
                self._remove(run_id)

    def _process_until(self, until: int) -> None:
        rng = self.rng
        while self._events and self._events[0][0] <= until:
            at, _, kind, ref = heapq.heappop(self._events)
            if kind == "repair":
                run = self.runs.get(ref)
                if run is not None and self.planner.repair(run, at):
                    self._index(run)
                continue
            if kind == "retry":
                orig = self.runs.get(ref)
                if orig is None:
                    continue
                run = self.planner.plan_run(
                    orig.job,
                    at,
                    "RETRY",
                    attempt=orig.attempt + 1,
                    original=orig.original_attempt_run_id,
                )
                self._add(run)
                continue
            job = self.jobs[ref]
            trigger = job.trigger
            if trigger == "CONTINUOUS":
                run = self.planner.plan_run(job, at, trigger)
                self._add(run)
                self._push(run.planned_end + rng.randint(2000, 10_000), "chain", job.job_id)
                continue
            if kind == "long":
                base = job.tasks[0].base_secs
                run = self.planner.plan_run(
                    job, at, trigger, fail_scale=0.0, run_ms=base * 1000 * 2
                )
            else:
                run = self.planner.plan_run(job, at, trigger)
            if job.trigger == "ONE_TIME" and job.run_type == "JOB_RUN":
                run.params = {"partner": rng.choice(["contoso", "northwind", "fabrikam"])}
            self._add(run)
            if kind == "next":
                self._push_next(job, at)

    def _add(self, run: RunRec) -> None:
        job = run.job
        self.runs[run.run_id] = run
        bisect.insort(self._keys, (run.start, run.run_id))
        if not run.skipped:
            job.busy_until = max(job.busy_until, run.planned_end)
        self._index(run)
        seg = run.segments[0]
        if run.legacy and is_failure(seg.outcome) and run.attempt < job.job_retries:
            self._push(seg.end + job.job_retry_interval_ms, "retry", run.run_id)
        elif (
            not run.legacy
            and not run.skipped
            and seg.outcome.result in ("FAILED", "TIMEDOUT", "CANCELED")
        ) and self.rng.random() < 0.3:
            delay = int(min(14 * DAY_MS, 10 * 60_000 * self.rng.lognormvariate(3.0, 1.5)))
            self._push(seg.end + delay, "repair", run.run_id)

    def _index(self, run: RunRec) -> None:
        self.failures.assign(run)
        for t in run.tasks:
            if t.run_id != run.run_id:
                self._task_index[t.run_id] = (run.run_id, t)
            for it in t.iterations or ():
                self._task_index[it.run_id] = (run.run_id, it)
            for cluster_id in [t.cluster_id, *(i.cluster_id for i in t.iterations or ())]:
                if cluster_id is not None and cluster_id not in _catalog.ALL_PURPOSE_CLUSTERS:
                    self._cluster_runs.setdefault(cluster_id, run.run_id)

    def _remove(self, run_id: int) -> None:
        run = self.runs.pop(run_id, None)
        if run is None:
            return
        i = bisect.bisect_left(self._keys, (run.start, run_id))
        if i < len(self._keys) and self._keys[i] == (run.start, run_id):
            del self._keys[i]
        for t in run.tasks:
            self._task_index.pop(t.run_id, None)
            for it in t.iterations or ():
                self._task_index.pop(it.run_id, None)
        self.deleted.add(run_id)

    # ------------------------------------------------------------------------ admin
    def repair_run(self, run_id: int, at_ms: int | None = None) -> int:
        """Repair a finished, failed multitask run now (or at at_ms <= now); returns the repair id."""
        run = self.runs[run_id]
        at = self.now_ms if at_ms is None else at_ms
        if at > self.now_ms or not self.planner.repair(run, at):
            raise ValueError(f"run {run_id} cannot be repaired (active, legacy or nothing failed)")
        self._index(run)
        return run.segments[-1].repair_id

    def task_run(self, run_id: int) -> TaskRun | None:
        """A task run (or a legacy run's single task) that the API shows at this clock."""
        hit = self._task_index.get(run_id)
        if hit is not None and hit[0] in self.runs and hit[1].appear <= self.now_ms:
            return hit[1]
        run = self.runs.get(run_id)
        if run is not None and run.legacy and run.tasks:
            return run.tasks[0]
        return None

    def forget_task_run(self, run_id: int) -> None:
        """A planned task run that will never happen now (its run was cancelled first)."""
        self._task_index.pop(run_id, None)

    def delete_run(self, run_id: int) -> None:
        """Delete a run as runs/delete would."""
        if run_id not in self.runs:
            raise KeyError(run_id)
        self._remove(run_id)

    def run_ids(self, start_ms: int | None = None, end_ms: int | None = None) -> list[int]:
        """Run ids with start_time in [start_ms, end_ms], newest first."""
        lo = bisect.bisect_left(self._keys, (start_ms if start_ms is not None else -1, -1))
        hi = bisect.bisect_right(self._keys, (end_ms if end_ms is not None else 2**62, 2**62))
        return [rid for _, rid in reversed(self._keys[lo:hi])]

    # ------------------------------------------------------------------------ ground truth
    def ground_truth(
        self,
        start_ms: int | None = None,
        end_ms: int | None = None,
        *,
        with_history: bool = True,
        exclude_jobs: frozenset[int] | set[int] = frozenset(),
    ) -> dict[str, dict[Any, dict[str, Any]]]:
        """The rows a complete store holds for runs started in [start_ms, end_ms], at this clock.

        {table: {key: row}}; keys: runs/tasks/task_iterations by run_id, repair_history by
        (job_run_id, repair_id), jobs by job_id. Columns are named as in extractor/schema.py.
        """
        runs = [self.runs[r] for r in self.run_ids(start_ms, end_ms)]
        runs = [r for r in runs if r.job.job_id not in exclude_jobs]
        jobs = [j for j in self.jobs.values() if j.listed]
        return truth_tables(
            runs, jobs, self.now_ms, str(self.workspace_id), self.renderer, with_history
        )

    # ------------------------------------------------------------------------ billing
    def billing(self) -> Billing:
        """The workspace's billing at this clock (hidden true DBU rates; see _billing)."""
        return Billing(
            self.runs.values(),
            seed=self.seed,
            workspace_id=self.workspace_id,
            host=self.host,
            now_ms=self.now_ms,
            cloud=self.cloud,
        )

    def billing_rows(
        self, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[dict[str, str]]:
        """system.billing.usage rows with usage_start_time in [start_ms, end_ms), as CSV text."""
        return self.billing().usage_rows(start_ms, end_ms)

    def list_price_rows(self) -> list[dict[str, str]]:
        """system.billing.list_prices rows for every SKU the workspace bills."""
        return self.billing().list_price_rows()

    def true_run_cost(self) -> dict[int, dict[str, float]]:
        """Per job run: DBUs and list-price cost its billing shows, summed over all dates."""
        return self.billing().true_run_cost()

    def write_billing_csv(
        self, path: str, start_ms: int | None = None, end_ms: int | None = None
    ) -> None:
        """billing_rows as a Databricks SQL download of system.billing.usage."""
        write_csv(self.billing_rows(start_ms, end_ms), path, USAGE_COLUMNS)

    def write_list_prices_csv(self, path: str) -> None:
        write_csv(self.list_price_rows(), path, PRICE_COLUMNS)

    def failure_families(
        self, start_ms: int | None = None, end_ms: int | None = None
    ) -> dict[int, str]:
        """The true family of every finished, failed task run and iteration of the runs started
        in [start_ms, end_ms] (task run id -> family), as runs/get-output would show them now."""
        out: dict[int, str] = {}
        families = self.failures.by_run
        for run_id in self.run_ids(start_ms, end_ms):
            run = self.runs[run_id]
            for task in visible_tasks(run, self.now_ms):
                for t in [task, *(task.iterations or ())]:
                    visible = t.run_id in families and t.appear <= self.now_ms
                    if visible and not task_view(t, self.now_ms, False).active:
                        out[t.run_id] = families[t.run_id].family
        return out

    def job_aggregates(
        self, start_ms: int | None = None, end_ms: int | None = None
    ) -> dict[int, dict[str, int]]:
        """Per job: runs, terminal_runs, succeeded, failed, canceled, skipped, repairs."""
        runs = [self.runs[r] for r in self.run_ids(start_ms, end_ms)]
        return job_aggregates(runs, self.now_ms)

    def run_json(self, run_id: int) -> dict[str, Any]:
        """The run as runs/get?include_history=true returns it, merged over all pages."""
        return self._get_run_page(self.runs[run_id], 0, True, all_pages=True)[0]

    # ------------------------------------------------------------------------ the API
    def api_list_runs(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /api/2.2/jobs/runs/list."""
        limit = _int(params, "limit", 20)
        assert limit is not None
        if limit < 0:
            raise invalid(f"Invalid limit {limit} - it has to be at least 0.")
        if limit > 25:
            raise invalid(f"Invalid limit {limit} - it has to be no more than 25.")
        limit = limit or 25
        token = params.get("page_token") or ""
        if token:
            t = _decode(token)
            try:
                filt = dict(t["f"])
                direction, cursor = str(t["d"]), (int(t["c"][0]), int(t["c"][1]))
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise invalid("Invalid page token.") from exc
            offset = 0
        else:
            active, completed = _bool(params, "active_only"), _bool(params, "completed_only")
            if active and completed:
                raise invalid("active_only and completed_only cannot both be true.")
            run_type = params.get("run_type") or None
            if run_type is not None and run_type not in ("JOB_RUN", "WORKFLOW_RUN", "SUBMIT_RUN"):
                raise invalid(f"Invalid run_type: {run_type}")
            filt = {
                "job_id": _int(params, "job_id"),
                "active": active,
                "completed": completed,
                "run_type": run_type,
                "from": _int(params, "start_time_from"),
                "to": _int(params, "start_time_to"),
                "expand": _bool(params, "expand_tasks"),
            }
            if (
                filt["job_id"] is not None
                and filt["job_id"] not in self.jobs
                and not any(r.job.job_id == filt["job_id"] for r in self.runs.values())
            ):
                raise invalid(f"Job {filt['job_id']} does not exist.")
            direction, cursor = "n", (2**62, 2**62)
            offset = _int(params, "offset", 0) or 0
            if offset < 0:
                raise invalid(f"Invalid offset {offset}.")
            if offset > RUNS_OFFSET_CAP:
                raise invalid(
                    f"The supplied offset {offset} has exceeded the value of {RUNS_OFFSET_CAP} "
                    "allowed for this parameter.Please use the page_token parameter to paginate: "
                    "https://docs.databricks.com/api/workspace/jobs/listruns."
                )
        lo_t = filt["from"] if filt["from"] is not None else -1
        hi_t = filt["to"] if filt["to"] is not None else 2**62
        keys = self._keys
        lo = bisect.bisect_left(keys, (lo_t, -1))
        hi = bisect.bisect_right(keys, (hi_t, 2**62))
        picked: list[RunRec] = []
        want = offset + limit + 1
        if direction == "n":
            i = min(hi, bisect.bisect_left(keys, cursor)) - 1
            while i >= lo and len(picked) < want:
                run = self.runs[keys[i][1]]
                if self._matches(run, filt):
                    picked.append(run)
                i -= 1
            picked = picked[offset:]
            more = len(picked) > limit
            page = picked[:limit]
            has_prev = token != "" or offset > 0
        else:
            i = max(lo, bisect.bisect_right(keys, cursor))
            while i < hi and len(picked) < limit + 1:
                run = self.runs[keys[i][1]]
                if self._matches(run, filt):
                    picked.append(run)
                i += 1
            has_prev = len(picked) > limit
            page = list(reversed(picked[:limit]))
            more = True
        out: dict[str, Any] = {}
        if page:
            out["runs"] = [self._list_entry(r, bool(filt["expand"])) for r in page]
            last, first = page[-1], page[0]
            if more:
                out["next_page_token"] = _encode(
                    {"d": "n", "c": [last.start, last.run_id], "f": filt}
                )
            if has_prev:
                out["prev_page_token"] = _encode(
                    {"d": "p", "c": [first.start, first.run_id], "f": filt}
                )
        return out

    def _matches(self, run: RunRec, filt: Mapping[str, Any]) -> bool:
        if filt["job_id"] is not None and run.job.job_id != filt["job_id"]:
            return False
        if filt["run_type"] is not None and run.job.run_type != filt["run_type"]:
            return False
        if filt["active"] or filt["completed"]:
            active = run_view(run, self.now_ms).active
            if active != bool(filt["active"]):
                return False
        return True

    def _list_entry(self, run: RunRec, expand: bool) -> dict[str, Any]:
        now = self.now_ms
        out, v = self.renderer.run_scalars(run, now)
        if not expand:
            return out
        tasks = visible_tasks(run, now)
        clusters = run.job_clusters or []
        url = out.pop("run_page_url")
        if clusters:
            out["job_clusters"] = clusters[:PAGE]
        params = self.renderer.job_parameters(run)
        if params:
            out["job_parameters"] = params[:PAGE]
        if tasks:
            out["tasks"] = [self.renderer.task(run, t, now, v.queued) for t in tasks[:PAGE]]
        out["run_page_url"] = url
        if len(tasks) > PAGE or len(clusters) > PAGE:
            out["has_more"] = True
        return out

    def api_get_run(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /api/2.2/jobs/runs/get (a job run id or a task run id)."""
        run_id = _int(params, "run_id")
        if run_id is None:
            raise invalid("Missing required field: run_id")
        history = _bool(params, "include_history")
        _bool(params, "include_resolved_values")
        page = 0
        token = params.get("page_token") or ""
        if token:
            t = _decode(token)
            if t.get("r") != run_id or not isinstance(t.get("p"), int):
                raise invalid("Invalid page token.")
            page = int(t["p"])
        run = self.runs.get(run_id)
        if run is None:
            hit = self._task_index.get(run_id)
            if hit is None or hit[0] not in self.runs:
                raise invalid(f"Run {run_id} does not exist.")
            parent = self.runs[hit[0]]
            if hit[1].appear > self.now_ms:
                raise invalid(f"Run {run_id} does not exist.")
            body, more = self._get_task_page(parent, hit[1], page)
        else:
            body, more = self._get_run_page(run, page, history)
        if more:
            body["next_page_token"] = _encode({"r": run_id, "p": page + 1})
        return body

    def api_get_output(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /api/2.2/jobs/runs/get-output: one task run's metadata, error and trace."""
        run_id = _int(params, "run_id")
        if run_id is None:
            raise invalid("Missing required field: run_id")
        run = self.runs.get(run_id)
        if run is not None and not run.legacy:
            raise invalid(MULTI_TASK_OUTPUT)
        if run is not None:
            task = run.tasks[-1]
            metadata = self._get_run_page(run, 0, False, all_pages=True)[0]
        else:
            hit = self._task_index.get(run_id)
            if hit is None or hit[0] not in self.runs or hit[1].appear > self.now_ms:
                raise invalid(f"Run {run_id} does not exist.")
            run, task = self.runs[hit[0]], hit[1]
            metadata = self._get_task_page(run, task, 0)[0]
            metadata.pop("iterations", None)
            metadata.pop("next_page_token", None)
        out: dict[str, Any] = {"metadata": metadata}
        v = task_view(task, self.now_ms, False)
        if v.active:
            return out
        failure = self.failures.by_run.get(task.run_id) if is_failure(task.outcome) else None
        if task.tdef.type_key == "notebook_task":
            result = {} if failure is not None else {"result": "", "truncated": False}
            out["notebook_output"] = result
        if failure is not None and failure.error:
            out["error"] = failure.error
            if failure.error_trace:
                out["error_trace"] = failure.error_trace
        return out

    def owner_job(self, run_id: int) -> int | None:
        """The job id of a run or task run, for permission checks."""
        run = self.runs.get(run_id)
        if run is not None:
            return run.job.job_id
        hit = self._task_index.get(run_id)
        return self.runs[hit[0]].job.job_id if hit and hit[0] in self.runs else None

    def _get_run_page(
        self, run: RunRec, page: int, history: bool, *, all_pages: bool = False
    ) -> tuple[dict[str, Any], bool]:
        now = self.now_ms
        out, v = self.renderer.run_scalars(run, now)
        url = out.pop("run_page_url")
        tasks = visible_tasks(run, now)
        arrays: dict[str, list[Any]] = {
            "job_clusters": list(run.job_clusters or []),
            "job_parameters": self.renderer.job_parameters(run),
            "tasks": tasks,
        }
        if history:
            arrays["repair_history"] = list(range(visible_segments(run, now)))
        lo, hi = (0, 2**62) if all_pages else (page * PAGE, page * PAGE + PAGE)
        more = False
        for name, arr in arrays.items():
            part = arr[lo:hi]
            more = more or len(arr) > hi
            if not part:
                continue
            if name == "tasks":
                part = [self.renderer.task(run, t, now, v.queued) for t in part]
            elif name == "repair_history":
                out["run_page_url"] = url
                part = [self.renderer.history_item(run, i, now) for i in part]
            out[name] = part
        out.setdefault("run_page_url", url)
        return out, more

    def _get_task_page(self, run: RunRec, task: TaskRun, page: int) -> tuple[dict[str, Any], bool]:
        now = self.now_ms
        r = self.renderer
        _, rv = r.run_scalars(run, now)
        tj = r.task(run, task, now, rv.queued)
        out: dict[str, Any] = {
            "job_id": run.job.job_id,
            "run_id": task.run_id,
            "job_run_id": run.run_id,
            "number_in_job": task.run_id,
            "creator_user_name": run.job.creator,
            "original_attempt_run_id": task.run_id,
            "attempt_number": 0,
            "run_name": task.tdef.task_key,
            "run_type": run.job.run_type,
            "trigger": run.trigger,
        }
        for k in (
            "start_time",
            "end_time",
            "setup_duration",
            "execution_duration",
            "cleanup_duration",
        ):
            out[k] = tj[k]
        if "queue_duration" in tj:
            out["queue_duration"] = tj["queue_duration"]
        out["state"], out["status"] = tj["state"], tj["status"]
        out["tasks"] = [tj]
        more = False
        if task.iterations is not None:
            its = [i for i in task.iterations if i.appear <= now]
            part = its[page * PAGE : page * PAGE + PAGE]
            if part:
                out["iterations"] = [r.task(run, i, now, False) for i in part]
            more = len(its) > page * PAGE + PAGE
        out["run_page_url"] = tj["run_page_url"]
        return out, more

    def api_list_jobs(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /api/2.2/jobs/list."""
        limit = _int(params, "limit", 20)
        assert limit is not None
        if limit < 1 or limit > 100:
            raise invalid(f"Invalid limit {limit} - it has to be between 1 and 100.")
        expand = _bool(params, "expand_tasks")
        name = params.get("name")
        token = params.get("page_token") or ""
        offset = _int(params, "offset", 0) or 0
        if offset > JOBS_OFFSET_CAP:
            raise invalid(
                f"The supplied offset {offset} has exceeded the value of {JOBS_OFFSET_CAP} allowed "
                "for this parameter.Please use the page_token parameter to paginate"
            )
        ordered = sorted(
            (j for j in self.jobs.values() if j.listed), key=lambda j: (-j.created_time, -j.job_id)
        )
        if token:
            t = _decode(token)
            try:
                cursor = (int(t["c"][0]), int(t["c"][1]))
                name = t.get("n")
                expand = bool(t.get("x"))
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise invalid("Invalid page token.") from exc
            ordered = [j for j in ordered if (-j.created_time, -j.job_id) > cursor]
        if name:
            ordered = [j for j in ordered if j.name.lower() == name.lower()]
        ordered = ordered[offset:]
        page = ordered[:limit]
        out: dict[str, Any] = {}
        if page:
            rendered = []
            for j in page:
                body, more = self.renderer.job(j, expand=expand, full=False)
                if more:
                    body["has_more"] = True
                rendered.append(body)
            out["jobs"] = rendered
            if len(ordered) > limit:
                last = page[-1]
                out["next_page_token"] = _encode(
                    {"c": [-last.created_time, -last.job_id], "n": name, "x": expand}
                )
        return out

    def api_repair_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/2.2/jobs/runs/repair."""
        return _actions.repair(self, body)

    def api_cancel_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/2.2/jobs/runs/cancel."""
        return _actions.cancel(self, body)

    def api_cancel_all_runs(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/2.2/jobs/runs/cancel-all."""
        return _actions.cancel_all(self, body)

    def api_export_run(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /api/2.2/jobs/runs/export."""
        return _actions.export(self, params)

    def api_get_cluster(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /api/2.1/clusters/get: the workspace's all-purpose clusters."""
        cluster_id = params.get("cluster_id") or ""
        if not cluster_id:
            raise invalid("Missing required field: cluster_id")
        if cluster_id not in _catalog.ALL_PURPOSE_CLUSTERS:
            raise invalid(f"Cluster {cluster_id} does not exist")
        return _catalog.all_purpose_cluster(self.seed, cluster_id, self.now_ms, self.cloud)

    def api_list_node_types(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /api/2.1/clusters/list-node-types: every node type (NodeType shape); no DBUs."""
        return {
            "node_types": [
                {
                    "node_type_id": node,
                    "instance_type_id": node,
                    "num_cores": float(cores),
                    "memory_mb": memory_mb,
                    "category": category,
                    "description": node,
                    "is_deprecated": False,
                    "photon_worker_capable": True,
                    "photon_driver_capable": True,
                    "support_cluster_tags": True,
                    "support_port_forwarding": True,
                    # Only AWS says whether a type is Graviton and takes EBS volumes.
                    **(
                        {"is_graviton": node.startswith("m8g"), "support_ebs_volumes": True}
                        if self.cloud == "aws"
                        else {}
                    ),
                }
                for node, (cores, memory_mb, category, _) in sorted(self.catalog.node_facts.items())
            ]
        }

    def api_get_instance_pool(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /api/2.0/instance-pools/get (GetInstancePool shape)."""
        pool_id = params.get("instance_pool_id") or ""
        if not pool_id:
            raise invalid("Missing required field: instance_pool_id")
        if pool_id not in self.catalog.pools:
            raise ApiError(
                404, "RESOURCE_DOES_NOT_EXIST", f"Can't find an instance pool with id: {pool_id}."
            )
        name, node = self.catalog.pools[pool_id]
        return {
            "instance_pool_id": pool_id,
            "instance_pool_name": name,
            "node_type_id": node,
            "min_idle_instances": 0,
            "idle_instance_autotermination_minutes": 10,
            "enable_elastic_disk": True,
            "preloaded_spark_versions": [_catalog.SPARK_VERSIONS[0]],
            **_pool_attributes(self.cloud),
            "state": "ACTIVE",
            "stats": {"used_count": 0, "idle_count": 0, "pending_used_count": 0},
        }

    def _autoscale_instance(self, cluster_id: str) -> dict[str, Any] | None:
        """The autoscaling job-cluster instance behind a cluster id, as the truth sees it."""
        if cluster_id in _catalog.ALL_PURPOSE_CLUSTERS:
            candidates: Iterable[RunRec] = self.runs.values()  # shared: the first run on it
        else:
            run = self.runs.get(self._cluster_runs.get(cluster_id, 0))
            candidates = () if run is None else (run,)
        for run in candidates:
            ids = {t.cluster_id for t in run.tasks}
            ids |= {i.cluster_id for t in run.tasks for i in t.iterations or ()}
            if cluster_id not in ids:
                continue
            tables = truth_tables(
                [run], [], self.now_ms, str(self.workspace_id), self.renderer, True
            )
            inst = _cost.instance_spans(tables).get((run.run_id, cluster_id))
            if inst is None or inst["spec"].get("autoscale_min_workers") is None:
                return None
            return inst
        return None

    def api_cluster_events(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /api/2.1/clusters/events (GetEvents): a cluster's events in [start_time,
        end_time] of the given types, `limit` (<= 500) per page; `next_page` is the request
        body of the next page (databricks-sdk ClustersAPI.events follows it)."""
        cluster_id = str(body.get("cluster_id") or "")
        if not cluster_id:
            raise invalid("Missing required field: cluster_id")
        limit = int(body.get("limit") or 50)
        if not 0 < limit <= 500:
            raise invalid("limit must be between 1 and 500")
        inst = self._autoscale_instance(cluster_id)
        if inst is None and cluster_id not in _catalog.ALL_PURPOSE_CLUSTERS:
            raise invalid(f"Cluster {cluster_id} does not exist")
        found: list[dict[str, Any]] = []
        if inst is not None and inst["start"] is not None and inst["end"] is not None:
            spec = inst["spec"]
            found = _cost.events(
                self.seed,
                cluster_id,
                inst["start"],
                inst["end"],
                spec["autoscale_min_workers"],
                spec["autoscale_max_workers"],
            )
        types = set(body.get("event_types") or ())
        lo, hi = body.get("start_time"), body.get("end_time")
        found = [
            e
            for e in found
            if (not types or e["type"] in types)
            and (lo is None or e["timestamp"] >= int(lo))
            and (hi is None or e["timestamp"] <= int(hi))
        ]
        if body.get("order") == "DESC":
            found.reverse()
        offset = int(body.get("offset") or 0)
        page_size = min(limit, self.events_page_limit)
        out: dict[str, Any] = {
            "events": found[offset : offset + page_size],
            "total_count": len(found),
        }
        if offset + page_size < len(found):
            out["next_page"] = {**body, "offset": offset + page_size}
        return out

    def true_costs(
        self, start_ms: int | None = None, end_ms: int | None = None
    ) -> dict[int, dict[str, Any]]:
        """Per terminal run started in [start_ms, end_ms]: job_id, the true list-price cost of
        its classic compute (hidden trajectories, true DBU rates) and whether it had any."""
        return _cost.true_costs(
            self.seed, self.ground_truth(start_ms, end_ms), self.now_ms, self.cloud
        )

    def api_get_job(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /api/2.2/jobs/get."""
        job_id = _int(params, "job_id")
        if job_id is None:
            raise invalid("Missing required field: job_id")
        job = self.jobs.get(job_id)
        if job is None or not job.listed:
            raise invalid(f"Job {job_id} does not exist.")
        page = 0
        token = params.get("page_token") or ""
        if token:
            t = _decode(token)
            if t.get("j") != job_id or not isinstance(t.get("p"), int):
                raise invalid("Invalid page token.")
            page = int(t["p"])
        body, more = self.renderer.job(job, expand=True, full=True, page=page)
        if more:
            body["next_page_token"] = _encode({"j": job_id, "p": page + 1})
        return body
