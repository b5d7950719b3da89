"""Turn API run and job objects into rows with exactly the store's columns.

Jobs, clusters, pools and errors: dicts in, Arrow tables out. Runs, the bulk of every extract:
dicts in, a RunBatch of JSON text out (`prepare_runs`), flattened by DuckDB statements on the
connection that stores them (`flattened`), or into Arrow tables on a private in-memory DuckDB
(`flatten_runs`). No I/O, no logging, no clock. Unknown fields and enum values are kept as they
came (raw JSON, plain strings) and reported back to the caller.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

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


def is_active(life_cycle_state: str | None, status_state: str | None) -> bool:
    """Not finished: any life cycle but the terminal ones (unknown values count as active)."""
    return not (life_cycle_state in TERMINAL_LIFE_CYCLES or status_state == "TERMINATED")


def task_type(task: Mapping[str, Any]) -> str | None:
    """The task's type: the one key ending in `_task` whose value is an object."""
    for key, value in task.items():
        if key.endswith("_task") and isinstance(value, dict):
            return key
    return None


def is_for_each(task: Mapping[str, Any]) -> bool:
    """Whether the task is a for-each task (task_type, without walking every key of the rest)."""
    return "for_each_task" in task and task_type(task) == "for_each_task"


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


# -- runs: JSON text in, the four run tables out, flattened by DuckDB ----------------------------
#
# Python reads off each run only what needs its dicts (key sets, the type key of each task, the
# truth of a few objects) and writes the JSON text of each run and iteration once (orjson).
# DuckDB parses that text once (json_transform, the run's task runs with it) and computes every
# column in a few set-based statements: the work per field runs in C++ on DuckDB's threads,
# beside the extract's own, and the Python side stays a small share. A task run's JSON is the
# one in its run's raw JSON; it is not stored twice.

_RUN_INPUT = pa.schema(
    [
        ("pos", pa.int32()),
        ("run_id", pa.int64()),
        ("raw", pa.json_()),
        ("history", pa.string()),
        ("task_count", pa.int32()),
        ("spec_set", pa.bool_()),
        ("spec_cluster_set", pa.bool_()),
    ]
)
_TASK_INPUT = pa.schema(
    [
        ("run_pos", pa.int32()),
        ("pos", pa.int32()),
        ("run_id", pa.int64()),
        ("task_type", pa.string()),
        ("own_spec", pa.bool_()),
        ("cluster_set", pa.bool_()),
        ("instance_set", pa.bool_()),
        ("iteration_count", pa.int32()),
    ]
)
_ITERATION_INPUT = pa.schema(
    [
        ("run_pos", pa.int32()),
        ("task_pos", pa.int32()),
        ("pos", pa.int32()),
        ("parent_task_run_id", pa.int64()),
        ("raw", pa.json_()),
    ]
)


_CHUNK_RUNS = 128


