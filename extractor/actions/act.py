"""The plan of an action and its execution: re-read each selected run, decide from its current
state, send the write requests (only when told to), record every one in `actions`, and store
the runs it changed at once.

Never sends a write request from `plan()`; never retries a repair whose fate is unknown without
re-reading the run first; never raises for one run's API error (each is reported in its step).
"""

from __future__ import annotations

import getpass
import json
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa

from extractor.actions.select import Candidate
from extractor.client import JobsClient
from extractor.errors import (
    ApiError,
    NotFoundError,
    PermissionDeniedError,
    UncertainWriteError,
)
from extractor.extract import complete_run
from extractor.flatten import arrow_schema, is_active, prepare_runs
from extractor.store import Store, insert_arrow

Action = Literal["repair", "cancel"]
# Outcomes of a step: planned (dry run), done, skipped (nothing to do, or the API said the run
# changed meanwhile), failed (an error the user must look at: forbidden, an outage).
Status = Literal["planned", "done", "skipped", "failed"]


@dataclass
class Step:
    """One run of a plan, as the fresh read found it, and what became of it."""

    action: Action
    candidate: Candidate
    status: Status = "planned"
    message: str = ""
    latest_repair_id: int | None = None
    repair_id: int | None = None

    @property
    def run_id(self) -> int:
        return self.candidate.run_id

    @property
    def done(self) -> bool:
        return self.status == "done"


def plan(client: JobsClient, action: Action, candidates: Iterable[Candidate]) -> list[Step]:
    """Re-read every candidate with runs/get and decide on its current state (GETs only)."""
    steps: list[Step] = []
    for c in candidates:
        step = Step(action, c)
        steps.append(step)
        if c.skip is not None:
            step.status, step.message = "skipped", c.skip
            continue
        try:
            run = client.get_run(c.run_id)
        except ApiError as exc:
            step.status, step.message = _api_failure(exc, c, "read")
            continue
        c.job_id = c.job_id if c.job_id is not None else run.get("job_id")
        reason = _why_not(action, run)
        if reason is not None:
            step.status, step.message = "skipped", reason
        step.latest_repair_id = latest_repair_id(run)
    return steps


