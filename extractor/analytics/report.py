"""The Monday report and ad-hoc queries, read from the analytics views.

`build_report` gathers the answers as plain data; the render_* functions only format them.
`run_query` runs one read-only statement. Nothing here writes to the store.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import duckdb
from rich.console import Console
from rich.table import Table

from extractor.errors import UsageError
from extractor.store import fetch_dicts

Row = dict[str, Any]
QueryFormat = Literal["table", "csv", "json", "parquet"]

TOP = 10

# Statement types `jobruns query` accepts: SELECT covers WITH, DESCRIBE, SHOW, SUMMARIZE and FROM.
READ_ONLY_STATEMENTS = frozenset({"SELECT", "EXPLAIN", "PRAGMA"})


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> list[Row]:
    return [{k: _plain(v) for k, v in row.items()} for row in fetch_dicts(con, sql, params)]


def _plain(value: Any) -> Any:
    """Values that json, rich and markdown can all show."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def build_report(
    con: duckdb.DuckDBPyConnection, *, days: int = 30, job_id: int | None = None
) -> dict[str, Any]:
    """The Monday answers for the last `days` days before stg_now (optionally for one job).

    Spend, reliability and failure causes cover the window; wasted spend, flaky tasks, movers,
    new failure causes and stuck runs come from their views (whole store; movers compare the
    last 7 days with the 7 before).
    """
    if days <= 0:
        raise UsageError("--days must be a positive number of days")
    now: datetime = con.execute("SELECT now_ts FROM stg_now").fetchall()[0][0]
    since = now - timedelta(days=days)
    job = "AND job_id = ?" if job_id is not None else ""
    window = [since, now] + ([job_id] if job_id is not None else [])
    runs_in_window = f"FROM run_cost WHERE start_time >= ? AND start_time <= ? {job}"
    spend = _rows(
        con,
        "SELECT count(*) AS runs, sum(cost) AS cost, sum(billed_cost) AS billed_cost, "
        "sum(cost) FILTER (WHERE cost_source = 'calibrated') AS calibrated_cost, "
        "sum(cost) FILTER (WHERE cost_source = 'estimate') AS estimated_cost_est, "
        f"count(*) FILTER (WHERE cost IS NULL) AS runs_without_cost {runs_in_window}",
        window,
    )[0]
    by_day = _rows(
        con,
        f"SELECT run_date, count(*) AS runs, sum(cost) AS cost {runs_in_window} "
        "GROUP BY run_date ORDER BY run_date",
        window,
    )
    by_week = _rows(
        con,
        "SELECT CAST(date_trunc('week', run_date) AS DATE) AS week, count(*) AS runs, "
        f"sum(cost) AS cost {runs_in_window} GROUP BY week ORDER BY week",
        window,
    )
    top = _rows(
        con,
        "SELECT workspace_id, job_id, max(job_name) AS job_name, count(*) AS runs, "
        f"sum(cost) AS cost {runs_in_window} GROUP BY workspace_id, job_id "
        f"ORDER BY cost DESC NULLS LAST LIMIT {TOP}",
        window,
    )
    daily = "FROM job_reliability_daily WHERE run_date >= ? AND run_date <= ?"
    day_window = [since.date(), now.date()] + ([job_id] if job_id is not None else [])
    counts = "sum(runs) AS runs, sum(succeeded) AS succeeded, sum(failed) AS failed, "
    counts += "sum(canceled) AS canceled, sum(skipped) AS skipped, "
    counts += "sum(succeeded) / nullif(sum(terminal_runs), 0) AS success_rate"
    reliability = _rows(con, f"SELECT {counts} {daily} {job}", day_window)[0]
    worst = _rows(
        con,
        f"SELECT workspace_id, job_id, max(job_name) AS job_name, {counts} {daily} {job} "
        f"GROUP BY workspace_id, job_id HAVING sum(failed) > 0 "
        f"ORDER BY failed DESC, success_rate LIMIT {TOP}",
        day_window,
    )
    filt = f"WHERE true {job}"
    only_job = [job_id] if job_id is not None else []
    causes = (
        "SELECT signature, arg_max(title, failed_at) AS title, count(*) AS failures, "
        "count(DISTINCT job_id) AS jobs, sum(cost) AS wasted_cost, "
        "count(*) FILTER (WHERE recovered) AS recovered FROM int_task_failures "
        f"WHERE failed_at >= ? AND failed_at <= ? {job} GROUP BY signature"
    )
    of_job = "AND signature IN (SELECT signature FROM int_task_failures WHERE job_id = ?)"
    return {
        "period": {"now": now.isoformat(), "since": since.isoformat(), "days": days},
        "job_id": job_id,
        "spend": spend,
        "cost_coverage": cost_coverage(con, since, now, job_id),
        "spend_by_day": by_day,
        "spend_by_week": by_week,
        "top_spenders": top,
        "movers": _rows(
            con,
            "SELECT workspace_id, job_id, job_name, cost_previous_week, cost_this_week, change "
            f"FROM spend_movers {filt} LIMIT {TOP}",
            only_job,
        ),
        "reliability": reliability,
        "least_reliable_jobs": worst,
        "wasted_spend": _rows(
            con,
            "SELECT workspace_id, job_id, job_name, failed_runs, canceled_runs, "
            "rerun_task_attempts, wasted_cost, wasted_share "
            f"FROM wasted_spend {filt} AND wasted_cost > 0 LIMIT {TOP}",
            only_job,
        ),
        "flaky_tasks": _rows(
            con,
            "SELECT workspace_id, job_id, job_name, task_key, executions, flaky_executions, "
            f"flake_rate FROM flaky_tasks {filt} LIMIT {TOP}",
            only_job,
        ),
        "failure_causes": _rows(
            con, f"{causes} ORDER BY failures DESC, wasted_cost DESC LIMIT {TOP}", window
        ),
        "costly_failure_causes": _rows(
            con,
            f"{causes} HAVING sum(cost) > 0 ORDER BY wasted_cost DESC, failures DESC LIMIT {TOP}",
            window,
        ),
        "new_failure_causes": _rows(
            con,
            "SELECT signature, title, first_seen, failures, jobs, new_in_24h "
            f"FROM new_failure_causes WHERE true {of_job if job_id is not None else ''} "
            f"LIMIT {TOP}",
            only_job,
        ),
        "stuck_runs": _rows(
            con,
            "SELECT workspace_id, run_id, job_id, job_name, start_time, running_for_ms, "
            f"threshold_ms, timeout_ms, reason FROM stuck_runs {filt}",
            only_job,
        ),
    }


