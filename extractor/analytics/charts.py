"""Charts of the analytics views, shared by the notebooks and the HTML report.

Each public function takes a store connection (views ready, see `extractor.connect`) or
the rows the report already holds, and returns a matplotlib Figure. Nothing here writes to the
store or uses pyplot's global state, so figures never leak between callers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from extractor.extras import needs
from extractor.store import fetch_dicts

with needs(
    "matplotlib", "jobruns[notebooks]", "drawing charts (jobruns report --html, the notebooks)"
):
    from matplotlib.axes import Axes
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, PercentFormatter

Row = dict[str, Any]
# A connection to a store with its views, or rows already read from them (e.g. the report's).
Source = duckdb.DuckDBPyConnection | Sequence[Row]

TOP = 10
WIDTH = 9.0  # inches; every chart shares it so pages line up

# One colour per meaning, used the same way in every chart.
BLUE = "#3b6ea8"
GREY = "#9aa5b1"
LIGHT = "#d5dbe1"
RED = "#c8453b"
ORANGE = "#e39b3b"
GREEN = "#3f9a5b"
PURPLE = "#7e5ba6"
OUTCOME_COLOURS = {"succeeded": GREEN, "failed": RED, "canceled": ORANGE, "skipped": LIGHT}
SERIES = (BLUE, ORANGE, GREEN, RED, PURPLE, "#2f9ea0", "#b5734a", "#6b7b8c")


# --- reading ---------------------------------------------------------------------------------


def _query(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> list[Row]:
    return fetch_dicts(con, sql, params)


def _load(source: Source, sql: str, params: Sequence[object] = ()) -> list[Row]:
    if isinstance(source, duckdb.DuckDBPyConnection):
        return _query(source, sql, params)
    return [dict(row) for row in source]


def currency(con: duckdb.DuckDBPyConnection) -> str:
    """The currency of the rate card's prices when it has exactly one, else 'cost units'."""
    rows = _query(
        con,
        "SELECT DISTINCT currency FROM stg_rate_card WHERE kind = 'sku' AND currency IS NOT NULL",
    )
    return str(rows[0]["currency"]) if len(rows) == 1 else "cost units"


def _currency_of(source: Source, given: str | None) -> str:
    if given is not None:
        return given
    if isinstance(source, duckdb.DuckDBPyConnection):
        return currency(source)
    return "USD"


def _num(value: Any) -> float:
    """A number to plot: NULL is 0."""
    if value is None:
        return 0.0
    if isinstance(value, Decimal):
        return float(value)
    return float(value)


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _x(values: Sequence[date]) -> Any:
    """Dates for an x axis: matplotlib plots them, though its stubs admit only numbers."""
    return list(values)


def _moment(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


# --- formatting ------------------------------------------------------------------------------


def _job_label(row: Row, width: int = 34) -> str:
    """A job's name for an axis: shortened from the left (paths end in the telling part)."""
    name = row.get("job_name") or f"job {row.get('job_id')}"
    text = str(name)
    if len(text) <= width:
        return text
    if "/" in text:  # a notebook path: its last parts say what it is
        tail = text.rsplit("/", 2)[-2:]
        text = "…/" + "/".join(tail)
        if len(text) <= width:
            return text
    return "…" + text[-(width - 1) :]


def _compact(value: float) -> str:
    """Three significant digits: 1234567 -> 1.23M, 1234 -> 1.23k, 25.0 -> 25, 0.123 -> 0.123."""
    size = abs(value)
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _money(value: float, cur: str) -> str:
    """An amount for a chart; the dollar sign escaped, or matplotlib would start math mode."""
    sign = "-" if value < 0 else ""
    if cur == "USD":
        return f"{sign}\\${_compact(abs(value))}"
    return f"{sign}{_compact(abs(value))} {cur}"


def _share(part: float, total: float) -> str:
    if not total:
        return ""
    share = part / total
    return "<1%" if 0 < share < 0.005 else f"{share:.0%}"


# Duration units, largest first: (label, milliseconds).
_UNITS = (("hours", 3_600_000.0), ("minutes", 60_000.0), ("seconds", 1000.0))


def _duration_unit(values_ms: Iterable[float]) -> tuple[str, float]:
    """The unit that keeps the largest value between 1 and a few hundred."""
    largest = max((v for v in values_ms if v is not None), default=0.0)
    for label, size in _UNITS:
        if largest >= 2 * size:
            return label, size
    return "seconds", 1000.0


def _short_duration(ms: float) -> str:
    for label, size in _UNITS:
        if ms >= size:
            return f"{ms / size:.1f} {label[0] if label != 'minutes' else 'min'}"
    return f"{ms / 1000:.1f} s"


# --- figure scaffolding ----------------------------------------------------------------------


def _figure(height: float = 4.5) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(WIDTH, height), layout="constrained", dpi=100)
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=9)
    return figure, axes


def _bar_height(count: int) -> float:
    """Height of a horizontal bar chart with `count` bars: readable labels, no giant bars."""
    return max(2.8, 1.3 + 0.36 * count)


