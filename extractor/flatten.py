"""Turn API run and job objects into Arrow tables with exactly the store's columns.

Pure functions: dicts in, Arrow tables out. No I/O, no logging, no clock. Unknown fields and
enum values are kept as they came (raw JSON, plain strings) and reported back to the caller.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from extractor.schema import TABLES

TERMINAL_LIFE_CYCLES = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})

# Enum values this version knows (API reference §5). Others are stored as they are and reported.
KNOWN_ENUMS: dict[str, frozenset[str]] = {
    "life_cycle_state": frozenset(
        {
            "QUEUED",
            "PENDING",
            "RUNNING",
            "TERMINATING",
            "BLOCKED",
            "WAITING_FOR_RETRY",
            "TERMINATED",
            "SKIPPED",
            "INTERNAL_ERROR",
        }
    ),
    "result_state": frozenset(
        {
            "SUCCESS",
            "SUCCESS_WITH_FAILURES",
            "FAILED",
            "TIMEDOUT",
            "CANCELED",
            "MAXIMUM_CONCURRENT_RUNS_REACHED",
            "EXCLUDED",
            "UPSTREAM_FAILED",
            "UPSTREAM_CANCELED",
            "DISABLED",
        }
    ),
    "status_state": frozenset(
        {"QUEUED", "PENDING", "RUNNING", "TERMINATING", "BLOCKED", "WAITING", "TERMINATED"}
    ),
    "termination_code": frozenset(
        {
            "SUCCESS",
            "SUCCESS_WITH_FAILURES",
            "USER_CANCELED",
            "CANCELED",
            "SKIPPED",
            "DISABLED",
            "INTERNAL_ERROR",
            "DRIVER_ERROR",
            "CLUSTER_ERROR",
            "CLOUD_FAILURE",
            "BREAKING_CHANGE",
            "REPOSITORY_CHECKOUT_FAILED",
            "INVALID_CLUSTER_REQUEST",
            "WORKSPACE_RUN_LIMIT_EXCEEDED",
            "FEATURE_DISABLED",
            "CLUSTER_REQUEST_LIMIT_EXCEEDED",
            "STORAGE_ACCESS_ERROR",
            "RUN_EXECUTION_ERROR",
            "UNAUTHORIZED_ERROR",
            "LIBRARY_INSTALLATION_ERROR",
            "MAX_CONCURRENT_RUNS_EXCEEDED",
            "MAX_SPARK_CONTEXTS_EXCEEDED",
            "RESOURCE_NOT_FOUND",
            "INVALID_RUN_CONFIGURATION",
            "MAX_JOB_QUEUE_SIZE_EXCEEDED",
            "BUDGET_POLICY_LIMIT_EXCEEDED",
            "CLUSTER_TERMINATED_BY_USER",
        }
    ),
    "termination_type": frozenset({"SUCCESS", "CLIENT_ERROR", "INTERNAL_ERROR", "CLOUD_FAILURE"}),
    "run_type": frozenset({"JOB_RUN", "WORKFLOW_RUN", "SUBMIT_RUN"}),
    "trigger": frozenset(
        {
            "PERIODIC",
            "ONE_TIME",
            "RETRY",
            "RUN_JOB_TASK",
            "FILE_ARRIVAL",
            "TABLE",
            "CONTINUOUS",
            "CONTINUOUS_RESTART",
            "JOB_COMPLETION",
            "MODEL",
        }
    ),
}

# Fields of a run and of a task run this version knows (API reference §3, §4). Others are kept
# in the raw JSON and reported once, so a new API field is noticed, never lost.
KNOWN_RUN_FIELDS = frozenset(
    {
        "job_id", "run_id", "number_in_job", "job_run_id", "run_name", "run_type", "trigger",
        "trigger_info", "creator_user_name", "start_time", "end_time", "setup_duration",
        "execution_duration", "cleanup_duration", "run_duration", "queue_duration", "state",
        "status", "attempt_number", "original_attempt_run_id", "schedule", "cluster_spec",
        "cluster_instance", "job_clusters", "tasks", "repair_history", "iterations",
        "job_parameters", "overriding_parameters", "run_page_url", "description", "git_source",
        "environment_variables", "deployment_id", "version_id", "effective_performance_target",
        "effective_usage_policy_id", "duration_target", "has_more", "next_page_token",
        "prev_page_token", "format", "run_as", "run_as_user_name",
    }
)  # fmt: skip
KNOWN_TASK_FIELDS = frozenset(
    {
        "task_key", "run_id", "attempt_number", "depends_on", "run_if", "job_cluster_key",
        "new_cluster", "existing_cluster_id", "environment_key", "compute", "cluster_instance",
        "start_time", "end_time", "setup_duration", "execution_duration", "cleanup_duration",
        "queue_duration", "run_duration", "state", "status", "max_retries",
        "min_retry_interval_millis", "retry_on_timeout", "timeout_seconds", "for_each_task",
        "effective_performance_target", "disabled", "description", "libraries", "resolved_values",
        "run_page_url", "git_source", "email_notifications", "webhook_notifications",
        "notification_settings", "environment_variables_key", "health", "condition_outcome",
        "disable_auto_optimization",
    }
)  # fmt: skip

# Tasks of these types run no code of their own, so they have no compute.
NO_COMPUTE_TASK_TYPES = frozenset({"condition_task", "for_each_task", "run_job_task"})

ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "BOOLEAN": pa.bool_(),
    "DOUBLE": pa.float64(),
    "TIMESTAMPTZ": pa.timestamp("ms", tz="UTC"),
    "VARCHAR[]": pa.list_(pa.string()),
    "BIGINT[]": pa.list_(pa.int64()),
    "MAP(VARCHAR, VARCHAR)": pa.map_(pa.string(), pa.string()),
}


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of a store table, in column order."""
    return pa.schema([(c, ARROW_TYPES[t]) for c, t in TABLES[table].items()])