def cost_coverage(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None = None,
    until: datetime | None = None,
    job_id: int | None = None,
) -> dict[str, Any]:
    """How the terminal runs started in [since, until] got their cost: counts and shares of
    billed, calibrated, estimated and unknown, and the most common reasons for unknown."""
    conditions: list[str] = ["NOT is_active"]
    params: list[object] = []
    for condition, value in (("start_time >= ?", since), ("start_time <= ?", until)):
        if value is not None:
            conditions.append(condition)
            params.append(value)
    if job_id is not None:
        conditions.append("job_id = ?")
        params.append(job_id)
    where = " AND ".join(conditions)
    counts = _rows(
        con,
        "SELECT count(*) AS terminal_runs, "
        "count(*) FILTER (WHERE cost IS NOT NULL AND cost_source = 'billing') AS billed, "
        "count(*) FILTER (WHERE cost IS NOT NULL AND cost_source = 'calibrated') AS calibrated, "
        "count(*) FILTER (WHERE cost IS NOT NULL AND cost_source = 'estimate') AS estimated, "
        f"count(*) FILTER (WHERE cost IS NULL) AS unknown FROM int_run_facts WHERE {where}",
        params,
    )[0]
    total = counts["terminal_runs"] or 0
    shares = {k: (counts[k] / total if total else None) for k in COVERAGE_KINDS}
    reasons = _rows(
        con,
        "SELECT coalesce(cost_null_reason, 'no reason recorded') AS reason, count(*) AS runs "
        f"FROM int_run_facts WHERE {where} AND cost IS NULL GROUP BY reason "
        "ORDER BY runs DESC, reason LIMIT 3",
        params,
    )
    return {**counts, "shares": shares, "unknown_reasons": reasons}


