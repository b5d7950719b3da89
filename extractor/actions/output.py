"""What a task run left behind: its error and trace (from the store, else runs/get-output) and
its notebook views (runs/export), saved as HTML files.

Reads only: never sends a write request and never writes to the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from extractor.client import JobsClient
from extractor.schema import table_names
from extractor.store import Store


@dataclass
class TaskOutput:
    """The failure texts of one task run and where they came from ('store' or 'api')."""

    task_run_id: int
    error: str | None
    error_trace: str | None
    state_message: str | None
    source: str


def task_output(
    store: Store | None, workspace_id: str | None, client: JobsClient | None, task_run_id: int
) -> TaskOutput:
    """The store's error of the task run (task_errors, when that table exists) if it has one,
    else the API's runs/get-output; the stored state message is kept either way."""
    state: str | None = None
    if store is not None and workspace_id is not None and store.path.exists():
        with store.connect(read_only=True) as con:
            row = con.execute(
                "SELECT state_message FROM tasks WHERE workspace_id = ? AND run_id = ?",
                [workspace_id, task_run_id],
            ).fetchone()
            state = row[0] if row else None
            if "task_errors" in table_names(con):
                err = con.execute(
                    "SELECT error FROM task_errors WHERE run_id = ? LIMIT 1", [task_run_id]
                ).fetchone()
                if err and err[0]:
                    return TaskOutput(task_run_id, str(err[0]), None, state, "store")
    if client is None:
        return TaskOutput(task_run_id, None, None, state, "store")
    body = client.get_run_output(task_run_id)
    meta = body.get("metadata") or {}
    if state is None:
        state = (meta.get("state") or {}).get("state_message") or None
    return TaskOutput(task_run_id, body.get("error"), body.get("error_trace"), state, "api")


def export_views(client: JobsClient, task_run_id: int, views: str, directory: Path) -> list[Path]:
    """runs/export of the task run, each view written to DIR as `<run>-<n>-<name>.html`."""
    body = client.export_run(task_run_id, views)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for n, view in enumerate(body.get("views") or [], start=1):
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(view.get("name") or "view")).strip("_")
        path = directory / f"{task_run_id}-{n}-{name or 'view'}.html"
        path.write_text(str(view.get("content") or ""), encoding="utf-8")
        written.append(path)
    return written