@dataclass
class RunBatch:
    """Fully fetched runs, ready to flatten: the JSON text of each run and iteration, with
    what Python read off their dicts and their task runs', in the order given (a repeated
    run_id: the last)."""

    runs: pa.Table
    tasks: pa.Table
    iterations: pa.Table
    extracted_at: datetime
    unknown: set[tuple[str, str]]

    @classmethod
    def concat(cls, batches: Sequence[RunBatch]) -> RunBatch:
        """One batch of several, in order (a run_id in more than one: the last)."""
        if len(batches) == 1:
            return batches[0]
        runs, tasks, iterations, offset = [], [], [], 0
        for batch in batches:
            runs.append(_shifted(batch.runs, "pos", offset))
            tasks.append(_shifted(batch.tasks, "run_pos", offset))
            iterations.append(_shifted(batch.iterations, "run_pos", offset))
            offset += len(batch)
        merged = cls(
            runs=pa.concat_tables(runs),
            tasks=pa.concat_tables(tasks),
            iterations=pa.concat_tables(iterations),
            extracted_at=batches[-1].extracted_at,
            unknown=set().union(*(b.unknown for b in batches)),
        )
        ids = merged.run_ids
        if len(set(ids)) == len(ids):
            return merged
        last = {run_id: pos for pos, run_id in enumerate(ids)}
        keep = pa.array(sorted(last.values()), pa.int32())
        merged.runs = merged.runs.filter(pc.is_in(merged.runs["pos"], keep))
        merged.tasks = merged.tasks.filter(pc.is_in(merged.tasks["run_pos"], keep))
        merged.iterations = merged.iterations.filter(pc.is_in(merged.iterations["run_pos"], keep))
        return merged

    def parts(self, max_bytes: int) -> list[RunBatch]:
        """The batch in consecutive parts of at most `max_bytes` of run JSON (a run larger than
        that: a part of its own), so that flattening a part fits the store's memory."""
        sizes = pc.binary_length(self.runs["raw"].cast(pa.string())).to_pylist()
        if sum(sizes) <= max_bytes:
            return [self]
        bounds, total, start = [], 0, 0
        for index, size in enumerate(sizes):
            if total and total + size > max_bytes:
                bounds.append((start, index))
                start, total = index, 0
            total += size
        bounds.append((start, len(sizes)))
        positions = self.runs["pos"].to_pylist()
        out = []
        for lo, hi in bounds:
            keep = pa.array(positions[lo:hi], pa.int32())
            out.append(
                RunBatch(
                    runs=self.runs.slice(lo, hi - lo),
                    tasks=self.tasks.filter(pc.is_in(self.tasks["run_pos"], keep)),
                    iterations=self.iterations.filter(pc.is_in(self.iterations["run_pos"], keep)),
                    extracted_at=self.extracted_at,
                    unknown=self.unknown,
                )
            )
        return out

    @property
    def run_ids(self) -> list[int]:
        return list(self.runs.column("run_id").to_pylist())

    def __len__(self) -> int:
        return int(self.runs.num_rows)


def prepare_runs(bundles: Iterable[RunBundle], extracted_at: datetime) -> RunBatch:
    """The batch of `bundles` (duplicate run_ids: the last wins), with unknown fields reported."""
    latest: dict[int, RunBundle] = {}
    for bundle in bundles:
        latest[int(bundle.run["run_id"])] = bundle
    unknown: set[tuple[str, str]] = set()
    runs: dict[str, list[Any]] = {name: [] for name in _RUN_INPUT.names}
    tasks: dict[str, list[Any]] = {name: [] for name in _TASK_INPUT.names}
    iters: dict[str, list[Any]] = {name: [] for name in _ITERATION_INPUT.names}
    known_run, known_task = KNOWN_RUN_FIELDS, KNOWN_TASK_FIELDS
    for pos, (run_id, bundle) in enumerate(latest.items()):
        run = bundle.run
        for key in run.keys() - known_run:
            unknown.add(("run field", key))
        spec = run.get("cluster_spec")
        runs["pos"].append(pos)
        runs["run_id"].append(run_id)
        runs["raw"].append(dumps(run))
        runs["history"].append(dumps(run.get("repair_history") or implied_history(run)))
        runs["task_count"].append(len(run.get("tasks") or ()))
        runs["spec_set"].append(bool(spec))
        runs["spec_cluster_set"].append(bool(spec.get("new_cluster")) if spec else False)
        for task_pos, task in enumerate(run.get("tasks") or []):
            task_run_id = int(task["run_id"])
            ttype = None
            for key in task.keys() - known_task:
                if key.endswith("_task") and isinstance(task[key], dict):
                    ttype = key
                else:
                    unknown.add(("task field", key))
            if ttype is None or "for_each_task" in task:
                ttype = task_type(task)  # the first in the object's order
            iterations = bundle.iterations.get(task_run_id)
            tasks["run_pos"].append(pos)
            tasks["pos"].append(task_pos)
            tasks["run_id"].append(task_run_id)
            tasks["task_type"].append(ttype)
            tasks["own_spec"].append(
                "job_cluster_key" in task or "new_cluster" in task or "existing_cluster_id" in task
            )
            tasks["cluster_set"].append(bool(task.get("new_cluster")))
            tasks["instance_set"].append(bool(task.get("cluster_instance")))
            tasks["iteration_count"].append(None if iterations is None else len(iterations))
            for i, iteration in enumerate(iterations or ()):
                iters["run_pos"].append(pos)
                iters["task_pos"].append(task_pos)
                iters["pos"].append(i)
                iters["parent_task_run_id"].append(task_run_id)
                iters["raw"].append(dumps(iteration))
    return RunBatch(
        # In chunks: DuckDB scans an Arrow table's chunks in parallel.
        runs=pa.Table.from_batches(
            pa.table(runs, schema=_RUN_INPUT).to_batches(max_chunksize=_CHUNK_RUNS),
            schema=_RUN_INPUT,
        ),
        tasks=pa.table(tasks, schema=_TASK_INPUT),
        iterations=pa.table(iters, schema=_ITERATION_INPUT),
        extracted_at=extracted_at,
        unknown=unknown,
    )


