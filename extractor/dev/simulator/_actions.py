"""The write side of the simulated Jobs API: runs/repair, runs/cancel, runs/cancel-all, and the
per-run read that goes with acting (runs/export; runs/get-output is the workspace's own).

Each function takes the Workspace and the request (JSON body or query) and answers like the
real endpoint, or raises ApiError with its status and error code. Messages marked (A) in the
comments are our assumption: Databricks documents the codes, not every message text.
"""

from __future__ import annotations

import html
import random
from collections.abc import Mapping
from typing import Any, Protocol

from ._model import ApiError, JobDef, Outcome, RunRec, TaskRun
from ._planner import is_failure, latest_by_key, truncate
from ._render import run_view


class Workspace(Protocol):
    """What the actions use of the workspace (extractor.dev.simulator.workspace.Workspace)."""

    now_ms: int
    rng: random.Random
    jobs: dict[int, JobDef]
    runs: dict[int, RunRec]

    def api_get_run(self, params: Mapping[str, str]) -> dict[str, Any]: ...

    def repair_run(self, run_id: int, at_ms: int | None = None) -> int: ...

    def task_run(self, run_id: int) -> TaskRun | None: ...

    def forget_task_run(self, run_id: int) -> None: ...


CANCELED = Outcome("TERMINATED", "CANCELED", "USER_CANCELED", "SUCCESS", "Run canceled by user.")
VIEWS = ("CODE", "DASHBOARDS", "ALL")


def _error(status: int, code: str, message: str) -> Exception:
    return ApiError(status, code, message)


def _invalid(message: str) -> Exception:
    return _error(400, "INVALID_PARAMETER_VALUE", message)


def _run_id(body: Mapping[str, Any]) -> int:
    value = body.get("run_id")
    if value is None or value == "":
        raise _invalid("Missing required field: run_id")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _invalid(f"Invalid value for run_id: {value!r} is not an integer.") from None


def _job_run(ws: Workspace, run_id: int) -> RunRec:
    run = ws.runs.get(run_id)
    if run is None:
        raise _invalid(f"Run {run_id} does not exist.")
    return run


def repair(ws: Workspace, body: Mapping[str, Any]) -> dict[str, Any]:
    """POST /api/2.2/jobs/runs/repair -> {repair_id}: re-run the failed tasks of a finished run."""
    run_id = _run_id(body)
    run = _job_run(ws, run_id)
    rerun_all = bool(body.get("rerun_all_failed_tasks"))
    if rerun_all and body.get("rerun_tasks"):
        raise _invalid("Only one of rerun_tasks or rerun_all_failed_tasks can be specified.")
    if not rerun_all:
        # The simulator re-runs failed tasks only; naming tasks is not modelled.
        raise _invalid("rerun_all_failed_tasks must be true (rerun_tasks is not simulated).")
    if run_view(run, ws.now_ms).active:
        raise _error(
            400, "INVALID_STATE", f"Run {run_id} is still in progress and cannot be repaired."
        )  # (A)
    if run.legacy or run.skipped:
        raise _error(
            400, "INVALID_STATE", f"Run {run_id} is not a multitask job run and cannot be repaired."
        )  # (A)
    latest_repair = run.segments[-1].repair_id
    given = body.get("latest_repair_id")
    given_id = int(given) if given not in (None, "") else 0
    if given_id != latest_repair:
        # The API refuses a repair based on a stale view of the run (RepairRun.latest_repair_id).
        raise _error(
            400,
            "INVALID_STATE",
            f"The latest repair id of run {run_id} is {latest_repair}, not {given_id}: "
            "the run was repaired since it was read.",
        )  # (A)
    latest = latest_by_key(run.tasks)
    if not any(
        is_failure(t.outcome) or t.outcome.result in ("CANCELED", "UPSTREAM_FAILED")
        for t in latest.values()
    ):
        raise _error(400, "INVALID_STATE", f"Run {run_id} has no failed tasks to repair.")  # (A)
    return {"repair_id": ws.repair_run(run_id)}


def cancel(ws: Workspace, body: Mapping[str, Any]) -> dict[str, Any]:
    """POST /api/2.2/jobs/runs/cancel -> {}: the run ends CANCELED a moment later."""
    run = _job_run(ws, _run_id(body))
    cancel_run(ws, run)
    return {}


def cancel_all(ws: Workspace, body: Mapping[str, Any]) -> dict[str, Any]:
    """POST /api/2.2/jobs/runs/cancel-all -> {}: every active run of a job, or every queued run."""
    raw = body.get("job_id")
    job_id = None if raw in (None, "") else int(raw)
    if job_id is None and not body.get("all_queued_runs"):
        raise _invalid("Either job_id or all_queued_runs must be specified.")  # (A)
    if job_id is not None and job_id not in ws.jobs:
        raise _invalid(f"Job {job_id} does not exist.")
    for run in list(ws.runs.values()):
        view = run_view(run, ws.now_ms)
        wanted = view.queued if job_id is None else run.job.job_id == job_id
        if view.active and wanted:
            cancel_run(ws, run)
    return {}


def cancel_run(ws: Workspace, run: RunRec) -> None:
    """Stop an active run now: running tasks end CANCELED, later ones never start. A finished
    run is left as it is (cancelling it is a no-op, (A))."""
    now = ws.now_ms
    if not run_view(run, now).active:
        return
    seg = run.segments[-1]
    index = len(run.segments) - 1
    current = [t for t in run.tasks if t.segment == index]
    before = {t.run_id for t in current}
    truncate(current, now, "cancel")
    for t in current:
        t.appear = min(t.appear, t.start)
    run.tasks = [t for t in run.tasks if t.segment != index] + current
    for gone in before - {t.run_id for t in current}:
        ws.forget_task_run(gone)
    seg.task_run_ids = [t.run_id for t in current]
    # Cancellation is asynchronous: the run shows TERMINATING-like activity a moment longer.
    seg.end = now + ws.rng.randint(500, 3000)
    seg.outcome = CANCELED


def export(ws: Workspace, params: Mapping[str, str]) -> dict[str, Any]:
    """GET /api/2.2/jobs/runs/export -> {views: [{content, name, type}]} of a notebook task run."""
    run_id = _run_id(params)
    which = params.get("views_to_export") or "CODE"
    if which not in VIEWS:
        raise _invalid(f"Invalid views_to_export: {which}. Expected one of CODE, DASHBOARDS, ALL.")
    task = ws.task_run(run_id)
    if task is None:
        raise _invalid(f"Run {run_id} does not exist.")
    tdef = task.tdef
    if tdef.type_key != "notebook_task":
        raise _invalid(f"Run {run_id} is not a notebook task run: only notebooks can be exported.")
    if which == "DASHBOARDS":
        return {"views": []}
    path = str(tdef.payload.get("notebook_path", tdef.task_key))
    name = path.rsplit("/", 1)[-1]
    content = (
        f"<html><head><title>{html.escape(name)}</title></head><body>"
        f"<h1>{html.escape(path)}</h1><p>task {html.escape(tdef.task_key)}, run {run_id}: "
        f"{html.escape(task.outcome.result or 'RUNNING')}</p></body></html>"
    )
    return {"views": [{"content": content, "name": name, "type": "NOTEBOOK"}]}