def _title(figure: Figure, axes: Axes, title: str, subtitle: str = "") -> None:
    # Title and subtitle on the figure, left-aligned over the whole width (labels included).
    figure.suptitle(title, x=0.01, ha="left", fontsize=13, fontweight="bold")
    if subtitle:
        axes.set_title(subtitle, loc="left", fontsize=9.5, color="#4a5560", pad=8)


def _note(figure: Figure, text: str) -> None:
    """A footnote under the chart: caveats a reader needs (missing costs, thresholds)."""
    figure.supxlabel(text, x=0.01, ha="left", fontsize=8.5, color="#4a5560")


def _empty(title: str, message: str) -> Figure:
    """A titled chart that says why it has nothing to show, rather than blank axes."""
    figure, axes = _figure(height=2.2)
    _title(figure, axes, title)
    axes.axis("off")
    axes.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#4a5560")
    return figure


def _hbars(
    axes: Axes,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    colours: str | Sequence[str] = BLUE,
    annotations: Sequence[str] = (),
) -> None:
    """Horizontal bars, largest first from the top, each annotated at its end."""
    positions = list(range(len(labels)))
    axes.barh(positions, values, color=colours, height=0.65)
    axes.set_yticks(positions, labels)
    axes.invert_yaxis()
    axes.grid(axis="x", color="#e6e9ec", linewidth=0.8)
    axes.set_axisbelow(True)
    largest = max((abs(v) for v in values), default=0.0) or 1.0
    for position, value, text in zip(positions, values, annotations, strict=False):
        offset = 0.01 * largest
        axes.text(
            value + (offset if value >= 0 else -offset),
            position,
            text,
            va="center",
            ha="left" if value >= 0 else "right",
            fontsize=8.5,
            color="#2b333b",
        )
    # Room for the annotations past the longest bar.
    low, high = axes.get_xlim()
    span = high - low
    axes.set_xlim(low - (0.2 * span if low < 0 else 0), high + 0.2 * span)


def _legend_below(figure: Figure, axes: Axes, **options: Any) -> None:
    """The legend under the chart, where it can never hide a bar."""
    handles, labels = axes.get_legend_handles_labels()
    options.setdefault("handles", handles)
    options.setdefault("labels", labels)
    options.setdefault("ncols", len(options["handles"]))
    figure.legend(loc="outside lower center", fontsize=8.5, frameon=False, **options)


def _date_axis(axes: Axes) -> None:
    """Dates on x that never overlap: month and year written once, not on every tick."""
    locator = AutoDateLocator(minticks=4, maxticks=10)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _money_axis(axes: Axes, cur: str, axis: str = "x") -> None:
    formatter = FuncFormatter(lambda value, _: _money(value, cur))
    (axes.xaxis if axis == "x" else axes.yaxis).set_major_formatter(formatter)


# --- reliability -----------------------------------------------------------------------------


def success_rate_by_week(con: duckdb.DuckDBPyConnection, *, top: int = 6) -> Figure:
    """Weekly success rate of the jobs with the most failures (then the most runs)."""
    rows = _query(
        con,
        "WITH top AS (SELECT workspace_id, job_id FROM job_reliability WHERE terminal_runs > 0 "
        "ORDER BY failed DESC, terminal_runs DESC, job_id LIMIT ?) "
        "SELECT d.workspace_id, d.job_id, max(d.job_name) AS job_name, "
        "CAST(date_trunc('week', d.run_date) AS DATE) AS week, sum(d.succeeded) AS succeeded, "
        "sum(d.terminal_runs) AS terminal_runs FROM job_reliability_daily AS d "
        "JOIN top USING (workspace_id, job_id) GROUP BY ALL HAVING sum(d.terminal_runs) > 0 "
        "ORDER BY week",
        [top],
    )
    title = "Weekly success rate of the least reliable jobs"
    if not rows:
        return _empty(title, "No finished runs in this store.")
    series: dict[tuple[Any, Any], list[Row]] = {}
    for row in rows:
        series.setdefault((row["workspace_id"], row["job_id"]), []).append(row)
    figure, axes = _figure(height=4.8)
    lowest = 1.0
    for colour, points in zip(SERIES, series.values(), strict=False):
        weeks = [_day(p["week"]) for p in points]
        rates = [_num(p["succeeded"]) / _num(p["terminal_runs"]) for p in points]
        lowest = min(lowest, *rates)
        axes.plot(
            _x(weeks), rates, marker="o", markersize=4, color=colour, label=_job_label(points[0])
        )
    axes.set_ylim(max(0.0, math.floor(lowest * 10) / 10 - 0.05), 1.02)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_ylabel("succeeded / finished runs")
    axes.set_xlabel("week starting (Monday, UTC)")
    _date_axis(axes)
    axes.grid(axis="y", color="#e6e9ec")
    axes.legend(
        title="job", fontsize=8.5, title_fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1)
    )
    _title(
        figure,
        axes,
        title,
        f"top {len(series)} jobs by failed runs; the last week may be partial",
    )
    return figure