def execute(
    client: JobsClient,
    store: Store,
    workspace_id: str,
    steps: list[Step],
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[Step]:
    """Send the write request of every planned step, record each, store the changed runs."""
    changed: list[int] = []
    records: list[dict[str, Any]] = []
    for step in steps:
        if step.status != "planned":
            continue
        request, response, error = _send(client, step)
        records.append(_record(client, workspace_id, step, request, response, error, now()))
        if step.done:
            changed.append(step.run_id)
    refresh_runs(client, store, workspace_id, changed, now())
    if records:
        _store_records(store, records)
    return steps


def cancel_all(
    client: JobsClient,
    store: Store,
    workspace_id: str,
    job_id: int,
    active_run_ids: list[int],
    *,
    queued: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[str, str | None]:
    """runs/cancel-all of one job; records it and re-reads the job's active runs.
    Returns (outcome, error message or None)."""
    request: dict[str, Any] = {"job_id": job_id, **({"all_queued_runs": True} if queued else {})}
    step = Step("cancel", Candidate(0, job_id, None, "ACTIVE"))
    response: dict[str, Any] | None = None
    error: str | None = None
    try:
        response = client.cancel_all_runs(job_id, all_queued_runs=queued)
        step.status = "done"
    except ApiError as exc:
        step.status, error = _api_failure(exc, step.candidate, "cancel")
    record = _record(client, workspace_id, step, request, response, error, now())
    record["run_id"], record["action"] = None, "cancel-all"
    if step.done:
        refresh_runs(client, store, workspace_id, active_run_ids, now())
    _store_records(store, [record])
    return step.status, error


def refresh_runs(
    client: JobsClient, store: Store, workspace_id: str, run_ids: list[int], at: datetime
) -> None:
    """Re-read runs and replace them in the store, so `jobruns status` shows them as they are."""
    bundles = []
    for rid in run_ids:
        try:
            bundles.append(complete_run(client, client.get_run(rid)))
        except ApiError:
            continue  # the next extract reads it; the action itself is recorded already
    if bundles:
        with store.transaction() as con:
            store.upsert_runs(con, workspace_id, prepare_runs(bundles, at))


def latest_repair_id(run: dict[str, Any]) -> int | None:
    """The id of the run's latest REPAIR (runs/get?include_history=true), None if never repaired."""
    ids = [
        int(item["id"])
        for item in run.get("repair_history") or []
        if item.get("type") == "REPAIR" and item.get("id") is not None
    ]
    return max(ids) if ids else None


# -- helpers ---------------------------------------------------------------------------------


def _active(run: dict[str, Any]) -> bool:
    state = (run.get("state") or {}).get("life_cycle_state")
    status = (run.get("status") or {}).get("state")
    return is_active(state, status)


def _why_not(action: Action, run: dict[str, Any]) -> str | None:
    state = run.get("state") or {}
    shown = state.get("result_state") or state.get("life_cycle_state") or "?"
    if action == "cancel":
        return None if _active(run) else f"already finished ({shown}) when re-read"
    if _active(run):
        return "active now (repaired or re-run meanwhile)"
    if state.get("result_state") not in ("FAILED", "TIMEDOUT") and (
        state.get("life_cycle_state") != "INTERNAL_ERROR"
    ):
        return f"no longer failed ({shown}) when re-read"
    return None


def _send(
    client: JobsClient, step: Step
) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    rid = step.run_id
    if step.action == "cancel":
        request: dict[str, Any] = {"run_id": rid}
        try:
            response = client.cancel_run(rid)
        except ApiError as exc:
            step.status, step.message = _api_failure(exc, step.candidate, "cancel")
            return request, None, step.message
        step.status, step.message = "done", "cancel requested"
        return request, response, None
    request = {"run_id": rid, "rerun_all_failed_tasks": True, "rerun_dependent_tasks": True}
    if step.latest_repair_id:
        request["latest_repair_id"] = step.latest_repair_id
    try:
        response = client.repair_run(rid, latest_repair_id=step.latest_repair_id)
    except UncertainWriteError as exc:
        return request, None, _settle(client, step, exc)
    except ApiError as exc:
        step.status, step.message = _api_failure(exc, step.candidate, "repair")
        return request, None, step.message
    step.status = "done"
    step.repair_id = _int(response.get("repair_id"))
    step.message = f"repair {step.repair_id} started"
    return request, response, None


def _settle(client: JobsClient, step: Step, exc: UncertainWriteError) -> str:
    """A repair request timed out or got a 5xx: re-read the run to learn whether it happened."""
    try:
        run = client.get_run(step.run_id)
    except ApiError as again:
        step.status = "failed"
        step.message = f"repair may have been applied ({exc}); re-reading the run failed: {again}"
        return step.message
    now_id = latest_repair_id(run)
    if now_id != step.latest_repair_id or _active(run):
        step.status, step.repair_id = "done", now_id
        step.message = f"repair {now_id} started (the answer was lost; confirmed by re-reading)"
        return str(exc)
    step.status = "failed"
    step.message = f"repair not applied (the run is unchanged after: {exc}); run the command again"
    return step.message


def _api_failure(exc: ApiError, c: Candidate, verb: str) -> tuple[Status, str]:
    job = f"job {c.job_id}" if c.job_id is not None else "its job"
    if isinstance(exc, PermissionDeniedError):
        need = "CAN VIEW" if verb == "read" else "CAN MANAGE RUN"
        return "failed", f"permission denied: the token lacks {need} on {job} ({exc})"
    if isinstance(exc, NotFoundError):
        return "skipped", f"no longer exists in the workspace ({exc})"
    if (
        exc.status == 400
        and verb != "read"
        and (exc.error_code == "INVALID_STATE" or "repair" in str(exc).lower())
    ):
        # A stale latest_repair_id, a run active again: the run changed since it was read.
        return "skipped", f"refused by the API (changed meanwhile?), not {verb}ed: {exc}"
    return "failed", f"{verb} failed: {exc}"


def _record(
    client: JobsClient,
    workspace_id: str,
    step: Step,
    request: dict[str, Any],
    response: dict[str, Any] | None,
    error: str | None,
    at: datetime,
) -> dict[str, Any]:
    outcome = {"done": "done", "skipped": "refused"}.get(step.status, "failed")
    return {
        "action_id": str(uuid.uuid4()),
        "at": at,
        "action": step.action,
        "workspace_id": workspace_id,
        "host": client.host,
        "job_id": step.candidate.job_id,
        "run_id": step.run_id,
        "request": json.dumps(request, sort_keys=True),
        "response": None if response is None else json.dumps(response, sort_keys=True),
        "error": error,
        "outcome": outcome,
        "repair_id": step.repair_id,
        "actor": _actor(),
    }


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _store_records(store: Store, records: list[dict[str, Any]]) -> None:
    with store.transaction() as con:
        insert_arrow(con, "actions", pa.Table.from_pylist(records, schema=arrow_schema("actions")))


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