@dataclass
class RunBundle:
    """A run as fully fetched: the merged runs/get object and the iterations of its for-each tasks."""

    run: dict[str, Any]
    iterations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class FlatRuns:
    """Arrow tables for runs and their children, plus the unknown enum values seen."""

    runs: pa.Table
    tasks: pa.Table
    repair_history: pa.Table
    task_iterations: pa.Table
    unknown: set[tuple[str, str]]

    def tables(self) -> dict[str, pa.Table]:
        return {
            "runs": self.runs,
            "tasks": self.tasks,
            "repair_history": self.repair_history,
            "task_iterations": self.task_iterations,
        }


class _Columns:
    """Rows of one store table, as dicts; missing keys are NULL. pyarrow turns a list of them
    into a struct array at once, in C++: far cheaper than appending value by value. Every
    CHUNK_ROWS rows become Arrow, so that few row dicts are alive at a time."""

    CHUNK_ROWS = 1024

    def __init__(self, table: str) -> None:
        self.table = table
        self.names = list(TABLES[table])
        self.struct = pa.struct(list(arrow_schema(table)))
        self.rows: list[Mapping[str, Any]] = []
        self.chunks: list[pa.Array] = []

    def add(self, row: Mapping[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.CHUNK_ROWS:
            self._convert()

    def _convert(self) -> None:
        self.chunks.append(pa.array(self.rows, type=self.struct))
        self.rows = []

    def to_arrow(self) -> pa.Table:
        if self.rows or not self.chunks:
            self._convert()
        return pa.Table.from_struct_array(pa.chunked_array(self.chunks, type=self.struct))


def dumps(value: Any) -> str:
    """Compact JSON text of an API object, as it came (orjson: several times faster than json)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits, which only the standard library writes
        return json.dumps(value, separators=(",", ":"))


def ms(value: Any) -> int | None:
    """Epoch milliseconds from the API; 0 and missing mean "not yet" and become None."""
    if value is None or value == 0:
        return None
    return int(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _states(obj: Mapping[str, Any], unknown: set[tuple[str, str]]) -> dict[str, Any]:
    state = obj.get("state") or {}
    status = obj.get("status") or {}
    details = status.get("termination_details") or {}
    out = {
        "life_cycle_state": state.get("life_cycle_state"),
        "result_state": state.get("result_state"),
        "status_state": status.get("state"),
        "termination_code": _str_or_none(details.get("code")),
        "termination_type": _str_or_none(details.get("type")),
        "state_message": details.get("message") or state.get("state_message") or None,
    }
    for name in ("life_cycle_state", "result_state", "status_state", "termination_code"):
        value = out[name]
        if value is not None and value not in KNOWN_ENUMS[name]:
            unknown.add((name, str(value)))
    out["is_active"] = is_active(out["life_cycle_state"], out["status_state"])
    return out


def is_active(life_cycle_state: str | None, status_state: str | None) -> bool:
    """Not finished: any life cycle but the terminal ones (unknown values count as active)."""
    return not (life_cycle_state in TERMINAL_LIFE_CYCLES or status_state == "TERMINATED")


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _phases(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "queue_duration_ms": _int(obj.get("queue_duration")),
        "setup_duration_ms": _int(obj.get("setup_duration")),
        "execution_duration_ms": _int(obj.get("execution_duration")),
        "cleanup_duration_ms": _int(obj.get("cleanup_duration")),
    }


def _phase_sum(obj: Mapping[str, Any]) -> int:
    get = obj.get
    return (
        int(get("setup_duration") or 0)
        + int(get("execution_duration") or 0)
        + int(get("cleanup_duration") or 0)
    )


def task_type(task: Mapping[str, Any]) -> str | None:
    """The task's type: the one key ending in `_task` whose value is an object."""
    for key, value in task.items():
        if key.endswith("_task") and isinstance(value, dict):
            return key
    return None


def _compute(
    task: Mapping[str, Any], run: Mapping[str, Any], job_clusters: Mapping[str, Any]
) -> dict[str, Any]:
    ttype = task_type(task)
    spec: Mapping[str, Any] = task
    legacy = task.get("run_id") == run.get("run_id")
    if not ("job_cluster_key" in task or "new_cluster" in task or "existing_cluster_id" in task):
        cluster_spec = run.get("cluster_spec") or {}
        if legacy or cluster_spec:
            spec = cluster_spec
    cluster: Mapping[str, Any] = {}
    if spec.get("job_cluster_key"):
        kind = "job_cluster"
        cluster = job_clusters.get(spec["job_cluster_key"]) or {}
    elif spec.get("new_cluster"):
        kind = "new_cluster"
        cluster = spec["new_cluster"]
    elif spec.get("existing_cluster_id"):
        kind = "existing_cluster"
    elif ttype in NO_COMPUTE_TASK_TYPES:
        kind = None
    else:
        kind = "serverless"
    instance = task.get("cluster_instance") or (run.get("cluster_instance") if legacy else None)
    autoscale = cluster.get("autoscale") or {}
    num_workers = cluster.get("num_workers")
    return {
        "compute_kind": kind,
        "cluster_id": (instance or {}).get("cluster_id"),
        "job_cluster_key": spec.get("job_cluster_key"),
        "existing_cluster_id": spec.get("existing_cluster_id"),
        "environment_key": task.get("environment_key"),
        "node_type_id": cluster.get("node_type_id"),
        "driver_node_type_id": cluster.get("driver_node_type_id") or cluster.get("node_type_id"),
        "num_workers": _int(num_workers),
        "autoscale_min_workers": _int(autoscale.get("min_workers")),
        "autoscale_max_workers": _int(autoscale.get("max_workers")),
        "workers": _int(num_workers if num_workers is not None else autoscale.get("max_workers")),
        "spark_version": cluster.get("spark_version"),
        "runtime_engine": cluster.get("runtime_engine"),
        "instance_pool_id": cluster.get("instance_pool_id"),
        "driver_instance_pool_id": cluster.get("driver_instance_pool_id"),
        "task_type": ttype,
    }


def _task_times(task: Mapping[str, Any], states: Mapping[str, Any]) -> dict[str, Any]:
    get = task.get
    setup, execution, cleanup = (
        get("setup_duration"),
        get("execution_duration"),
        get("cleanup_duration"),
    )
    queue = get("queue_duration")
    return {
        "start_time": ms(get("start_time")),
        "end_time": ms(get("end_time")),
        "queue_duration_ms": None if queue is None else int(queue),
        "setup_duration_ms": None if setup is None else int(setup),
        "execution_duration_ms": None if execution is None else int(execution),
        "cleanup_duration_ms": None if cleanup is None else int(cleanup),
        "duration_ms": None
        if states["is_active"]
        else int(setup or 0) + int(execution or 0) + int(cleanup or 0),
    }


def implied_history(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The repair history of a run fetched without it, where it can be known for sure.

    A repair re-runs tasks, and a re-run task has attempt_number > 0. So a run none of whose
    tasks was re-run was never repaired: its history is the ORIGINAL item alone, spanning the
    run with the run's state. Otherwise the history is unknown here and left empty.
    """
    tasks = run.get("tasks") or []
    if any((t.get("attempt_number") or 0) > 0 for t in tasks):
        return []
    item: dict[str, Any] = {
        "type": "ORIGINAL",
        "start_time": run.get("start_time"),
        "end_time": run.get("end_time"),
        "task_run_ids": [t["run_id"] for t in tasks],
    }
    for name in ("state", "status"):
        if name in run:
            item[name] = run[name]
    return [item]


def run_duration_ms(run: Mapping[str, Any], is_active: bool) -> int | None:
    """run_duration when present, else setup + execution + cleanup; None while active."""
    if is_active:
        return None
    if run.get("run_duration") is not None:
        return int(run["run_duration"])
    return _phase_sum(run)


@contextlib.contextmanager
def _without_cycle_collector() -> Iterator[None]:
    """Flattening keeps a dict per row until the batch is done, so Python's cyclic collector
    runs over and over, each time walking every object of the caller's parsed pages (about a
    fifth of the time); the rows hold no cycles, so it is paused meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def flatten_runs(
    bundles: Iterable[RunBundle], workspace_id: str, extracted_at: datetime
) -> FlatRuns:
    """Flatten fully fetched runs into the four run tables. Duplicate run_ids: the last wins."""
    with _without_cycle_collector():
        return _flatten_runs(bundles, workspace_id, extracted_at)


def _flatten_runs(
    bundles: Iterable[RunBundle], workspace_id: str, extracted_at: datetime
) -> FlatRuns:
    latest: dict[int, RunBundle] = {}
    for bundle in bundles:
        latest[int(bundle.run["run_id"])] = bundle
    unknown: set[tuple[str, str]] = set()
    runs, tasks = _Columns("runs"), _Columns("tasks")
    repairs, iters = _Columns("repair_history"), _Columns("task_iterations")
    extracted_ms = int(extracted_at.timestamp() * 1000)
    for run_id, bundle in latest.items():
        run = bundle.run
        job_id = _int(run.get("job_id"))
        states = _states(run, unknown)
        for name in ("run_type", "trigger"):
            if run.get(name) is not None and run[name] not in KNOWN_ENUMS[name]:
                unknown.add((name, str(run[name])))
        for key in run.keys() - KNOWN_RUN_FIELDS:
            unknown.add(("run field", key))
        history = run.get("repair_history") or implied_history(run)
        repair_of: dict[int, int] = {}
        for item in history:
            repair_id = int(item.get("id") or 0)
            ids = [int(i) for i in item.get("task_run_ids") or []]
            for task_run_id in ids:
                repair_of[task_run_id] = repair_id
            repairs.add(
                {
                    "workspace_id": workspace_id,
                    "job_run_id": run_id,
                    "repair_id": repair_id,
                    "type": item.get("type"),
                    "start_time": ms(item.get("start_time")),
                    "end_time": ms(item.get("end_time")),
                    **_states(item, unknown),
                    "task_run_ids": ids,
                }
            )
        run_tasks = run.get("tasks") or []
        runs.add(
            {
                "workspace_id": workspace_id,
                "run_id": run_id,
                "job_id": job_id,
                "run_name": run.get("run_name"),
                "run_type": run.get("run_type"),
                "trigger": run.get("trigger"),
                "creator_user_name": run.get("creator_user_name"),
                "start_time": ms(run.get("start_time")),
                "end_time": ms(run.get("end_time")),
                **states,
                **_phases(run),
                "run_duration_ms": _int(run.get("run_duration")),
                "duration_ms": run_duration_ms(run, states["is_active"]),
                "attempt_number": _int(run.get("attempt_number")),
                "original_attempt_run_id": _int(run.get("original_attempt_run_id")),
                "task_count": len(run_tasks),
                "repair_count": sum(1 for item in history if item.get("type") == "REPAIR"),
                "run_page_url": run.get("run_page_url"),
                "deleted_at": None,
                "raw": dumps(run),
                "extracted_at": extracted_ms,
            }
        )
        job_clusters = {
            c.get("job_cluster_key"): c.get("new_cluster") or {}
            for c in run.get("job_clusters") or []
        }
        for task in run_tasks:
            task_run_id = int(task["run_id"])
            for key in task.keys() - KNOWN_TASK_FIELDS:
                if not (key.endswith("_task") and isinstance(task[key], dict)):
                    unknown.add(("task field", key))
            tstates = _states(task, unknown)
            iterations = bundle.iterations.get(task_run_id)
            tasks.add(
                {
                    "workspace_id": workspace_id,
                    "run_id": task_run_id,
                    "job_run_id": run_id,
                    "job_id": job_id,
                    "task_key": task.get("task_key"),
                    "attempt_number": _int(task.get("attempt_number")),
                    "repair_id": repair_of.get(task_run_id) if history else None,
                    **_task_times(task, tstates),
                    "run_duration_ms": _int(task.get("run_duration")),
                    **tstates,
                    **_compute(task, run, job_clusters),
                    "depends_on": [d.get("task_key") for d in task.get("depends_on") or []],
                    "run_if": task.get("run_if"),
                    "max_retries": _int(task.get("max_retries")),
                    "timeout_seconds": _int(task.get("timeout_seconds")),
                    "iteration_count": None if iterations is None else len(iterations),
                    "raw": dumps(task),
                }
            )
            for iteration in iterations or []:
                istates = _states(iteration, unknown)
                iters.add(
                    {
                        "workspace_id": workspace_id,
                        "run_id": int(iteration["run_id"]),
                        "parent_task_run_id": task_run_id,
                        "job_run_id": run_id,
                        "job_id": job_id,
                        "task_key": iteration.get("task_key"),
                        "attempt_number": _int(iteration.get("attempt_number")),
                        **_task_times(iteration, istates),
                        **istates,
                        "cluster_id": (iteration.get("cluster_instance") or {}).get("cluster_id"),
                        "raw": dumps(iteration),
                    }
                )
    return FlatRuns(
        runs=runs.to_arrow(),
        tasks=tasks.to_arrow(),
        repair_history=repairs.to_arrow(),
        task_iterations=iters.to_arrow(),
        unknown=unknown,
    )


def job_signature(job: Mapping[str, Any]) -> str:
    """A digest of a job as jobs/list shows it: a new digest means the job changed."""
    text = json.dumps(job, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _trigger_kind(settings: Mapping[str, Any]) -> str | None:
    if settings.get("continuous"):
        return "continuous"
    trigger = settings.get("trigger") or {}
    for kind in ("file_arrival", "periodic", "table_update", "table", "model", "job_completion"):
        if kind in trigger:
            return kind
    if settings.get("schedule"):
        return "schedule"
    return None


def flatten_jobs(
    jobs: Sequence[Mapping[str, Any]],
    workspace_id: str,
    extracted_at: datetime,
    listing_hashes: Mapping[int, str] | None = None,
) -> pa.Table:
    """Flatten jobs/get (or jobs/list) objects into the `jobs` table.

    `listing_hashes` holds job_signature() of each job as listed, kept to spot later changes.
    """
    cols = _Columns("jobs")
    extracted_ms = int(extracted_at.timestamp() * 1000)
    seen: dict[int, Mapping[str, Any]] = {int(j["job_id"]): j for j in jobs}
    for job_id, job in seen.items():
        settings = job.get("settings") or {}
        schedule = settings.get("schedule") or {}
        tags = settings.get("tags") or {}
        cols.add(
            {
                "workspace_id": workspace_id,
                "job_id": job_id,
                "name": settings.get("name"),
                "creator_user_name": job.get("creator_user_name"),
                "run_as_user_name": job.get("run_as_user_name"),
                "created_time": ms(job.get("created_time")),
                "tags": [(str(k), str(v)) for k, v in tags.items()],
                "schedule_cron": schedule.get("quartz_cron_expression"),
                "schedule_timezone": schedule.get("timezone_id"),
                "schedule_pause_status": schedule.get("pause_status"),
                "trigger_kind": _trigger_kind(settings),
                "continuous": bool(settings.get("continuous")),
                "max_concurrent_runs": _int(settings.get("max_concurrent_runs")),
                "timeout_seconds": _int(settings.get("timeout_seconds")),
                "format": settings.get("format"),
                "job_clusters": json.dumps(settings.get("job_clusters"))
                if settings.get("job_clusters") is not None
                else None,
                "deleted_at": None,
                "listing_hash": (listing_hashes or {}).get(job_id),
                "raw": dumps(job),
                "extracted_at": extracted_ms,
            }
        )
    return cols.to_arrow()


def flatten_clusters(
    clusters: Mapping[str, Mapping[str, Any] | str],
    workspace_id: str,
    fetched_at: datetime,
) -> pa.Table:
    """Flatten clusters/get answers into the `clusters` table.

    Each cluster id maps to its ClusterDetails, or to the reason the API refused it (a row with
    only `error` set, so that the refusal is not asked again at every extract).
    """
    cols = _Columns("clusters")
    fetched_ms = int(fetched_at.timestamp() * 1000)
    for cluster_id, answer in clusters.items():
        row: dict[str, Any] = {
            "workspace_id": workspace_id,
            "cluster_id": cluster_id,
            "fetched_at": fetched_ms,
        }
        if isinstance(answer, str):
            row["error"] = answer
        else:
            autoscale = answer.get("autoscale") or {}
            row |= {
                "cluster_name": answer.get("cluster_name"),
                "node_type_id": answer.get("node_type_id"),
                "driver_node_type_id": answer.get("driver_node_type_id")
                or answer.get("node_type_id"),
                "num_workers": None if autoscale else _int(answer.get("num_workers")),
                "autoscale_min_workers": _int(autoscale.get("min_workers")),
                "autoscale_max_workers": _int(autoscale.get("max_workers")),
                "runtime_engine": answer.get("runtime_engine"),
                "cluster_source": answer.get("cluster_source"),
                "state": answer.get("state"),
                "spark_version": answer.get("spark_version"),
                "raw": dumps(answer),
                "instance_pool_id": answer.get("instance_pool_id"),
                "driver_instance_pool_id": answer.get("driver_instance_pool_id"),
            }
        cols.add(row)
    return cols.to_arrow()


TRACE_KEEP_BYTES = 16 * 1024


def bound_trace(trace: str | None) -> tuple[str | None, int | None]:
    """A stack trace cut to its first and last 16 KB (UTF-8), and its full length in bytes.

    The cause is usually at one end: the exception on top, the innermost `Caused by:` at the
    bottom; the frames in between are what makes traces megabytes long."""
    if trace is None:
        return None, None
    raw = trace.encode()
    if len(raw) <= 2 * TRACE_KEEP_BYTES:
        return trace, len(raw)
    head = raw[:TRACE_KEEP_BYTES].decode(errors="ignore")
    tail = raw[-TRACE_KEEP_BYTES:].decode(errors="ignore")
    return f"{head}\n... [{len(raw) - 2 * TRACE_KEEP_BYTES} bytes cut] ...\n{tail}", len(raw)


def flatten_task_errors(
    rows: Iterable[Mapping[str, Any]], workspace_id: str, fetched_at: datetime
) -> pa.Table:
    """Rows of the `task_errors` table: each failed task run with what runs/get-output said.

    A row's `output` is the answer's dict, or None when the API refused (its `status` says why);
    the error falls back to the state message, the only text some failures have."""
    cols = _Columns("task_errors")
    fetched_ms = int(fetched_at.timestamp() * 1000)
    for row in rows:
        output = row.get("output") or {}
        error = str(output.get("error") or "").strip() or None
        trace, trace_bytes = bound_trace(output.get("error_trace") or None)
        failed_at = row.get("failed_at")
        out = {k: row.get(k) for k in cols.names} | {
            "workspace_id": workspace_id,
            "failed_at": int(failed_at.timestamp() * 1000)
            if isinstance(failed_at, datetime)
            else failed_at,
            "error": error or row.get("state_message"),
            "error_trace": trace,
            "error_trace_bytes": trace_bytes,
            "fetched_at": fetched_ms,
        }
        cols.add(out)
    return cols.to_arrow()


def flatten_instance_pools(
    pools: Mapping[str, Mapping[str, Any] | str], workspace_id: str, fetched_at: datetime
) -> pa.Table:
    """Flatten instance-pools/get answers (or why the API refused) into `instance_pools`."""
    cols = _Columns("instance_pools")
    fetched_ms = int(fetched_at.timestamp() * 1000)
    for pool_id, answer in pools.items():
        row: dict[str, Any] = {
            "workspace_id": workspace_id,
            "instance_pool_id": pool_id,
            "fetched_at": fetched_ms,
        }
        if isinstance(answer, str):
            row["error"] = answer
        else:
            row |= {
                "instance_pool_name": answer.get("instance_pool_name"),
                "node_type_id": answer.get("node_type_id"),
                "raw": dumps(answer),
            }
        cols.add(row)
    return cols.to_arrow()


def flatten_node_types(
    node_types: Sequence[Mapping[str, Any]],
    workspace_id: str,
    fetched_at: datetime,
    inferred: Mapping[str, tuple[str | None, float | None, str | None]],
) -> pa.Table:
    """Flatten clusters/list-node-types into `node_types`, with the DBU rate `inferred` per
    node type id (cloud, DBU/h, the basis) by the caller."""
    cols = _Columns("node_types")
    fetched_ms = int(fetched_at.timestamp() * 1000)
    for node in node_types:
        node_type_id = node.get("node_type_id")
        if not node_type_id:
            continue
        cloud, rate, basis = inferred.get(node_type_id, (None, None, None))
        cols.add(
            {
                "workspace_id": workspace_id,
                "node_type_id": node_type_id,
                "cloud": cloud,
                "num_cores": node.get("num_cores"),
                "memory_mb": _int(node.get("memory_mb")),
                "category": node.get("category"),
                "photon_worker_capable": node.get("photon_worker_capable"),
                "photon_driver_capable": node.get("photon_driver_capable"),
                "dbu_per_hour": rate,
                "inferred_from": basis,
                "fetched_at": fetched_ms,
            }
        )
    return cols.to_arrow()


def worker_intervals(events: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """(epoch ms, workers) from a cluster's events: the count from then on.

    RUNNING and UPSIZE_COMPLETED state the count reached (details.current_num_workers); a
    RESIZING towards fewer workers removes them at once (there is no DOWNSIZE_COMPLETED event),
    while one towards more waits for its UPSIZE_COMPLETED.
    """
    out: list[tuple[int, int]] = []
    for event in sorted(events, key=lambda e: int(e.get("timestamp") or 0)):
        details = event.get("details") or {}
        at = _int(event.get("timestamp"))
        current = _int(details.get("current_num_workers"))
        target = _int(details.get("target_num_workers"))
        kind = event.get("type")
        workers: int | None = None
        if kind in ("RUNNING", "UPSIZE_COMPLETED"):
            workers = current
        elif kind == "RESIZING" and target is not None and current is not None:
            workers = target if target < current else None
        if at is not None and workers is not None:
            if out and out[-1][0] == at:
                out[-1] = (at, workers)
            else:
                out.append((at, workers))
    return out