def failure_causes(con: duckdb.DuckDBPyConnection, *, top: int = TOP) -> Figure:
    """Failed runs by termination code, coloured by who is to blame (termination type)."""
    rows = _query(
        con,
        "SELECT termination_code, max(termination_type) AS termination_type, "
        "sum(failed_runs) AS failed_runs FROM termination_codes WHERE failed_runs > 0 "
        "GROUP BY termination_code ORDER BY failed_runs DESC, termination_code LIMIT ?",
        [top],
    )
    title = "Why runs fail: failed runs by termination code"
    if not rows:
        return _empty(title, "No failed runs in this store.")
    kinds = sorted({str(r["termination_type"]) for r in rows})
    palette = dict(zip(kinds, (RED, ORANGE, PURPLE, BLUE, GREY, GREEN), strict=False))
    figure, axes = _figure(height=_bar_height(len(rows)))
    counts = [_num(r["failed_runs"]) for r in rows]
    _hbars(
        axes,
        [str(r["termination_code"]) for r in rows],
        counts,
        colours=[palette.get(str(r["termination_type"]), GREY) for r in rows],
        annotations=[f"{int(c)}" for c in counts],
    )
    axes.set_xlabel("failed runs")
    _legend_below(
        figure,
        axes,
        handles=[Patch(color=palette[k], label=k) for k in kinds],
        labels=kinds,
        title="termination type:",
        title_fontsize=8.5,
        alignment="left",
    )
    _title(figure, axes, title, "CLIENT_ERROR: the job's code or config; others: the platform")
    return figure


def error_causes(source: Source, *, top: int = TOP, currency: str | None = None) -> Figure:
    """Failed task runs by cause (their error's signature), annotated with what they cost."""
    cur = _currency_of(source, currency)
    rows = _load(
        source,
        "SELECT signature, title, failures, jobs, wasted_cost, recovered FROM failure_causes "
        "ORDER BY failures DESC, wasted_cost DESC, signature LIMIT ?",
        [top],
    )[:top]
    title = "Why runs fail: failed task runs by cause"
    if not rows:
        return _empty(title, "No task errors in this store (extract reads them).")
    figure, axes = _figure(height=_bar_height(len(rows)))
    counts = [_num(r["failures"]) for r in rows]
    labels = [str(r["title"])[:48] for r in rows]
    notes = [
        f"{int(_num(r['failures']))} in {int(_num(r['jobs']))} jobs · "
        f"{_money(_num(r['wasted_cost']), cur)}"
        for r in rows
    ]
    _hbars(axes, labels, counts, colours=RED, annotations=notes)
    axes.set_xlabel("failed task runs and iterations")
    _title(figure, axes, title, "a cause is the error with its tables, paths, ids and numbers out")
    return figure


def flaky_tasks(source: Source, *, top: int = TOP) -> Figure:
    """Tasks whose failed attempt was fixed by a retry or repair, by flake rate."""
    rows = _load(
        source,
        "SELECT workspace_id, job_id, job_name, task_key, executions, flaky_executions, "
        "flake_rate FROM flaky_tasks LIMIT ?",
        [top],
    )[:top]
    title = "Flaky tasks: failures a retry or repair fixed"
    if not rows:
        return _empty(title, "No flaky tasks: no failed attempt was later fixed by a retry.")
    figure, axes = _figure(height=_bar_height(len(rows)))
    rates = [_num(r["flake_rate"]) for r in rows]
    _hbars(
        axes,
        [f"{_job_label(r, 26)} · {r['task_key']}" for r in rows],
        rates,
        colours=ORANGE,
        annotations=[f"{r['flaky_executions']} of {r['executions']} executions" for r in rows],
    )
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel("flake rate (executions that failed, then succeeded on a retry or repair)")
    _title(figure, axes, title, "job · task key; a high rate means retries are hiding a problem")
    return figure


def time_to_recover(con: duckdb.DuckDBPyConnection) -> Figure:
    """Runs recovered by task retries or repairs: when, and how long recovery took."""
    rows = _query(
        con,
        "SELECT run_id, job_id, job_name, start_time, repairs, retried_tasks, outcome, "
        "time_to_recover_ms FROM retries_and_repairs ORDER BY start_time",
    )
    title = "Repairs and retries: time from first failure to recovery"
    recovered = [r for r in rows if r["time_to_recover_ms"] is not None]
    if not recovered:
        return _empty(title, "No run was recovered by a retry or a repair.")
    unit, size = _duration_unit(_num(r["time_to_recover_ms"]) for r in recovered)
    figure, axes = _figure(height=4.2)
    for label, colour, marker, chosen in (
        ("repaired", PURPLE, "D", [r for r in recovered if _num(r["repairs"]) > 0]),
        ("retries only", BLUE, "o", [r for r in recovered if _num(r["repairs"]) == 0]),
    ):
        if chosen:
            axes.scatter(
                _x([_moment(r["start_time"]) for r in chosen]),
                [max(_num(r["time_to_recover_ms"]), 1000.0) / size for r in chosen],
                color=colour,
                marker=marker,
                s=36,
                alpha=0.85,
                label=f"{label} ({len(chosen)} runs)",
            )
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes.set_ylabel(f"time to recover ({unit}, log scale)")
    axes.set_xlabel("run start (UTC)")
    axes.grid(axis="y", color="#e6e9ec", which="both", linewidth=0.6)
    axes.legend(fontsize=8.5, loc="upper left", bbox_to_anchor=(1.01, 1))
    _date_axis(axes)
    never = len(rows) - len(recovered)
    _title(
        figure,
        axes,
        title,
        "one point per run: end of the first failed attempt to the end of the fixing repair or run",
    )
    if never:
        _note(figure, f"{never} more run(s) with retries or repairs did not recover (not shown).")
    return figure


