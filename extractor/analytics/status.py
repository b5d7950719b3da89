"""What a store holds and how fresh it is: rows per table, watermarks, last extracts.

Read-only: it opens the store read-only and never changes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from extractor.analytics.report import cost_coverage, coverage_line
from extractor.schema import TABLES
from extractor.store import fetch_dicts, open_connection


@dataclass
class StoreStatus:
    path: Path
    rows: dict[str, int]
    workspaces: list[dict[str, Any]] = field(default_factory=list)
    last_extracts: list[dict[str, Any]] = field(default_factory=list)
    active_runs: int = 0
    deleted_runs: int = 0
    # How terminal runs got their cost (see report.cost_coverage); None before views exist.
    cost_coverage: dict[str, Any] | None = None
    # The latest alerts of `jobruns alerts`, per destination (masked), and how many wait.
    recent_alerts: list[dict[str, Any]] = field(default_factory=list)
    pending_alerts: int = 0

    @property
    def last_success_at(self) -> datetime | None:
        stamps = [w["last_success_at"] for w in self.workspaces if w["last_success_at"]]
        return min(stamps) if stamps else None


def read_status(path: Path) -> StoreStatus:
    con = open_connection(path, read_only=True)
    try:
        existing = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        rows = {}
        for table in TABLES:
            if table in existing:
                count = con.execute(f"SELECT count(*) FROM {table}").fetchone()
                rows[table] = int(count[0]) if count else 0
        status = StoreStatus(path=path, rows=rows)
        if "extract_state" in existing:
            status.workspaces = fetch_dicts(
                con,
                "SELECT workspace_id, host, watermark, last_extract_at, last_success_at,"
                " last_rescan_at, last_repair_sweep_at FROM extract_state ORDER BY workspace_id",
            )
        if "extract_log" in existing:
            status.last_extracts = fetch_dicts(
                con,
                "SELECT workspace_id, started_at, status, runs_new, runs_changed,"
                " runs_refreshed, runs_deleted, requests, duration_ms, rescan"
                " FROM extract_log ORDER BY started_at DESC LIMIT 5",
            )
        if "alert_log" in existing:
            status.recent_alerts = fetch_dicts(
                con,
                "SELECT fired_at, rule, severity, destination, status, sent_at, error,"
                " json_extract_string(alert, '$.title') AS title"
                " FROM alert_log ORDER BY fired_at DESC, key LIMIT 5",
            )
            pending = con.execute(
                "SELECT count(*) FROM alert_log WHERE status <> 'sent'"
            ).fetchone()
            status.pending_alerts = int(pending[0]) if pending else 0
        if "runs" in existing:
            counts = con.execute(
                "SELECT count(*) FILTER (WHERE is_active AND deleted_at IS NULL),"
                " count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM runs"
            ).fetchone()
            if counts:
                status.active_runs, status.deleted_runs = int(counts[0]), int(counts[1])
        if "int_run_facts" in existing:
            status.cost_coverage = cost_coverage(con)
        return status
    finally:
        con.close()


def _fmt(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S %Z")
    return "-" if value is None else str(value)


def render_status(status: StoreStatus, fmt: str, echo: Callable[[str], None]) -> None:
    if fmt == "json":
        payload = {
            "path": str(status.path),
            "rows": status.rows,
            "active_runs": status.active_runs,
            "deleted_runs": status.deleted_runs,
            "workspaces": status.workspaces,
            "last_extracts": status.last_extracts,
            "cost_coverage": status.cost_coverage,
            "recent_alerts": status.recent_alerts,
            "pending_alerts": status.pending_alerts,
        }
        echo(json.dumps(payload, default=str, indent=2))
        return
    echo(f"store: {status.path}")
    echo("rows: " + ", ".join(f"{t} {n:,}" for t, n in status.rows.items()))
    echo(f"active runs: {status.active_runs:,}; deleted runs kept: {status.deleted_runs:,}")
    if status.cost_coverage is not None:
        echo(coverage_line(status.cost_coverage))
    for w in status.workspaces:
        echo(
            f"workspace {w['workspace_id']} ({w['host']}): watermark {_fmt(w['watermark'])}, "
            f"last extract {_fmt(w['last_extract_at'])}, last success {_fmt(w['last_success_at'])}, "
            f"last rescan {_fmt(w['last_rescan_at'])}"
        )
    for e in status.last_extracts:
        echo(
            f"  {_fmt(e['started_at'])} {e['status']}: {e['runs_new']} new, {e['runs_changed']} changed, "
            f"{e['runs_refreshed']} refreshed, {e['runs_deleted']} deleted, {e['requests']} requests, "
            f"{(e['duration_ms'] or 0) / 1000:.1f} s{' (rescan)' if e['rescan'] else ''}"
        )
    if status.recent_alerts:
        echo(f"alerts: {status.pending_alerts:,} pending delivery; latest:")
    for a in status.recent_alerts:
        state = a["status"] if a["status"] != "failed" else f"failed ({a['error']})"
        echo(
            f"  {_fmt(a['fired_at'])} {a['severity']} {a['rule']}: {a['title']} "
            f"-> {a['destination']} {state}"
        )