def _shifted(table: pa.Table, column: str, offset: int) -> pa.Table:
    """`table` with `offset` added to `column` (run positions, when batches are joined)."""
    if not offset:
        return table
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, pc.add(table[column], pa.scalar(offset, pa.int32())))


def _shape(fields: Mapping[str, Any] | list[Any]) -> str:
    """A json_transform structure as SQL text."""
    return "'" + json.dumps(fields, separators=(",", ":")).replace("'", "''") + "'"


_STATES = {
    "state": {"life_cycle_state": "VARCHAR", "result_state": "VARCHAR", "state_message": "VARCHAR"},
    "status": {
        "state": "VARCHAR",
        "termination_details": {"code": "VARCHAR", "type": "VARCHAR", "message": "VARCHAR"},
    },
}
_PHASES = {
    "queue_duration": "BIGINT",
    "setup_duration": "BIGINT",
    "execution_duration": "BIGINT",
    "cleanup_duration": "BIGINT",
    "run_duration": "BIGINT",
}
_CLUSTER = {
    "node_type_id": "VARCHAR",
    "driver_node_type_id": "VARCHAR",
    "num_workers": "BIGINT",
    "autoscale": {"min_workers": "BIGINT", "max_workers": "BIGINT"},
    "spark_version": "VARCHAR",
    "runtime_engine": "VARCHAR",
    "instance_pool_id": "VARCHAR",
    "driver_instance_pool_id": "VARCHAR",
}
_SPEC = {"job_cluster_key": "VARCHAR", "existing_cluster_id": "VARCHAR", "new_cluster": _CLUSTER}
_TASK_SHAPE = {
    "task_key": "VARCHAR",
    "attempt_number": "BIGINT",
    "start_time": "BIGINT",
    "end_time": "BIGINT",
    **_STATES,
    **_PHASES,
    **_SPEC,
    "environment_key": "VARCHAR",
    "cluster_instance": {"cluster_id": "VARCHAR"},
    "depends_on": [{"task_key": "VARCHAR"}],
    "run_if": "VARCHAR",
    "max_retries": "BIGINT",
    "timeout_seconds": "BIGINT",
}
_RUN_SHAPE = {
    "run_id": "BIGINT",
    "job_id": "BIGINT",
    "run_name": "VARCHAR",
    "run_type": "VARCHAR",
    "trigger": "VARCHAR",
    "creator_user_name": "VARCHAR",
    "start_time": "BIGINT",
    "end_time": "BIGINT",
    **_STATES,
    **_PHASES,
    "attempt_number": "BIGINT",
    "original_attempt_run_id": "BIGINT",
    "run_page_url": "VARCHAR",
    "cluster_spec": _SPEC,
    "cluster_instance": {"cluster_id": "VARCHAR"},
    "job_clusters": [{"job_cluster_key": "VARCHAR", "new_cluster": _CLUSTER}],
    "tasks": [_TASK_SHAPE],
}
_HISTORY_SHAPE = {
    "id": "BIGINT",
    "type": "VARCHAR",
    "start_time": "BIGINT",
    "end_time": "BIGINT",
    **_STATES,
    "task_run_ids": ["BIGINT"],
}
_ITERATION_SHAPE = {
    "run_id": "BIGINT",
    "task_key": "VARCHAR",
    "attempt_number": "BIGINT",
    "start_time": "BIGINT",
    "end_time": "BIGINT",
    **_STATES,
    **_PHASES,
    "cluster_instance": {"cluster_id": "VARCHAR"},
}


