"""Plans runs and repairs: every task attempt, cluster, duration and outcome, in absolute time.

A plan is complete when made (the simulator knows the future); views derive what the API shows at
a clock. Uses only the random.Random it is given, never the global generator or the wall clock.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Iterable

from ._model import (
    FAILED_RESULTS,
    JobDef,
    Outcome,
    RunRec,
    Segment,
    TaskDef,
    TaskRun,
)

SUCCESS = Outcome("TERMINATED", "SUCCESS", "SUCCESS", "SUCCESS", "")
# (code, type, life cycle, weight, message)
FAILURES: list[tuple[str, str, str, float, str]] = [
    ("RUN_EXECUTION_ERROR", "CLIENT_ERROR", "TERMINATED", 70, ""),
    (
        "LIBRARY_INSTALLATION_ERROR",
        "CLIENT_ERROR",
        "TERMINATED",
        4,
        "Library installation failed for library due to user error for whl: feature_lib-1.4.0.",
    ),
    (
        "STORAGE_ACCESS_ERROR",
        "CLIENT_ERROR",
        "TERMINATED",
        4,
        "Failed to access s3://acme-landing/events/: 403 Forbidden.",
    ),
    (
        "UNAUTHORIZED_ERROR",
        "CLIENT_ERROR",
        "TERMINATED",
        3,
        "User does not have SELECT on table prod.sales.orders.",
    ),
    (
        "REPOSITORY_CHECKOUT_FAILED",
        "CLIENT_ERROR",
        "TERMINATED",
        2,
        "Failed to checkout Git repository: remote branch main not found.",
    ),
    (
        "CLUSTER_ERROR",
        "INTERNAL_ERROR",
        "INTERNAL_ERROR",
        6,
        "Unexpected failure while waiting for the cluster to be ready.",
    ),
    (
        "DRIVER_ERROR",
        "INTERNAL_ERROR",
        "INTERNAL_ERROR",
        4,
        "The Spark driver failed to start within 900 seconds.",
    ),
    (
        "CLOUD_FAILURE",
        "CLOUD_FAILURE",
        "INTERNAL_ERROR",
        5,
        "AWS Insufficient Instance Capacity Failure: no capacity for the requested instance type.",
    ),
    ("INTERNAL_ERROR", "INTERNAL_ERROR", "INTERNAL_ERROR", 2, "An internal error occurred."),
]
FAILURE_WEIGHTS = [f[3] for f in FAILURES]
EXEC_ERRORS = [
    "[DELTA_MERGE_INCOMPATIBLE_DATATYPE] Failed to merge fields 'discount_pct' and 'discount_pct'.",
    "AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or view `staging.orders` cannot be found.",
    "Py4JJavaError: An error occurred while calling o412.save: java.lang.OutOfMemoryError.",
    "KeyError: 'customer_id'",
    "HTTPError: 503 Service Unavailable from rates provider",
]
CLUSTER_CODES = frozenset({"CLUSTER_ERROR", "DRIVER_ERROR", "CLOUD_FAILURE"})
MAX_PARALLEL_TASKS = 16


def is_failure(o: Outcome) -> bool:
    return o.result in FAILED_RESULTS or o.life_cycle == "INTERNAL_ERROR"


def skipped(result: str, message: str) -> Outcome:
    code = "DISABLED" if result == "DISABLED" else "SKIPPED"
    return Outcome("TERMINATED", result, code, "SUCCESS", message)


class Planner:
    """Turns job definitions into planned runs, drawing from one random generator."""

    def __init__(self, rng: random.Random, new_id: Callable[[], int]) -> None:
        self.rng = rng
        self.new_id = new_id

    # ------------------------------------------------------------------ small draws
    def cluster(self, at_ms: int) -> tuple[str, str]:
        """A fresh cluster id in Databricks' MMDD-HHMMSS-xxxxxxxx style, and a context id."""
        t = time.gmtime(at_ms // 1000)
        chars = "abcdefghijklmnopqrstuvwxyz0123456789"
        tail = "".join(self.rng.choice(chars) for _ in range(8))
        cid = f"{t.tm_mon:02d}{t.tm_mday:02d}-{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d}-{tail}"
        return cid, str(self.rng.randrange(10**18, 9 * 10**18))

    def secs(self, base: int) -> int:
        return max(1, int(base * self.rng.lognormvariate(0.0, 0.3)))

    def failure(self, tdef: TaskDef, p: float) -> Outcome | None:
        if self.rng.random() >= p:
            return None
        code, ttype, life, _, message = self.rng.choices(FAILURES, FAILURE_WEIGHTS)[0]
        if code in CLUSTER_CODES and tdef.compute in ("serverless", "existing_cluster"):
            code, ttype, life, message = "RUN_EXECUTION_ERROR", "CLIENT_ERROR", "TERMINATED", ""
        if code == "RUN_EXECUTION_ERROR":
            message = self.rng.choice(EXEC_ERRORS)
        return Outcome(life, "FAILED", code, ttype, message)

    # ------------------------------------------------------------------ runs
    def plan_run(
        self,
        job: JobDef,
        start: int,
        trigger: str,
        *,
        attempt: int = 0,
        original: int | None = None,
        fail_scale: float | None = None,
        run_ms: int | None = None,
    ) -> RunRec:
        """Plan one run of `job` triggered at `start`, queued or skipped if the job is busy."""
        run_id = self.new_id()
        rng = self.rng
        queue_ms = 0
        busy = job.max_concurrent_runs == 1 and start < job.busy_until
        if job.via_run_job_task and trigger == "PERIODIC":
            trigger = "RUN_JOB_TASK"
        run = RunRec(run_id, job, trigger, start, 0, attempt, original or run_id, [], [])
        if trigger == "RUN_JOB_TASK":
            run.trigger_run_id = self.new_id()  # the calling task run of an unlisted orchestrator
        if job.job_clusters:
            run.job_clusters = job.job_clusters
        if busy and not job.queue:
            run.skipped = True
            end = start + rng.randint(5, 40)
            msg = (
                "Skipping this run because the limit of 1 maximum concurrent runs has been reached."
            )
            result = "MAXIMUM_CONCURRENT_RUNS_REACHED" if rng.random() < 0.5 else None
            outcome = Outcome(
                "SKIPPED", result, "MAX_CONCURRENT_RUNS_EXCEEDED", "CLIENT_ERROR", msg
            )
            run.segments.append(Segment(0, start, end, outcome, []))
            return run
        if busy:
            queue_ms = job.busy_until - start + rng.randint(200, 2000)
        run.queue_ms = queue_ms
        scale = job.fail_scale if fail_scale is None else fail_scale
        t0 = start + queue_ms + rng.randint(100, 1500)
        if job.shape == "legacy":
            task = self._legacy_task(run, job.tasks[0], t0, scale)
            run.tasks.append(task)
            run.cluster_id, run.spark_context_id = task.cluster_id, task.spark_context_id
            outcome, end = task.outcome, task.end
            seg = Segment(0, start, end, outcome, [task.run_id])
        else:
            tasks = self.plan_tasks(run, job.tasks, t0, 0, {}, scale, start, run_ms)
            run.tasks.extend(tasks)
            end = max(t.end for t in tasks) + rng.randint(800, 4000)
            outcome = run_outcome(job, tasks)
            seg = Segment(0, start, end, outcome, [t.run_id for t in tasks])
            cut, kind = self._cut(job, t0, end)
            if cut is not None:
                truncate(run.tasks, cut, kind)
                seg.task_run_ids = [t.run_id for t in run.tasks]
                seg.end = cut + rng.randint(500, 3000)
                seg.outcome = (
                    Outcome(
                        "TERMINATED",
                        "CANCELED",
                        "USER_CANCELED",
                        "SUCCESS",
                        "Run canceled by user.",
                    )
                    if kind == "cancel"
                    else Outcome(
                        "TERMINATED",
                        "TIMEDOUT",
                        "CANCELED",
                        "CLIENT_ERROR",
                        f"Run timed out after {job.timeout_seconds} seconds.",
                    )
                )
        run.segments.append(seg)
        return run

    def _cut(self, job: JobDef, t0: int, end: int) -> tuple[int | None, str]:
        if job.timeout_seconds and end - t0 > job.timeout_seconds * 1000:
            return t0 + job.timeout_seconds * 1000, "timeout"
        if job.cancel_p and self.rng.random() < job.cancel_p:
            return self.rng.randint(t0 + 1000, max(t0 + 2000, end - 1000)), "cancel"
        return None, ""

    def _legacy_task(self, run: RunRec, tdef: TaskDef, t0: int, scale: float) -> TaskRun:
        rng = self.rng
        fail = self.failure(tdef, tdef.fail_p * scale)
        cluster_id: str | None
        if tdef.compute == "new_cluster":
            setup = rng.randint(150, 330)
            cluster_id, ctx = self.cluster(t0)
        else:
            setup = rng.randint(0, 2)
            cluster_id, ctx = tdef.existing_cluster_id, str(rng.randrange(10**18, 9 * 10**18))
        execution = self.secs(tdef.base_secs)
        if fail is not None:
            if fail.code in CLUSTER_CODES:
                execution = 0
            else:
                execution = max(1, int(execution * rng.uniform(0.05, 0.9)))
        cleanup = rng.randint(0, 8) if tdef.compute == "new_cluster" else 0
        end = t0 + (setup + execution + cleanup) * 1000 + rng.randint(0, 900)
        return TaskRun(
            run.run_id,
            tdef,
            0,
            0,
            run.start,
            t0,
            end,
            setup * 1000,
            execution * 1000,
            cleanup * 1000,
            fail or SUCCESS,
            cluster_id,
            ctx,
        )

    # ------------------------------------------------------------------ tasks
    def plan_tasks(
        self,
        run: RunRec,
        defs: Iterable[TaskDef],
        t0: int,
        segment: int,
        latest: dict[str, TaskRun],
        scale: float,
        appear: int,
        run_ms: int | None = None,
    ) -> list[TaskRun]:
        """Plan task runs in DAG order from t0; `latest` holds earlier attempts (repairs)."""
        rng = self.rng
        done = dict(latest)
        clusters: dict[str, tuple[str, str, int]] = {}
        slots = [t0] * MAX_PARALLEL_TASKS
        out: list[TaskRun] = []
        for tdef in defs:
            deps = [(done[k], want) for k, want in tdef.depends_on if k in done]
            ready = max([t0, *(d.end for d, _ in deps)]) + rng.randint(100, 1800)
            prev = latest.get(tdef.task_key)
            first_attempt = prev.attempt + 1 if prev is not None else 0
            blocked = self._blocked(tdef, deps)
            if blocked is not None:
                task = TaskRun(
                    self.new_id(),
                    tdef,
                    first_attempt,
                    segment,
                    appear,
                    ready,
                    ready,
                    0,
                    0,
                    0,
                    blocked,
                )
                out.append(task)
                done[tdef.task_key] = task
                continue
            start = max(ready, heapq.heappop(slots))
            attempt = first_attempt
            while True:
                task = self._attempt(run, tdef, start, attempt, segment, clusters, scale, run_ms)
                task.appear = appear if attempt == first_attempt else start
                out.append(task)
                retries_used = attempt - first_attempt
                o = task.outcome
                retry = is_failure(o) and retries_used < tdef.max_retries
                if o.result == "TIMEDOUT" and not tdef.retry_on_timeout:
                    retry = False
                if not retry:
                    break
                start = max(
                    task.end + rng.randint(500, 3000), task.start + tdef.min_retry_interval_millis
                )
                attempt += 1
            heapq.heappush(slots, task.end)
            done[tdef.task_key] = task
        return out

    @staticmethod
    def _blocked(tdef: TaskDef, deps: list[tuple[TaskRun, str | None]]) -> Outcome | None:
        if tdef.disabled:
            return skipped("DISABLED", "This task is disabled.")
        if tdef.run_if == "ALL_DONE":
            return None
        failed = canceled = excluded = False
        for dep, want in deps:
            o = dep.outcome
            if is_failure(o) or o.result == "UPSTREAM_FAILED":
                failed = True
            elif o.result in ("CANCELED", "UPSTREAM_CANCELED"):
                canceled = True
            elif o.result == "EXCLUDED" or (want is not None and dep.condition_outcome != want):
                excluded = True
        if failed:
            return skipped("UPSTREAM_FAILED", "Upstream task(s) failed.")
        if canceled:
            return skipped("UPSTREAM_CANCELED", "Upstream task(s) were canceled.")
        if excluded:
            return skipped("EXCLUDED", "The condition of an upstream task was not met.")
        return None

    def _attempt(
        self,
        run: RunRec,
        tdef: TaskDef,
        start: int,
        attempt: int,
        segment: int,
        clusters: dict[str, tuple[str, str, int]],
        scale: float,
        run_ms: int | None,
    ) -> TaskRun:
        rng = self.rng
        if tdef.type_key == "condition_task":
            end = start + rng.randint(50, 900)
            task = TaskRun(
                self.new_id(), tdef, attempt, segment, start, start, end, 0, 0, 0, SUCCESS
            )
            task.condition_outcome = "true" if rng.random() < 0.75 else "false"
            return task
        if tdef.for_each is not None:
            return self._for_each(run, tdef, start, attempt, segment, clusters, scale)
        cluster_id: str | None = None
        ctx: str | None = None
        if tdef.compute == "job_cluster":
            key = tdef.job_cluster_key or ""
            if key not in clusters:
                setup = rng.randint(150, 300)
                cid, cctx = self.cluster(start)
                clusters[key] = (cid, cctx, start + setup * 1000)
            cluster_id, ctx, ready_at = clusters[key]
            setup = max(rng.randint(0, 1), -(-(ready_at - start) // 1000))
        elif tdef.compute == "new_cluster":
            setup = rng.randint(150, 330)
            cluster_id, ctx = self.cluster(start)
        elif tdef.compute == "existing_cluster":
            setup = rng.randint(0, 2)
            cluster_id, ctx = tdef.existing_cluster_id, str(rng.randrange(10**18, 9 * 10**18))
        else:
            setup = rng.randint(2, 12)
        execution = max(1, run_ms // 1000) if run_ms else self.secs(tdef.base_secs)
        fail = self.failure(tdef, tdef.fail_p * scale)
        if fail is not None:
            if fail.code in CLUSTER_CODES:
                setup, execution = rng.randint(30, setup + 31), 0
            else:
                execution = max(1, int(execution * rng.uniform(0.05, 0.9)))
        if tdef.timeout_seconds and setup + execution > tdef.timeout_seconds:
            execution = max(0, tdef.timeout_seconds - setup)
            fail = Outcome(
                "TERMINATED",
                "TIMEDOUT",
                "CANCELED",
                "CLIENT_ERROR",
                f"Task {tdef.task_key} timed out after {tdef.timeout_seconds} seconds.",
            )
        cleanup = rng.randint(0, 10) if tdef.compute == "new_cluster" else 0
        end = start + (setup + execution + cleanup) * 1000 + rng.randint(0, 900)
        return TaskRun(
            self.new_id(),
            tdef,
            attempt,
            segment,
            start,
            start,
            end,
            setup * 1000,
            execution * 1000,
            cleanup * 1000,
            fail or SUCCESS,
            cluster_id,
            ctx,
        )

    def _for_each(
        self,
        run: RunRec,
        tdef: TaskDef,
        start: int,
        attempt: int,
        segment: int,
        clusters: dict[str, tuple[str, str, int]],
        scale: float,
    ) -> TaskRun:
        rng = self.rng
        fe = tdef.for_each
        assert fe is not None
        n = rng.randint(fe.min_items, min(fe.max_items, 12))
        if fe.max_items > 100 and rng.random() < 0.3:
            n = rng.randint(101, fe.max_items)
        lanes = [start + rng.randint(300, 1500)] * fe.concurrency
        iterations: list[TaskRun] = []
        for _ in range(n):
            t = heapq.heappop(lanes) + rng.randint(50, 400)
            it_attempt = 0
            while True:
                it = self._attempt(run, fe.task, t, it_attempt, segment, clusters, scale, None)
                iterations.append(it)
                if is_failure(it.outcome) and it_attempt < fe.task.max_retries:
                    t = max(
                        it.end + rng.randint(300, 1500),
                        it.start + fe.task.min_retry_interval_millis,
                    )
                    it_attempt += 1
                    continue
                break
            heapq.heappush(lanes, it.end)
        end = max(i.end for i in iterations) + rng.randint(300, 1500)
        failed = sum(1 for i in latest_iterations(iterations) if is_failure(i.outcome))
        outcome = SUCCESS
        if failed:
            outcome = Outcome(
                "TERMINATED",
                "FAILED",
                "RUN_EXECUTION_ERROR",
                "CLIENT_ERROR",
                f"{failed} of {n} iterations failed.",
            )
        task = TaskRun(
            self.new_id(),
            tdef,
            attempt,
            segment,
            start,
            start,
            end,
            0,
            (end - start) // 1000 * 1000,
            0,
            outcome,
        )
        task.iterations = iterations
        task.iteration_total = n
        return task

    # ------------------------------------------------------------------ repairs
    def repair(self, run: RunRec, at: int) -> bool:
        """Re-run the failed tasks (and what they blocked) of a finished multitask run."""
        if run.legacy or run.skipped or at < run.planned_end:
            return False
        latest = latest_by_key(run.tasks)
        rerun = [
            d
            for d in run.job.tasks
            if d.task_key in latest
            and (
                is_failure(latest[d.task_key].outcome)
                or latest[d.task_key].outcome.result
                in ("CANCELED", "UPSTREAM_FAILED", "UPSTREAM_CANCELED")
            )
        ]
        if not rerun:
            return False
        index = len(run.segments)
        t0 = at + self.rng.randint(500, 1500)
        tasks = self.plan_tasks(run, rerun, t0, index, latest, 0.3, at)
        run.tasks.extend(tasks)
        end = max(t.end for t in tasks) + self.rng.randint(800, 4000)
        outcome = run_outcome(run.job, list(latest_by_key(run.tasks).values()))
        run.segments.append(Segment(self.new_id(), at, end, outcome, [t.run_id for t in tasks]))
        return True


def latest_by_key(tasks: Iterable[TaskRun]) -> dict[str, TaskRun]:
    out: dict[str, TaskRun] = {}
    for t in tasks:
        prev = out.get(t.tdef.task_key)
        if prev is None or t.attempt >= prev.attempt:
            out[t.tdef.task_key] = t
    return out


def latest_iterations(iterations: list[TaskRun]) -> list[TaskRun]:
    """Each iteration's last attempt (retries follow their attempt directly)."""
    out: list[TaskRun] = []
    for i, it in enumerate(iterations):
        nxt = iterations[i + 1] if i + 1 < len(iterations) else None
        if nxt is not None and nxt.attempt == it.attempt + 1:
            continue
        out.append(it)
    return out


def run_outcome(job: JobDef, tasks: list[TaskRun]) -> Outcome:
    """The run's outcome from the latest attempt of each task."""
    latest = latest_by_key(tasks)
    fails = [t for t in latest.values() if is_failure(t.outcome)]
    if not fails:
        return SUCCESS
    parents = {k for d in job.tasks for k, _ in d.depends_on}
    leaves = [t for k, t in latest.items() if k not in parents]
    if all(t.outcome.result in ("SUCCESS", "DISABLED", "EXCLUDED") for t in leaves):
        return Outcome(
            "TERMINATED", "SUCCESS_WITH_FAILURES", "SUCCESS_WITH_FAILURES", "SUCCESS", ""
        )
    first = min(fails, key=lambda t: t.end)
    o = first.outcome
    msg = (
        f"Task {first.tdef.task_key} failed with message: {o.message or 'Workload failed'}. "
        "This caused all downstream tasks to get skipped."
    )
    if o.life_cycle == "INTERNAL_ERROR":
        return Outcome("INTERNAL_ERROR", "FAILED", o.code, o.type, msg)
    code = "RUN_EXECUTION_ERROR" if o.code in ("RUN_EXECUTION_ERROR", "CANCELED") else o.code
    return Outcome("TERMINATED", "FAILED", code, "CLIENT_ERROR", msg)


def truncate(tasks: list[TaskRun], cut: int, kind: str) -> None:
    """Stop a run at `cut`: running tasks end there, later ones never start."""
    running = (
        Outcome("TERMINATED", "CANCELED", "USER_CANCELED", "SUCCESS", "Run canceled by user.")
        if kind == "cancel"
        else Outcome("TERMINATED", "TIMEDOUT", "CANCELED", "CLIENT_ERROR", "Run timed out.")
    )
    keep: list[TaskRun] = []
    seen: set[str] = set()
    for t in tasks:
        key = t.tdef.task_key
        if t.start > cut:
            if key in seen:
                continue  # a retry that never happened
            t.start = t.end = cut + 100
            t.setup = t.execution = t.cleanup = 0
            t.cluster_id = t.spark_context_id = None
            t.iterations = [] if t.iterations is not None else None
            t.outcome = skipped("UPSTREAM_CANCELED", "Upstream task(s) were canceled.")
        elif t.end > cut:
            elapsed = (cut - t.start) // 1000
            t.setup = min(t.setup // 1000, elapsed) * 1000
            t.execution = max(0, elapsed * 1000 - t.setup)
            t.cleanup = 0
            t.end = cut
            t.outcome = running
            if t.iterations is not None:
                t.iterations = [i for i in t.iterations if i.start <= cut]
                for it in t.iterations:
                    if it.end > cut:
                        e = (cut - it.start) // 1000
                        it.setup = min(it.setup // 1000, e) * 1000
                        it.execution = max(0, e * 1000 - it.setup)
                        it.cleanup = 0
                        it.end = cut
                        it.outcome = running
        seen.add(key)
        keep.append(t)
    tasks[:] = keep