COVERAGE_KINDS = ("billed", "calibrated", "estimated", "unknown")


def coverage_line(coverage: dict[str, Any]) -> str:
    """'Cost coverage: 60% billed, ... of N terminal runs; unknown: reason (n), ...'."""
    total = coverage["terminal_runs"] or 0
    if not total:
        return "Cost coverage: no terminal runs"
    parts = ", ".join(f"{_percent(coverage['shares'][k])} {k}" for k in COVERAGE_KINDS)
    line = f"Cost coverage: {parts} of {_count(total, 'terminal run')}"
    if coverage["unknown_reasons"]:
        reasons = ", ".join(
            f"{r['reason']} ({_fmt(r['runs'])})" for r in coverage["unknown_reasons"]
        )
        line += f"; unknown: {reasons}"
    return line


def _percent(share: float | None) -> str:
    if share is None:
        return "-"
    # 0 < share < 0.5%: say so rather than a misleading 0%.
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


# --- rendering -------------------------------------------------------------------------------

SECTIONS = (
    ("spend_by_day", "Spend by day"),
    ("spend_by_week", "Spend by week"),
    ("top_spenders", "Top spenders"),
    ("movers", "Week-over-week movers"),
    ("least_reliable_jobs", "Least reliable jobs"),
    ("wasted_spend", "Wasted spend"),
    ("flaky_tasks", "Flaky tasks"),
    ("failure_causes", "Why runs failed: top causes"),
    ("costly_failure_causes", "Why runs failed: costliest causes"),
    ("new_failure_causes", "Why runs failed: new causes (last 7 days)"),
    ("stuck_runs", "Stuck runs"),
)


def _fmt(value: Any, column: str = "") -> str:
    """One number format for every rendering: thousands separators, counts included; ids stay
    as they are, being names rather than amounts."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool) and not column.endswith("_id"):
        return f"{value:,}"
    return str(value)


def _count(n: int | None, noun: str) -> str:
    n = n or 0
    return f"{_fmt(n)} {noun}" + ("" if n == 1 else "s")


def _spend_line(spend: dict[str, Any]) -> str:
    # A part with no amount is left out rather than printed empty: most stores have no billing.
    parts = [
        f"{label} {_fmt(spend[key])}"
        for label, key in (
            ("billed", "billed_cost"),
            ("calibrated", "calibrated_cost"),
            ("estimated", "estimated_cost_est"),
        )
        if spend.get(key) is not None
    ]
    parts.append(f"{_count(spend['runs_without_cost'], 'run')} without a cost")
    total = "unknown" if spend["cost"] is None else _fmt(spend["cost"])
    return f"Spend: {total} over {_count(spend['runs'], 'run')} ({', '.join(parts)})"


def _summary_lines(report: dict[str, Any]) -> list[str]:
    period = report["period"]
    rel = report["reliability"]
    scope = f" for job {report['job_id']}" if report.get("job_id") is not None else ""
    rate = "n/a" if rel["success_rate"] is None else _fmt(rel["success_rate"])
    return [
        f"Last {_count(period['days'], 'day')} to {period['now']}{scope}",
        _spend_line(report["spend"]),
        *([coverage_line(report["cost_coverage"])] if "cost_coverage" in report else []),
        f"Reliability: {_fmt(rel['succeeded'] or 0)} succeeded, {_fmt(rel['failed'] or 0)} failed, "
        f"{_fmt(rel['canceled'] or 0)} canceled, {_fmt(rel['skipped'] or 0)} skipped; "
        f"success rate {rate}",
    ]


def render_text(report: dict[str, Any], console: Console) -> None:
    """Print the report as rich tables."""
    for line in _summary_lines(report):
        console.print(line)
    for key, title in SECTIONS:
        rows: list[Row] = report[key]
        if not rows:
            console.print(f"\n[bold]{title}[/bold]: none")
            continue
        table = Table(title=title, title_justify="left")
        for name in rows[0]:
            table.add_column(name, justify="right" if _numeric(rows, name) else "left")
        for row in rows:
            table.add_row(*(_fmt(v, k) for k, v in row.items()))
        console.print(table)


def _numeric(rows: list[Row], name: str) -> bool:
    return all(isinstance(r[name], int | float) or r[name] is None for r in rows)


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown document."""
    out = ["# jobruns report", ""]
    out += [f"- {line}" for line in _summary_lines(report)]
    for key, title in SECTIONS:
        rows: list[Row] = report[key]
        out += ["", f"## {title}", ""]
        if not rows:
            out.append("None.")
            continue
        names = list(rows[0])
        out.append("| " + " | ".join(names) + " |")
        out.append("|" + "|".join("---:" if _numeric(rows, n) else "---" for n in names) + "|")
        for row in rows:
            cells = (_fmt(v, k).replace("|", "\\|") for k, v in row.items())
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def render_json(report: dict[str, Any]) -> str:
    """The report as JSON."""
    return json.dumps(report, indent=2, default=str)