def _ts(expr: str) -> str:
    """Epoch milliseconds as TIMESTAMPTZ; 0 means "not yet" and becomes NULL."""
    return f"make_timestamptz(nullif({expr}, 0) * 1000)"


def _state_columns(o: str) -> dict[str, str]:
    active = (
        f"NOT (coalesce({o}.state.life_cycle_state IN {_TERMINAL_SQL}, false)"
        f" OR coalesce({o}.status.state = 'TERMINATED', false))"
    )
    return {
        "life_cycle_state": f"{o}.state.life_cycle_state",
        "result_state": f"{o}.state.result_state",
        "status_state": f"{o}.status.state",
        "termination_code": f"{o}.status.termination_details.code",
        "termination_type": f"{o}.status.termination_details.type",
        "state_message": f"coalesce(nullif({o}.status.termination_details.message, ''),"
        f" nullif({o}.state.state_message, ''))",
        "is_active": active,
    }


def _phase_columns(o: str) -> dict[str, str]:
    return {f"{p}_ms": f"{o}.{p}" for p in _PHASES}


def _duration(o: str, active: str) -> str:
    """Setup + execution + cleanup (missing ones 0); NULL while active."""
    return (
        f"CASE WHEN NOT ({active}) THEN coalesce({o}.setup_duration, 0)"
        f" + coalesce({o}.execution_duration, 0) + coalesce({o}.cleanup_duration, 0) END"
    )


_TERMINAL_SQL = "(" + ", ".join(f"'{s}'" for s in sorted(TERMINAL_LIFE_CYCLES)) + ")"


def _select(table: str, columns: Mapping[str, str]) -> str:
    """The SELECT list of a store table but its raw JSON, in column order."""
    names = [c for c in TABLES[table] if c != "raw"]
    missing = set(names) - set(columns)
    assert not missing, f"{table}: no expression for {sorted(missing)}"
    return ",\n    ".join(f"CAST({columns[c]} AS {TABLES[table][c]}) AS {c}" for c in names)