def duration_distribution(con: duckdb.DuckDBPyConnection, *, top: int = 8) -> Figure:
    """Box plots of succeeded run durations for the jobs that run most often."""
    rows = _query(
        con,
        "WITH top AS (SELECT workspace_id, job_id FROM run_cost WHERE outcome = 'succeeded' "
        "AND duration_ms IS NOT NULL GROUP BY ALL ORDER BY count(*) DESC, job_id LIMIT ?) "
        "SELECT r.workspace_id, r.job_id, r.job_name, r.duration_ms FROM run_cost AS r "
        "JOIN top USING (workspace_id, job_id) "
        "WHERE r.outcome = 'succeeded' AND r.duration_ms IS NOT NULL",
        [top],
    )
    title = "How long successful runs take"
    if not rows:
        return _empty(title, "No succeeded runs with a duration in this store.")
    samples: dict[tuple[Any, Any], list[float]] = {}
    names: dict[tuple[Any, Any], str] = {}
    for row in rows:
        key = (row["workspace_id"], row["job_id"])
        samples.setdefault(key, []).append(_num(row["duration_ms"]) / 60_000)
        names[key] = _job_label(row)
    keys = sorted(samples, key=lambda k: sorted(samples[k])[len(samples[k]) // 2])
    figure, axes = _figure(height=_bar_height(len(keys)))
    axes.boxplot(
        [samples[k] for k in keys],
        orientation="horizontal",
        tick_labels=[f"{names[k]} ({len(samples[k])})" for k in keys],
        widths=0.6,
        patch_artist=True,
        boxprops={"facecolor": "#dbe6f2", "edgecolor": BLUE},
        medianprops={"color": RED, "linewidth": 1.6},
        flierprops={"markersize": 3, "markeredgecolor": GREY},
    )
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes.set_xlabel("run duration (minutes, log scale)")
    axes.grid(axis="x", color="#e6e9ec", which="both", linewidth=0.6)
    _title(
        figure,
        axes,
        title,
        f"succeeded runs of the {len(keys)} most frequent jobs (runs in brackets); "
        "box = middle half, red = median",
    )
    return figure


def duration_regressions(con: duckdb.DuckDBPyConnection, *, top: int = TOP) -> Figure:
    """Median duration of the last 7 days against the 28 days before, per job."""
    rows = _query(
        con,
        "SELECT workspace_id, job_id, job_name, recent_runs, baseline_runs, recent_p50_ms, "
        "baseline_p50_ms, ratio, is_regression FROM duration_regressions "
        "WHERE task_key IS NULL AND ratio IS NOT NULL ORDER BY ratio DESC LIMIT ?",
        [top],
    )
    title = "Duration regressions: is a job getting slower?"
    if not rows:
        return _empty(title, "Not enough succeeded runs in both windows to compare durations.")
    figure, axes = _figure(height=_bar_height(len(rows)))
    positions = list(range(len(rows)))
    ratios = [_num(r["ratio"]) for r in rows]
    # Bars grow from 1x (no change): right is slower, left is faster.
    axes.barh(
        positions,
        [ratio - 1 for ratio in ratios],
        left=1.0,
        height=0.65,
        color=[
            RED if r["is_regression"] else (ORANGE if _num(r["ratio"]) > 1 else GREEN) for r in rows
        ],
    )
    axes.set_yticks(positions, [_job_label(r) for r in rows])
    axes.invert_yaxis()
    axes.axvline(1.0, color="#2b333b", linewidth=1)
    axes.axvline(
        1.5, color=RED, linewidth=1, linestyle="--", label="regression threshold (1.5\u00d7)"
    )
    low = min(0.8, min(ratios) - 0.05)
    high = max(1.6, max(ratios) + 0.05)
    axes.set_xlim(low, high)
    # The medians in a column right of the plot, where they never collide with the bars.
    for position, row in zip(positions, rows, strict=True):
        axes.annotate(
            f"{_short_duration(_num(row['recent_p50_ms']))} vs "
            f"{_short_duration(_num(row['baseline_p50_ms']))}  "
            f"({row['recent_runs']} vs {row['baseline_runs']} runs)",
            xy=(1.0, position),
            xycoords=("axes fraction", "data"),
            xytext=(8, 0),
            textcoords="offset points",
            va="center",
            fontsize=8.5,
            color="#2b333b",
        )
    axes.grid(axis="x", color="#e6e9ec")
    axes.set_axisbelow(True)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}\u00d7"))
    axes.set_xlabel("median duration, last 7 days ÷ the 28 days before (succeeded runs)")
    _legend_below(figure, axes)
    _title(
        figure,
        axes,
        title,
        "right of 1\u00d7 = slower; red = regression (≥ 1.5\u00d7, at least 3 runs on each side); "
        "right: recent vs before",
    )
    return figure


def queue_and_start_delay(con: duckdb.DuckDBPyConnection, *, top: int = TOP) -> Figure:
    """Scheduled runs: time queued and delay from trigger to the first task's start."""
    rows = _query(
        con,
        "SELECT workspace_id, job_id, job_name, scheduled_runs, queued_runs, p95_queue_ms, "
        "late_starts, p50_start_delay_ms, p95_start_delay_ms FROM scheduled_run_delays "
        "ORDER BY greatest(coalesce(p95_queue_ms, 0), coalesce(p95_start_delay_ms, 0)) DESC "
        "LIMIT ?",
        [top],
    )
    title = "Queue time and start delay of scheduled runs"
    if not rows:
        return _empty(title, "No scheduled (PERIODIC) runs in this store.")
    values = [
        _num(r[k])
        for r in rows
        for k in ("p95_queue_ms", "p50_start_delay_ms", "p95_start_delay_ms")
    ]
    unit, size = _duration_unit(values)
    figure, axes = _figure(height=max(3.2, 1.5 + 0.5 * len(rows)))
    positions = list(range(len(rows)))
    bars = (
        ("p95 queue time", "p95_queue_ms", PURPLE, -0.27),
        ("median start delay", "p50_start_delay_ms", "#9bb8d9", 0.0),
        ("p95 start delay", "p95_start_delay_ms", BLUE, 0.27),
    )
    for label, key, colour, shift in bars:
        axes.barh(
            [p + shift for p in positions],
            [_num(r[key]) / size for r in rows],
            height=0.27,
            color=colour,
            label=label,
        )
    axes.set_yticks(positions, [f"{_job_label(r)} ({r['scheduled_runs']} runs)" for r in rows])
    axes.invert_yaxis()
    axes.grid(axis="x", color="#e6e9ec")
    axes.set_axisbelow(True)
    axes.set_xlabel(f"{unit}")
    _legend_below(figure, axes)
    queued = sum(int(_num(r["queued_runs"])) for r in rows)
    late = sum(int(_num(r["late_starts"])) for r in rows)
    _title(
        figure,
        axes,
        title,
        "start delay = trigger to the first task's start; queue = waiting for a slot\n"
        f"{queued} scheduled run(s) waited in a queue; {late} started more than 5 minutes late",
    )
    return figure


def job_outcomes(source: Source, *, top: int = TOP) -> Figure:
    """Runs by outcome for the jobs with the most failures, with their success rate."""
    rows = _load(
        source,
        "SELECT workspace_id, job_id, job_name, runs, succeeded, failed, canceled, skipped, "
        "success_rate FROM job_reliability WHERE failed > 0 "
        "ORDER BY failed DESC, success_rate LIMIT ?",
        [top],
    )[:top]
    title = "Least reliable jobs: runs by outcome"
    if not rows:
        return _empty(title, "No failed runs: every finished run succeeded.")
    figure, axes = _figure(height=_bar_height(len(rows)))
    positions = list(range(len(rows)))
    left = [0.0] * len(rows)
    for outcome, colour in OUTCOME_COLOURS.items():
        counts = [_num(r[outcome]) for r in rows]
        axes.barh(positions, counts, left=left, color=colour, height=0.65, label=outcome)
        left = [a + b for a, b in zip(left, counts, strict=True)]
    for position, total, row in zip(positions, left, rows, strict=True):
        rate = row["success_rate"]
        text = f"{_num(rate):.0%} succeeded" if rate is not None else ""
        axes.text(total, position, f"  {text}", va="center", fontsize=8.5)
    axes.set_yticks(positions, [_job_label(r) for r in rows])
    axes.invert_yaxis()
    axes.set_xlim(0, max(left) * 1.25)
    axes.grid(axis="x", color="#e6e9ec")
    axes.set_axisbelow(True)
    axes.set_xlabel("runs")
    _legend_below(figure, axes)
    _title(figure, axes, title, "jobs with the most failed runs; rate = succeeded / finished runs")
    return figure


# --- cost ------------------------------------------------------------------------------------


def top_spenders(source: Source, *, top: int = TOP, currency: str | None = None) -> Figure:
    """The jobs that cost the most, with their run counts."""
    cur = _currency_of(source, currency)
    rows = _load(
        source,
        "SELECT workspace_id, job_id, job_name, runs, cost FROM job_cost "
        "WHERE cost IS NOT NULL ORDER BY cost DESC LIMIT ?",
        [top],
    )
    rows = [r for r in rows if r["cost"] is not None][:top]
    title = "Top spenders: cost by job"
    if not rows:
        return _empty(title, "No run has a known cost.")
    figure, axes = _figure(height=_bar_height(len(rows)))
    costs = [_num(r["cost"]) for r in rows]
    total = sum(costs)
    _hbars(
        axes,
        [_job_label(r) for r in rows],
        costs,
        annotations=[
            f"{_money(c, cur)} · {r['runs']} runs · {_share(c, total)}"
            for c, r in zip(costs, rows, strict=True)
        ],
    )
    _money_axis(axes, cur)
    axes.set_xlabel(f"cost ({cur}; billed where imported, else estimated at list price)")
    _title(
        figure, axes, title, f"the {len(rows)} most expensive jobs; % = share of these jobs' cost"
    )
    return figure


def daily_spend(source: Source, *, currency: str | None = None) -> Figure:
    """Spend per day, with the 7-day average to show the trend."""
    cur = _currency_of(source, currency)
    rows = _load(
        source,
        "SELECT run_date, sum(runs) AS runs, sum(cost) AS cost FROM spend_daily "
        "WHERE run_date IS NOT NULL GROUP BY run_date ORDER BY run_date",
    )
    title = "Daily spend"
    if not rows:
        return _empty(title, "No runs in this period.")
    days = [_day(r["run_date"]) for r in rows]
    costs = [_num(r["cost"]) for r in rows]
    by_day = dict(zip(days, costs, strict=True))
    # Near the start only the days shown are averaged, not days outside the data counted as 0.
    average = []
    for day in days:
        window = [day - timedelta(days=k) for k in range(7) if day - timedelta(days=k) >= days[0]]
        average.append(sum(by_day.get(d, 0.0) for d in window) / len(window))
    figure, axes = _figure(height=4.0)
    axes.bar(_x(days), costs, width=0.8, color="#9bb8d9", label="cost that day")
    axes.plot(_x(days), average, color=BLUE, linewidth=2, label="7-day average")
    axes.set_ylim(0, max(costs, default=0.0) * 1.25 or 1.0)  # headroom for the legend
    _money_axis(axes, cur, axis="y")
    axes.set_ylabel(f"cost per day ({cur})")
    axes.set_xlabel("day of the runs' start (UTC)")
    axes.grid(axis="y", color="#e6e9ec")
    axes.set_axisbelow(True)
    axes.legend(fontsize=8.5, loc="upper left", ncols=2)
    _date_axis(axes)
    _title(
        figure,
        axes,
        title,
        f"{_money(sum(costs), cur)} in total over {(days[-1] - days[0]).days + 1} days",
    )
    return figure


def weekly_spend_by_job(
    con: duckdb.DuckDBPyConnection, *, top: int = 6, currency: str | None = None
) -> Figure:
    """Stacked weekly spend of the top jobs, the rest as 'other jobs'."""
    cur = _currency_of(con, currency)
    rows = _query(
        con,
        "WITH top AS (SELECT workspace_id, job_id, rank() OVER (ORDER BY cost DESC, job_id) AS n "
        "FROM job_cost WHERE cost > 0 ORDER BY cost DESC, job_id LIMIT ?) "
        "SELECT CAST(date_trunc('week', r.run_date) AS DATE) AS week, top.n, "
        "max(r.job_name) AS job_name, max(r.job_id) AS job_id, sum(r.cost) AS cost "
        "FROM run_cost AS r LEFT JOIN top USING (workspace_id, job_id) "
        "WHERE r.run_date IS NOT NULL GROUP BY ALL ORDER BY week, top.n NULLS LAST",
        [top],
    )
    title = "Weekly spend by job"
    if not rows or not any(r["cost"] for r in rows):
        return _empty(title, "No run has a known cost.")
    weeks = sorted({_day(r["week"]) for r in rows})
    series: dict[Any, dict[date, float]] = {}
    labels: dict[Any, str] = {}
    for row in rows:
        key = row["n"]
        series.setdefault(key, {})[_day(row["week"])] = _num(row["cost"])
        labels[key] = _job_label(row) if key is not None else "other jobs"
    order = sorted(series, key=lambda k: (k is None, k or 0))
    figure, axes = _figure(height=4.6)
    bottom = [0.0] * len(weeks)
    for index, key in enumerate(order):
        colour = GREY if key is None else SERIES[index % len(SERIES)]
        heights = [series[key].get(w, 0.0) for w in weeks]
        axes.bar(_x(weeks), heights, bottom=bottom, width=5.5, color=colour, label=labels[key])
        bottom = [a + b for a, b in zip(bottom, heights, strict=True)]
    _money_axis(axes, cur, axis="y")
    axes.set_ylabel(f"cost per week ({cur})")
    axes.set_xlabel("week starting (Monday, UTC)")
    axes.grid(axis="y", color="#e6e9ec")
    axes.set_axisbelow(True)
    handles, names = axes.get_legend_handles_labels()
    axes.legend(
        handles[::-1],
        names[::-1],
        title="job",
        fontsize=8.5,
        title_fontsize=9,
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
    )
    _date_axis(axes)
    _title(
        figure,
        axes,
        title,
        f"the {len(order) - (None in series)} most expensive jobs "
        "stacked; the first and last weeks may be partial",
    )
    return figure


def spend_movers(source: Source, *, top: int = TOP, currency: str | None = None) -> Figure:
    """Week-over-week change in cost per job: the last 7 days against the 7 before."""
    cur = _currency_of(source, currency)
    rows = _load(
        source,
        "SELECT workspace_id, job_id, job_name, cost_previous_week, cost_this_week, change "
        "FROM spend_movers WHERE change <> 0 LIMIT ?",
        [top],
    )
    rows = [r for r in rows if _num(r["change"]) != 0][:top]
    title = "Week-over-week movers: change in cost"
    if not rows:
        return _empty(title, "No job's cost changed between the last two weeks.")
    figure, axes = _figure(height=_bar_height(len(rows)))
    changes = [_num(r["change"]) for r in rows]
    _hbars(
        axes,
        [_job_label(r) for r in rows],
        changes,
        colours=[RED if c > 0 else GREEN for c in changes],
        annotations=[
            f"{_money(_num(r['cost_previous_week']), cur)} → "
            f"{_money(_num(r['cost_this_week']), cur)}"
            for r in rows
        ],
    )
    axes.axvline(0, color="#2b333b", linewidth=0.8)
    axes.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _: ("+" if v > 0 else "") + _money(v, cur))
    )
    axes.set_xlabel(f"cost last 7 days \u2212 cost the 7 days before ({cur})")
    _legend_below(
        figure,
        axes,
        handles=[Patch(color=RED), Patch(color=GREEN)],
        labels=["costs more", "costs less"],
    )
    _title(figure, axes, title, "biggest changes first; labels: the week before → the last week")
    return figure


