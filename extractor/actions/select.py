"""Which runs an action is for, chosen from the store: failed runs to repair, active runs to
cancel, each with its failed tasks and their causes.

Reads the store only (one short read-only connection); never calls the API and never writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from extractor.actions.transient import failure_signature, is_transient
from extractor.schema import table_names
from extractor.store import Store, fetch_dicts

FAILED_RESULTS = ("FAILED", "TIMEDOUT")


@dataclass
class Failure:
    """One failed task run (or the run itself when no task failed) and its cause."""

    task_key: str | None
    task_run_id: int
    signature_id: str | None
    cause: str | None
    transient: bool


@dataclass
class Candidate:
    """A stored run an action may be for; `skip` says why it is not, when it is not."""

    run_id: int
    job_id: int | None
    job_name: str | None
    state: str
    failures: list[Failure] = field(default_factory=list)
    skip: str | None = None

    @property
    def transient(self) -> bool:
        return bool(self.failures) and all(f.transient for f in self.failures)

    @property
    def causes(self) -> list[str]:
        return sorted({f.cause for f in self.failures if f.cause})


_RUNS = (
    "SELECT r.run_id, r.job_id, j.name AS job_name, r.life_cycle_state, r.result_state,"
    " r.termination_code, r.state_message, r.is_active, r.deleted_at IS NOT NULL AS deleted,"
    " r.end_time, r.start_time, coalesce(r.attempt_number, 0) AS attempt,"
    " (SELECT max(o.run_id) FROM runs AS o WHERE o.workspace_id = r.workspace_id"
    "   AND coalesce(o.original_attempt_run_id, o.run_id)"
    "     = coalesce(r.original_attempt_run_id, r.run_id)"
    "   AND coalesce(o.attempt_number, 0) > coalesce(r.attempt_number, 0)) AS later_attempt"
    " FROM runs AS r LEFT JOIN jobs AS j ON j.workspace_id = r.workspace_id AND j.job_id = r.job_id"
    " WHERE r.workspace_id = ?"
)


def failed_runs(
    store: Store,
    workspace_id: str,
    *,
    run_ids: Sequence[int] = (),
    failed_since: datetime | None = None,
    job_ids: Sequence[int] = (),
    cause: str | None = None,
    transient_only: bool = False,
) -> list[Candidate]:
    """Runs to repair: terminal, failed or timed out, not deleted, the latest attempt of their
    logical run. Explicit run ids come back whatever they are, with `skip` set if they fail
    those rules; the other filters narrow the selection the same way for both."""
    where, params = _filters(run_ids, job_ids)
    if not run_ids:
        where += (
            " AND NOT r.is_active AND r.deleted_at IS NULL"
            " AND (r.result_state IN ('FAILED', 'TIMEDOUT') OR r.life_cycle_state = 'INTERNAL_ERROR')"
        )
    if failed_since is not None:
        where += " AND r.end_time >= ?"
        params.append(failed_since)
    with store.connect(read_only=True) as con:
        rows = fetch_dicts(
            con, _RUNS + where + " ORDER BY r.end_time, r.run_id", [workspace_id, *params]
        )
        failures = _failures(con, workspace_id, [int(r["run_id"]) for r in rows])
    out: list[Candidate] = []
    for c, row in _with_missing(run_ids, rows):
        if row is not None:
            c.failures = failures.get(c.run_id) or [_run_failure(row)]
            c.skip = _not_repairable(row)
        out.append(c)
    if cause:
        wanted = cause.lower()
        for c in out:
            if c.skip is None and not any(
                f.signature_id == wanted or wanted in (f.cause or "").lower() for f in c.failures
            ):
                c.skip = f"no failure with cause {cause}"
    if transient_only:
        for c in out:
            if c.skip is None and not c.transient:
                c.skip = "not every failure is transient"
    return [c for c in out if c.skip is None or c.run_id in run_ids]


def active_runs(
    store: Store,
    workspace_id: str,
    *,
    run_ids: Sequence[int] = (),
    job_ids: Sequence[int] = (),
    stuck: bool = False,
) -> list[Candidate]:
    """Runs to cancel: active and not deleted (with `stuck`, those of the stuck_runs view)."""
    where, params = _filters(run_ids, job_ids)
    if not run_ids:
        where += " AND r.is_active AND r.deleted_at IS NULL"
    with store.connect(read_only=True) as con:
        if stuck:
            if "stuck_runs" not in _views(con):
                raise_missing_views()
            where += " AND r.run_id IN (SELECT run_id FROM stuck_runs WHERE workspace_id = ?)"
            params.append(workspace_id)
        rows = fetch_dicts(
            con, _RUNS + where + " ORDER BY r.start_time, r.run_id", [workspace_id, *params]
        )
    out: list[Candidate] = []
    for c, row in _with_missing(run_ids, rows):
        if row is not None and row["deleted"]:
            c.skip = "deleted"
        elif row is not None and not row["is_active"]:
            c.skip = f"already finished ({c.state})"
        out.append(c)
    return out


def raise_missing_views() -> None:
    from extractor.errors import UsageError

    raise UsageError("the store has no stuck_runs view yet: run `jobruns extract` first")


# -- helpers ---------------------------------------------------------------------------------


def _filters(run_ids: Sequence[int], job_ids: Sequence[int]) -> tuple[str, list[Any]]:
    where, params = "", list[Any]()
    if run_ids:
        where += f" AND r.run_id IN ({', '.join('?' for _ in run_ids)})"
        params.extend(int(r) for r in run_ids)
    if job_ids:
        where += f" AND r.job_id IN ({', '.join('?' for _ in job_ids)})"
        params.extend(int(j) for j in job_ids)
    return where, params


def _with_missing(
    run_ids: Sequence[int], rows: list[dict[str, Any]]
) -> list[tuple[Candidate, dict[str, Any] | None]]:
    """A candidate per stored row, with the row; and one per explicit id the store lacks."""
    found = {int(r["run_id"]): r for r in rows}
    out: list[tuple[Candidate, dict[str, Any] | None]] = [
        (
            Candidate(int(rid), None, None, "?", skip="not in the store (run `jobruns extract`)"),
            None,
        )
        for rid in run_ids
        if int(rid) not in found
    ]
    for rid, row in found.items():
        state = row["result_state"] or row["life_cycle_state"] or "?"
        out.append((Candidate(rid, row["job_id"], row["job_name"], str(state)), row))
    return out


def _not_repairable(row: dict[str, Any]) -> str | None:
    if row["deleted"]:
        return "deleted"
    if row["is_active"]:
        return "active"
    if row["result_state"] not in FAILED_RESULTS and row["life_cycle_state"] != "INTERNAL_ERROR":
        return f"not failed ({row['result_state'] or row['life_cycle_state']})"
    if row["later_attempt"] is not None:
        return f"a later attempt exists (run {row['later_attempt']})"
    return None


def _run_failure(row: dict[str, Any]) -> Failure:
    sig = failure_signature(None, row["state_message"], row["termination_code"])
    return Failure(
        None,
        int(row["run_id"]),
        sig.id if sig else None,
        sig.title if sig else None,
        is_transient(sig, row["termination_code"], has_error_text=False),
    )


def _failures(con: Any, workspace_id: str, run_ids: list[int]) -> dict[int, list[Failure]]:
    """The failed latest attempt of each task of each run, with its cause: from task_errors
    (error texts signed by the failures work) when the store has it, else from the state."""
    if not run_ids:
        return {}
    marks = ", ".join("?" for _ in run_ids)
    errors = "task_errors" in table_names(con)
    join = (
        " LEFT JOIN task_errors AS e ON e.run_id = t.run_id AND e.job_run_id = t.job_run_id"
        if errors
        else ""
    )
    cols = ", e.signature, e.error" if errors else ", NULL AS signature, NULL AS error"
    rows = fetch_dicts(
        con,
        "SELECT t.job_run_id, t.run_id, t.task_key, t.termination_code, t.state_message"
        + cols
        + " FROM tasks AS t"
        + join
        + f" WHERE t.workspace_id = ? AND t.job_run_id IN ({marks})"
        " AND (t.result_state IN ('FAILED', 'TIMEDOUT') OR t.life_cycle_state = 'INTERNAL_ERROR')"
        " AND NOT EXISTS (SELECT 1 FROM tasks AS l WHERE l.workspace_id = t.workspace_id"
        "   AND l.job_run_id = t.job_run_id AND l.task_key = t.task_key"
        "   AND (l.attempt_number > t.attempt_number"
        "     OR (l.attempt_number = t.attempt_number AND l.start_time > t.start_time)))"
        " ORDER BY t.job_run_id, t.task_key",
        [workspace_id, *run_ids],
    )
    out: dict[int, list[Failure]] = {}
    for r in rows:
        sig = failure_signature(r["error"], r["state_message"], r["termination_code"])
        sig_id = r["signature"] or (sig.id if sig else None)
        has_text = bool(r["error"])
        out.setdefault(int(r["job_run_id"]), []).append(
            Failure(
                r["task_key"],
                int(r["run_id"]),
                sig_id,
                sig.title if sig else None,
                is_transient(sig, r["termination_code"], has_error_text=has_text),
            )
        )
    return out


def _views(con: Any) -> set[str]:
    rows = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    return {str(r[0]) for r in rows}