def _flatten_statements() -> list[str]:
    """Statements turning in_runs, in_tasks and in_iterations (a RunBatch's tables) into temp
    tables of the store's columns but raw (see FLATTENED). Parameters: $ws, the workspace id,
    and $at, the extraction time in epoch milliseconds."""
    run_states = _state_columns("r")
    run = {
        "workspace_id": "$ws",
        "run_id": "run_id",
        "job_id": "r.job_id",
        **{c: f"r.{c}" for c in ("run_name", "run_type", "trigger", "creator_user_name")},
        "start_time": _ts("r.start_time"),
        "end_time": _ts("r.end_time"),
        **run_states,
        **_phase_columns("r"),
        "duration_ms": f"CASE WHEN NOT ({run_states['is_active']}) THEN coalesce(r.run_duration,"
        " coalesce(r.setup_duration, 0) + coalesce(r.execution_duration, 0)"
        " + coalesce(r.cleanup_duration, 0)) END",
        "attempt_number": "r.attempt_number",
        "original_attempt_run_id": "r.original_attempt_run_id",
        "task_count": "task_count",
        "repair_count": "len(list_filter(coalesce(history, []), lambda h: h.type = 'REPAIR'))",
        "run_page_url": "r.run_page_url",
        "deleted_at": "NULL",
        "extracted_at": "make_timestamptz($at * 1000)",
    }
    history = {
        "workspace_id": "$ws",
        "job_run_id": "job_run_id",
        "repair_id": "repair_id",
        "type": "h.type",
        "start_time": _ts("h.start_time"),
        "end_time": _ts("h.end_time"),
        **_state_columns("h"),
        "task_run_ids": "coalesce(h.task_run_ids, [])",
    }
    task_states = _state_columns("s")
    task = {
        "workspace_id": "$ws",
        "run_id": "t.run_id",
        "job_run_id": "job_run_id",
        "job_id": "job_id",
        "task_key": "s.task_key",
        "attempt_number": "s.attempt_number",
        "repair_id": "o.repair_id",
        "start_time": _ts("s.start_time"),
        "end_time": _ts("s.end_time"),
        **_phase_columns("s"),
        "duration_ms": _duration("s", task_states["is_active"]),
        **task_states,
        "cluster_id": "CASE WHEN instance_set THEN s.cluster_instance.cluster_id"
        " WHEN t.run_id = job_run_id THEN run_instance_cluster_id END",
        "compute_kind": "kind",
        "job_cluster_key": "spec_job_cluster_key",
        "existing_cluster_id": "spec_existing_cluster_id",
        "environment_key": "s.environment_key",
        "node_type_id": "cluster.node_type_id",
        "driver_node_type_id": "coalesce(nullif(cluster.driver_node_type_id, ''),"
        " cluster.node_type_id)",
        "num_workers": "cluster.num_workers",
        "autoscale_min_workers": "cluster.autoscale.min_workers",
        "autoscale_max_workers": "cluster.autoscale.max_workers",
        "workers": "coalesce(cluster.num_workers, cluster.autoscale.max_workers)",
        "spark_version": "cluster.spark_version",
        "runtime_engine": "cluster.runtime_engine",
        "instance_pool_id": "cluster.instance_pool_id",
        "driver_instance_pool_id": "cluster.driver_instance_pool_id",
        "depends_on": "list_transform(coalesce(s.depends_on, []), lambda d: d.task_key)",
        "run_if": "s.run_if",
        "task_type": "task_type",
        "max_retries": "s.max_retries",
        "timeout_seconds": "s.timeout_seconds",
        "iteration_count": "iteration_count",
    }
    it_states = _state_columns("s")
    iteration = {
        "workspace_id": "$ws",
        "run_id": "s.run_id",
        "parent_task_run_id": "parent_task_run_id",
        "job_run_id": "job_run_id",
        "job_id": "job_id",
        "task_key": "s.task_key",
        "attempt_number": "s.attempt_number",
        "start_time": _ts("s.start_time"),
        "end_time": _ts("s.end_time"),
        **{k: v for k, v in _phase_columns("s").items() if k != "run_duration_ms"},
        "duration_ms": _duration("s", it_states["is_active"]),
        **it_states,
        "cluster_id": "s.cluster_instance.cluster_id",
    }
    no_compute = ", ".join(f"'{t}'" for t in sorted(NO_COMPUTE_TASK_TYPES))
    return [
        f"""CREATE OR REPLACE TEMP TABLE flat_parsed AS
SELECT pos, run_id, task_count, spec_set, spec_cluster_set,
    json_transform(raw, {_shape(_RUN_SHAPE)}) AS r,
    json_transform(history, {_shape([_HISTORY_SHAPE])}) AS history
FROM in_runs""",
        f"""CREATE OR REPLACE TEMP TABLE flat_runs AS
SELECT {_select("runs", run)}, pos AS run_pos
FROM flat_parsed""",
        # The history as the API gave it, or as implied_history knows it.
        f"""CREATE OR REPLACE TEMP TABLE flat_repair_history AS
SELECT {_select("repair_history", history)}, run_pos, item_pos
FROM (SELECT pos AS run_pos, run_id AS job_run_id, item_pos, coalesce(h.id, 0) AS repair_id, h
    FROM (SELECT pos, run_id, unnest(history) AS h, generate_subscripts(history, 1) AS item_pos
        FROM flat_parsed))""",
        # A task run's repair: the last history item naming it.
        """CREATE OR REPLACE TEMP TABLE flat_repair_of AS
SELECT run_pos, task_run_id, arg_max(repair_id, item_pos) AS repair_id
FROM (SELECT run_pos, item_pos, repair_id, unnest(task_run_ids) AS task_run_id
    FROM flat_repair_history)
GROUP BY run_pos, task_run_id""",
        # A task's compute is that of its own spec; a task naming none takes the run's
        # cluster_spec if the run has one, or if it is a single-task run of the old format
        # (the task run is the job run).
        f"""CREATE OR REPLACE TEMP TABLE flat_tasks AS
WITH listed AS (
    SELECT pos AS run_pos, run_id AS job_run_id, r.job_id,
        r.cluster_instance.cluster_id AS run_instance_cluster_id, r.job_clusters,
        r.cluster_spec AS run_spec, spec_set, spec_cluster_set AS run_cluster_set,
        unnest(r.tasks) AS s, generate_subscripts(r.tasks, 1) - 1 AS pos
    FROM flat_parsed
), parsed AS (
    SELECT t.run_pos, t.pos, t.run_id, t.task_type, t.own_spec, t.cluster_set, t.instance_set,
        t.iteration_count, l.s, l.job_run_id, l.job_id, l.run_instance_cluster_id,
        l.job_clusters, NOT t.own_spec AND (t.run_id = l.job_run_id OR l.spec_set) AS from_run,
        l.run_spec, l.run_cluster_set
    FROM in_tasks AS t JOIN listed AS l ON l.run_pos = t.run_pos AND l.pos = t.pos
), specified AS (
    SELECT *,
        CASE WHEN from_run THEN run_spec.job_cluster_key ELSE s.job_cluster_key END
            AS spec_job_cluster_key,
        CASE WHEN from_run THEN run_spec.existing_cluster_id ELSE s.existing_cluster_id END
            AS spec_existing_cluster_id,
        CASE WHEN from_run THEN run_cluster_set ELSE cluster_set END AS spec_cluster_set,
        CASE WHEN from_run THEN run_spec.new_cluster ELSE s.new_cluster END AS spec_new_cluster
    FROM parsed
), kinds AS (
    SELECT *,
        CASE WHEN coalesce(spec_job_cluster_key, '') <> '' THEN 'job_cluster'
            WHEN spec_cluster_set THEN 'new_cluster'
            WHEN coalesce(spec_existing_cluster_id, '') <> '' THEN 'existing_cluster'
            WHEN task_type IN ({no_compute}) THEN NULL
            ELSE 'serverless'
        END AS kind
    FROM specified
), clustered AS (
    SELECT *,
        CASE kind
            WHEN 'job_cluster' THEN list_filter(coalesce(job_clusters, []),
                lambda c: c.job_cluster_key = spec_job_cluster_key)[-1].new_cluster
            WHEN 'new_cluster' THEN spec_new_cluster
        END AS cluster
    FROM kinds
)
SELECT {_select("tasks", task)}, t.run_pos, t.pos AS task_pos
FROM clustered AS t
    LEFT JOIN flat_repair_of AS o ON o.run_pos = t.run_pos AND o.task_run_id = t.run_id""",
        f"""CREATE OR REPLACE TEMP TABLE flat_task_iterations AS
SELECT {_select("task_iterations", iteration)}, i.run_pos, i.task_pos, i.pos AS item_pos
FROM (SELECT run_pos, task_pos, pos, parent_task_run_id,
        json_transform(raw, {_shape(_ITERATION_SHAPE)}) AS s
    FROM in_iterations) AS i
    JOIN (SELECT pos, run_id AS job_run_id, r.job_id AS job_id FROM flat_parsed) AS p
        ON p.pos = i.run_pos""",
    ]