def wasted_spend(source: Source, *, top: int = TOP, currency: str | None = None) -> Figure:
    """Cost of failed and canceled runs and of task attempts that had to be re-run."""
    cur = _currency_of(source, currency)
    rows = _load(
        source,
        "SELECT workspace_id, job_id, job_name, failed_runs, canceled_runs, rerun_task_attempts, "
        "failed_run_cost, canceled_run_cost, rerun_task_cost, wasted_cost, wasted_share "
        "FROM wasted_spend WHERE wasted_cost > 0 LIMIT ?",
        [top],
    )
    rows = [r for r in rows if _num(r["wasted_cost"]) > 0][:top]
    title = "Wasted spend: failures and re-runs"
    if not rows:
        return _empty(title, "No spend on failed runs or re-run tasks.")
    figure, axes = _figure(height=_bar_height(len(rows)))
    positions = list(range(len(rows)))
    parts = (
        ("failed runs", "failed_run_cost", RED),
        ("canceled runs", "canceled_run_cost", ORANGE),
        ("re-run task attempts", "rerun_task_cost", PURPLE),
    )
    if all(key in rows[0] for _, key, _ in parts):
        left = [0.0] * len(rows)
        for label, key, colour in parts:
            widths = [_num(r[key]) for r in rows]
            axes.barh(positions, widths, left=left, color=colour, height=0.65, label=label)
            left = [a + b for a, b in zip(left, widths, strict=True)]
        _legend_below(figure, axes)
    else:  # the report's rows carry the total only
        axes.barh(positions, [_num(r["wasted_cost"]) for r in rows], color=RED, height=0.65)
    totals = [_num(r["wasted_cost"]) for r in rows]
    for position, total, row in zip(positions, totals, rows, strict=True):
        share = row.get("wasted_share")
        text = f"  {_money(total, cur)}" + (f" · {_num(share):.0%} of its spend" if share else "")
        axes.text(total, position, text, va="center", fontsize=8.5)
    axes.set_yticks(positions, [_job_label(r) for r in rows])
    axes.invert_yaxis()
    axes.set_xlim(0, max(totals) * 1.35)
    axes.grid(axis="x", color="#e6e9ec")
    axes.set_axisbelow(True)
    _money_axis(axes, cur)
    axes.set_xlabel(f"wasted cost ({cur})")
    _title(
        figure,
        axes,
        title,
        "whole cost of failed and canceled runs, plus attempts a retry or repair replaced",
    )
    return figure


