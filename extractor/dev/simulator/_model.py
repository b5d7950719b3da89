"""The simulator's internal records: jobs, planned runs, task runs and repair segments.

Records hold a run's whole planned timeline in absolute epoch ms; what the API shows at a given
clock is derived from them elsewhere. Nothing here renders JSON or knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
RETENTION_MS = 60 * DAY_MS

TERMINAL_LIFE_CYCLES = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
STATUS_OF_LIFE_CYCLE = {
    "QUEUED": "QUEUED",
    "PENDING": "PENDING",
    "RUNNING": "RUNNING",
    "TERMINATING": "TERMINATING",
    "BLOCKED": "BLOCKED",
    "WAITING_FOR_RETRY": "WAITING",
    "TERMINATED": "TERMINATED",
    "SKIPPED": "TERMINATED",
    "INTERNAL_ERROR": "TERMINATED",
}
SUCCEEDED = frozenset({"SUCCESS", "SUCCESS_WITH_FAILURES"})
FAILED_RESULTS = frozenset({"FAILED", "TIMEDOUT"})
SKIPPED_RESULTS = frozenset(
    {
        "MAXIMUM_CONCURRENT_RUNS_REACHED",
        "EXCLUDED",
        "UPSTREAM_FAILED",
        "UPSTREAM_CANCELED",
        "DISABLED",
    }
)


@dataclass(slots=True)
class Outcome:
    """A terminal outcome: legacy state plus the status termination details."""

    life_cycle: str
    result: str | None
    code: str
    type: str
    message: str


@dataclass(slots=True)
class TaskDef:
    """One task of a job definition."""

    task_key: str
    type_key: str
    payload: dict[str, Any]
    compute: str  # job_cluster | new_cluster | existing_cluster | serverless | none
    job_cluster_key: str | None = None
    new_cluster: dict[str, Any] | None = None
    existing_cluster_id: str | None = None
    environment_key: str | None = None
    depends_on: tuple[tuple[str, str | None], ...] = ()
    run_if: str = "ALL_SUCCESS"
    max_retries: int = 0
    min_retry_interval_millis: int = 0
    retry_on_timeout: bool = False
    timeout_seconds: int = 0
    disabled: bool = False
    base_secs: int = 300
    fail_p: float = 0.03
    for_each: ForEachDef | None = None


@dataclass(slots=True)
class ForEachDef:
    """The nested task and fan-out of a for-each task."""

    inputs: str
    concurrency: int
    task: TaskDef
    min_items: int
    max_items: int


@dataclass(slots=True)
class JobDef:
    """A job (saved or hidden behind submit/workflow runs) and how it gets triggered."""

    job_id: int
    name: str
    creator: str
    run_as: str
    created_time: int
    shape: str  # multitask | legacy
    run_type: str  # JOB_RUN | SUBMIT_RUN | WORKFLOW_RUN
    trigger: str  # PERIODIC | ONE_TIME | FILE_ARRIVAL | CONTINUOUS
    listed: bool
    tasks: list[TaskDef]
    job_clusters: list[dict[str, Any]] = field(default_factory=list)
    period_ms: int = 0
    cron: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    parameters: list[dict[str, str]] = field(default_factory=list)
    environments: list[dict[str, Any]] = field(default_factory=list)
    max_concurrent_runs: int = 1
    queue: bool = True
    timeout_seconds: int = 0
    job_retries: int = 0
    job_retry_interval_ms: int = 0
    fail_scale: float = 1.0
    cancel_p: float = 0.01
    performance_target: str | None = None
    quota: int = 0
    via_run_job_task: bool = False  # runs are triggered by another job's run_job_task
    # scheduling state
    busy_until: int = 0
    last_trigger: int = 0


@dataclass(slots=True)
class TaskRun:
    """One task run (an attempt, a repair re-run, or a for-each iteration)."""

    run_id: int
    tdef: TaskDef
    attempt: int
    segment: int  # index into RunRec.segments
    appear: int
    start: int
    end: int
    setup: int
    execution: int
    cleanup: int
    outcome: Outcome
    cluster_id: str | None = None
    spark_context_id: str | None = None
    condition_outcome: str | None = None
    iterations: list[TaskRun] | None = None
    iteration_total: int = 0


@dataclass(slots=True)
class Segment:
    """The ORIGINAL execution of a run or one repair of it (repair_id 0 = ORIGINAL)."""

    repair_id: int
    start: int
    end: int
    outcome: Outcome
    task_run_ids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class RunRec:
    """A job run with its full planned timeline."""

    run_id: int
    job: JobDef
    trigger: str
    start: int
    queue_ms: int
    attempt: int
    original_attempt_run_id: int
    tasks: list[TaskRun]
    segments: list[Segment]
    skipped: bool = False
    cluster_id: str | None = None  # legacy single-task runs
    spark_context_id: str | None = None
    params: dict[str, str] | None = None
    trigger_run_id: int | None = None
    job_clusters: list[dict[str, Any]] | None = None

    @property
    def legacy(self) -> bool:
        return self.job.shape == "legacy"

    @property
    def planned_end(self) -> int:
        return self.segments[-1].end


class ApiError(Exception):
    """An error response: HTTP status, error_code (string or number) and message."""

    def __init__(self, status: int, error_code: str | int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message}