_FLATTEN_SQL = _flatten_statements()
_SCRATCH = ("flat_parsed", "flat_repair_of")

# Each store table: its flattened temp table, the input holding its raw JSON, and the columns
# that join them (and order the rows as given).
FLATTENED: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "runs": ("flat_runs", "in_runs", ("run_pos",), ("pos",)),
    "tasks": ("flat_tasks", "", ("run_pos", "task_pos"), ()),
    "repair_history": ("flat_repair_history", "", ("run_pos", "item_pos"), ()),
    "task_iterations": (
        "flat_task_iterations",
        "in_iterations",
        ("run_pos", "task_pos", "item_pos"),
        ("run_pos", "task_pos", "pos"),
    ),
}

# Enum columns checked against KNOWN_ENUMS once flattened.
_ENUM_COLUMNS = ("life_cycle_state", "result_state", "status_state", "termination_code")
_ENUM_CHECKS = {
    "flat_runs": (*_ENUM_COLUMNS, "run_type", "trigger"),
    "flat_tasks": _ENUM_COLUMNS,
    "flat_repair_history": _ENUM_COLUMNS,
    "flat_task_iterations": _ENUM_COLUMNS,
}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_UNKNOWN_SQL = " UNION ".join(
    f"SELECT DISTINCT '{column}', {column} FROM {table} WHERE {column} IS NOT NULL"
    f" AND {column} NOT IN ({', '.join(_quote(v) for v in sorted(KNOWN_ENUMS[column]))})"
    for table, columns in _ENUM_CHECKS.items()
    for column in columns
)