def all_purpose_savings(con: duckdb.DuckDBPyConnection, *, currency: str | None = None) -> Figure:
    """Jobs on all-purpose clusters: their cost against the same work on job clusters."""
    cur = _currency_of(con, currency)
    rows = _query(
        con,
        "SELECT workspace_id, job_id, job_name, task_runs, clusters, task_hours, "
        "all_purpose_cost, job_cluster_cost_est, saving_est, cost_null_reason "
        "FROM all_purpose_jobs ORDER BY saving_est DESC NULLS LAST, task_hours DESC",
    )
    title = "All-purpose clusters: what job clusters would save"
    if not rows:
        return _empty(title, "No job runs tasks on all-purpose clusters.")
    figure, axes = _figure(height=_bar_height(len(rows)))
    positions = list(range(len(rows)))
    labels = [_job_label(r) for r in rows]
    if any(r["saving_est"] is not None for r in rows):
        for label, key, colour, shift in (
            ("all-purpose cost (billed)", "all_purpose_cost", ORANGE, -0.18),
            ("same DBUs on job clusters (estimate)", "job_cluster_cost_est", GREEN, 0.18),
        ):
            axes.barh(
                [p + shift for p in positions],
                [_num(r[key]) for r in rows],
                height=0.36,
                color=colour,
                label=label,
            )
        for position, row in zip(positions, rows, strict=True):
            if row["saving_est"] is not None:
                axes.text(
                    _num(row["all_purpose_cost"]),
                    position - 0.18,
                    f"  saves {_money(_num(row['saving_est']), cur)}",
                    va="center",
                    fontsize=8.5,
                )
        _money_axis(axes, cur)
        axes.set_xlabel(f"cost ({cur})")
        _legend_below(figure, axes)
        subtitle = "billed all-purpose DBUs priced at the JOBS_COMPUTE rate instead"
    else:
        hours = [_num(r["task_hours"]) for r in rows]
        axes.barh(positions, hours, color=ORANGE, height=0.65)
        for position, value, row in zip(positions, hours, rows, strict=True):
            axes.text(
                value,
                position,
                f"  {value:.1f} h · {row['task_runs']} task runs",
                va="center",
                fontsize=8.5,
            )
        axes.set_xlabel("task hours on all-purpose clusters")
        subtitle = "no billed cost for these clusters yet: hours shown instead of money"
        _note(
            figure,
            "Import system.billing.usage (`jobruns billing import`) to price the saving; "
            "all-purpose DBUs cost about 3.7\u00d7 job DBUs at list price.",
        )
    axes.set_yticks(positions, labels)
    axes.invert_yaxis()
    axes.set_xlim(0, axes.get_xlim()[1] * 1.3)
    axes.grid(axis="x", color="#e6e9ec")
    axes.set_axisbelow(True)
    _title(figure, axes, title, subtitle)
    return figure


