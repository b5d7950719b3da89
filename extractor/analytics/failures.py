"""Signing stored task errors: the signature columns of `task_errors`, at capture and after.

`signature_columns` is what the extract calls for each captured error; `resign_errors` is the
migration that recomputes rows signed by another SIGNATURE_VERSION (or not signed at all). It
never fetches anything and never changes the captured texts.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from extractor.analytics.signatures import SIGNATURE_VERSION, sign


def signature_columns(
    error: str | None,
    error_trace: str | None,
    state_message: str | None,
    termination_code: str | None,
    result_state: str | None,
) -> dict[str, Any]:
    """signature, title, error_class and signature_version of one failed task run.

    `error` is what runs/get-output said (None when it said nothing: then the state message is
    the cause); a timed-out task is signed as a timeout whatever its termination code."""
    code = "TIMEDOUT" if result_state == "TIMEDOUT" else termination_code
    found = sign(error, error_trace, state_message, code)
    return {
        "signature": None if found is None else found.id,
        "title": None if found is None else found.title,
        "error_class": None if found is None else found.error_class,
        "signature_version": SIGNATURE_VERSION,
    }


def resign_errors(con: duckdb.DuckDBPyConnection) -> int:
    """Re-sign every stored error whose signature_version is not the current one; returns how
    many rows changed. Run in a write transaction (pipeline does, before the views)."""
    rows = con.execute(
        "SELECT workspace_id, run_id, error, error_trace, state_message, termination_code,"
        " result_state FROM task_errors WHERE signature_version IS DISTINCT FROM ?",
        [SIGNATURE_VERSION],
    ).fetchall()
    if not rows:
        return 0
    signed: dict[str, list[Any]] = {
        k: [] for k in ("workspace_id", "run_id", "signature", "title", "error_class")
    }
    for ws, run_id, error, trace, state, code, result in rows:
        # The error column holds the state message when the output had no error of its own.
        own = None if error == state else error
        cols = signature_columns(own, trace, state, code, result)
        for k, v in (("workspace_id", ws), ("run_id", run_id), *cols.items()):
            if k in signed:
                signed[k].append(v)
    con.register("resigned", pa.table(signed))
    try:
        con.execute(
            "UPDATE task_errors SET signature = r.signature, title = r.title,"
            " error_class = r.error_class, signature_version = ? FROM resigned AS r"
            " WHERE task_errors.workspace_id = r.workspace_id AND task_errors.run_id = r.run_id",
            [SIGNATURE_VERSION],
        )
    finally:
        con.unregister("resigned")
    return len(rows)