# --- ad-hoc queries --------------------------------------------------------------------------


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The one statement of `sql` if it only reads; UsageError otherwise."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise UsageError(f"cannot parse the query: {exc}") from exc
    if len(statements) != 1:
        raise UsageError("give exactly one statement")
    kind = str(statements[0].type).rsplit(".", 1)[-1]
    if kind not in READ_ONLY_STATEMENTS:
        raise UsageError(
            f"only read-only statements are allowed (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, "
            f"EXPLAIN, PRAGMA); got {kind}"
        )
    return str(statements[0].query).strip().rstrip(";")


def run_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    fmt: QueryFormat = "table",
    output: Path | None = None,
    *,
    console: Console | None = None,
) -> int:
    """Run one read-only statement and write its rows as a table, CSV, JSON or Parquet.

    Output goes to `output` when given, else to stdout (Parquet needs a file). Returns the
    number of rows. Open `con` read-only (views.connect) so nothing can be written anyway.
    """
    statement = check_read_only(con, sql)
    if fmt == "parquet" and output is None:
        raise UsageError("--format parquet needs --output FILE")
    try:
        relation = con.sql(statement)
        if fmt == "parquet":
            assert output is not None
            relation.write_parquet(str(output))
            counted = con.execute(f"SELECT count(*) FROM read_parquet('{_quote(output)}')")
            return int(counted.fetchall()[0][0])
        names = list(relation.columns)
        rows = [[_plain(v) for v in r] for r in relation.fetchall()]
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {exc}") from exc
    text = _format_rows(names, rows, fmt)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    elif fmt == "table":
        console = console or Console()
        table = Table()
        for name in names:
            table.add_column(name)
        for r in rows:
            table.add_row(*(_fmt(v) for v in r))
        console.print(table)
    else:
        (console or Console(soft_wrap=True)).out(text, end="", highlight=False)
    return len(rows)


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _format_rows(names: list[str], rows: list[list[Any]], fmt: QueryFormat) -> str:
    if fmt == "json":
        return json.dumps([dict(zip(names, r, strict=True)) for r in rows], default=str) + "\n"
    if fmt in ("csv", "table"):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
        return buffer.getvalue()
    raise UsageError(f"unknown format {fmt}; use table, csv, json or parquet")


__all__ = [
    "build_report",
    "check_read_only",
    "render_json",
    "render_markdown",
    "render_text",
    "run_query",
]