DIMENSIONS = {
    "creator": "job creator",
    "run_as": "run-as identity",
    "tag": "job tag",
    "trigger": "trigger",
    "run_type": "run type",
}


def spend_by_dimension(
    con: duckdb.DuckDBPyConnection,
    dimension: str,
    *,
    top: int = TOP,
    currency: str | None = None,
) -> Figure:
    """Cost by owner or label: dimension is creator, run_as, tag, trigger or run_type."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}")
    cur = _currency_of(con, currency)
    rows = _query(
        con,
        "SELECT value, sum(runs) AS runs, sum(failed_runs) AS failed_runs, sum(cost) AS cost "
        "FROM spend_by_dimension WHERE dimension = ? GROUP BY value "
        "ORDER BY cost DESC NULLS LAST, value LIMIT ?",
        [dimension, top],
    )
    what = DIMENSIONS[dimension]
    title = f"Cost by {what}"
    if not rows or not any(r["cost"] for r in rows):
        return _empty(title, f"No known cost by {what}.")
    figure, axes = _figure(height=_bar_height(len(rows)))
    costs = [_num(r["cost"]) for r in rows]
    _hbars(
        axes,
        [_job_label({"job_name": r["value"]}, 38) for r in rows],
        costs,
        colours=[BLUE if r["cost"] is not None else GREY for r in rows],
        annotations=[
            (_money(c, cur) if r["cost"] is not None else "no known cost") + f" · {r['runs']} runs"
            for c, r in zip(costs, rows, strict=True)
        ],
    )
    _money_axis(axes, cur)
    axes.set_xlabel(f"cost ({cur})")
    subtitle = (
        "a run counts under every tag of its job, so tags overlap"
        if dimension == "tag"
        else f"each run counted once, under its {what}"
    )
    _title(figure, axes, title, subtitle)
    return figure


# Charts a caller can ask for by name (the notebooks and the HTML report use the functions).
CHARTS: dict[str, Callable[..., Figure]] = {
    "success_rate_by_week": success_rate_by_week,
    "failure_causes": failure_causes,
    "flaky_tasks": flaky_tasks,
    "time_to_recover": time_to_recover,
    "duration_distribution": duration_distribution,
    "duration_regressions": duration_regressions,
    "queue_and_start_delay": queue_and_start_delay,
    "job_outcomes": job_outcomes,
    "top_spenders": top_spenders,
    "daily_spend": daily_spend,
    "weekly_spend_by_job": weekly_spend_by_job,
    "spend_movers": spend_movers,
    "wasted_spend": wasted_spend,
    "all_purpose_savings": all_purpose_savings,
    "spend_by_dimension": spend_by_dimension,
}


__all__ = [
    "CHARTS",
    "DIMENSIONS",
    "all_purpose_savings",
    "currency",
    "daily_spend",
    "duration_distribution",
    "duration_regressions",
    "failure_causes",
    "flaky_tasks",
    "job_outcomes",
    "queue_and_start_delay",
    "spend_by_dimension",
    "spend_movers",
    "success_rate_by_week",
    "time_to_recover",
    "top_spenders",
    "wasted_spend",
    "weekly_spend_by_job",
]