def flattened_rows(table: str, *, ordered: bool = False) -> str:
    """A query of `table`'s rows, in its column order, from what `flattened` made; `ordered`:
    in the order of the batch."""
    flat, source, keys, source_keys = FLATTENED[table]
    cols = ", ".join("i.raw AS raw" if c == "raw" else f"f.{c}" for c in TABLES[table])
    sql = f"SELECT {cols} FROM {flat} AS f"
    if source:
        on = " AND ".join(f"f.{k} = i.{s}" for k, s in zip(keys, source_keys, strict=True))
        sql += f" JOIN {source} AS i ON {on}"
    return sql + (" ORDER BY " + ", ".join(f"f.{k}" for k in keys) if ordered else "")


@contextlib.contextmanager
def flattened(
    con: duckdb.DuckDBPyConnection, batch: RunBatch, workspace_id: str
) -> Iterator[set[tuple[str, str]]]:
    """Flatten `batch` on `con`: within the block, `flattened_rows(table)` selects the rows of
    each run table. Yields the unknown fields and enum values seen."""
    inputs = {"in_runs": batch.runs, "in_tasks": batch.tasks, "in_iterations": batch.iterations}
    params = {"ws": workspace_id, "at": int(batch.extracted_at.timestamp() * 1000)}
    for name, table in inputs.items():
        con.register(name, table)
    try:
        for sql in _FLATTEN_SQL:
            con.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql})
        unknown = set(batch.unknown)
        unknown.update((str(n), str(v)) for n, v in con.execute(_UNKNOWN_SQL).fetchall())
        yield unknown
    finally:
        for name in inputs:
            con.unregister(name)
        for name in (*_SCRATCH, *(flat for flat, *_ in FLATTENED.values())):
            con.execute(f"DROP TABLE IF EXISTS {name}")


def flatten_runs(
    bundles: Iterable[RunBundle], workspace_id: str, extracted_at: datetime
) -> FlatRuns:
    """Flatten fully fetched runs into the four run tables, in the order given (duplicate
    run_ids: the last wins), on a private in-memory DuckDB."""
    batch = prepare_runs(bundles, extracted_at)
    con = duckdb.connect()
    try:
        with flattened(con, batch, workspace_id) as unknown:
            tables = {
                table: con.sql(flattened_rows(table, ordered=True))
                .to_arrow_table()
                .cast(arrow_schema(table))
                for table in FLATTENED
            }
    finally:
        con.close()
    return FlatRuns(**tables, unknown=unknown)


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
