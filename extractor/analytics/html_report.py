"""The Monday report as one self-contained HTML page: summary, charts as inline SVG, tables.

The numbers come from `extractor.analytics.report.build_report` and the charts from `extractor.analytics.charts`;
this module only lays them out. The page loads nothing from anywhere (no CSS, JS or fonts), so
it opens offline and can be mailed as an attachment.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from extractor.analytics import charts
from extractor.analytics.report import SECTIONS, build_report

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Row = dict[str, Any]

# (report key, chart drawn from those rows, whether it shows money); the order they appear in.
CHARTS: tuple[tuple[str, Callable[..., Figure], bool], ...] = (
    ("spend_by_day", charts.daily_spend, True),
    ("top_spenders", charts.top_spenders, True),
    ("movers", charts.spend_movers, True),
    ("least_reliable_jobs", charts.job_outcomes, False),
    ("wasted_spend", charts.wasted_spend, True),
    ("flaky_tasks", charts.flaky_tasks, False),
    ("failure_causes", charts.error_causes, True),
)

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
  color: #1f2933; background: #f4f6f8; margin: 0; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 12px; border-bottom: 1px solid #d5dbe1; padding-bottom: 6px; }
.period { color: #52606d; margin: 0 0 20px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 12px; }
.card { background: #fff; border: 1px solid #e1e5ea; border-radius: 8px; padding: 12px 16px; }
.card .label { color: #52606d; font-size: 13px; }
.card .value { font-size: 24px; font-weight: 600; margin: 2px 0; }
.card .detail { color: #52606d; font-size: 12.5px; }
.charts { display: grid; gap: 16px; }
figure { background: #fff; border: 1px solid #e1e5ea; border-radius: 8px; margin: 0;
  padding: 10px; }
figure svg { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; background: #fff; font-size: 13.5px; width: 100%; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e6e9ec; text-align: left; }
th { background: #eef1f4; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.none { color: #52606d; }
summary { cursor: pointer; color: #3b6ea8; margin: 4px 0 8px; }
.scroll { overflow-x: auto; }
footer { color: #7b8794; font-size: 12px; margin-top: 32px; }
"""


def figure_svg(figure: Figure) -> str:
    """The figure as an inline <svg> element that scales to its container."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    # Inline SVG in HTML needs no namespaces or RDF metadata, and without them the page holds
    # no URL at all.
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, count=1, flags=re.DOTALL)
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    title = escape(figure.get_suptitle() or "chart")
    # Fixed point sizes out, the viewBox in: the chart follows its box's width.
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", svg, count=1)
    return svg.replace("<svg", f'<svg role="img" aria-label="{title}"', 1)


def _money(value: Any, currency: str) -> str:
    if value is None:
        return ""
    amount = float(value)
    if currency == "USD":
        return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"
    return f"{amount:,.2f} {currency}"


def _duration(ms: Any) -> str:
    if ms is None:
        return ""
    minutes = float(ms) / 60_000
    if minutes >= 120:
        return f"{minutes / 60:,.1f} h"
    if minutes >= 1:
        return f"{minutes:,.1f} min"
    return f"{float(ms) / 1000:,.1f} s"


def _cell(name: str, value: Any, currency: str) -> tuple[str, bool]:
    """A value as a person reads it, and whether it is a number (right-aligned)."""
    if value is None:
        return "", False
    if name.endswith(("cost", "_week", "change")) or name.startswith("cost"):
        return _money(value, currency), True
    if name.endswith(("_rate", "_share")):
        return f"{float(value):.1%}", True
    if name.endswith("_ms"):
        return _duration(value), True
    if name.endswith(("_time", "_at")) and isinstance(value, str):
        return value[:16].replace("T", " "), False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, int) and not name.endswith("_id"):
        return f"{value:,}", True
    if isinstance(value, float):
        return f"{value:,.2f}", True
    return str(value), name.endswith("_id")


# Columns the page leaves out of its tables: every row is in the same workspace for most readers.
_HIDDEN = {"workspace_id"}


def _table(rows: list[Row], currency: str) -> str:
    if not rows:
        return '<p class="none">None.</p>'
    names = [n for n in rows[0] if n not in _HIDDEN or len({r[n] for r in rows}) > 1]
    cells = [[_cell(n, r[n], currency) for n in names] for r in rows]
    numeric = [all(c[i][1] or not c[i][0] for c in cells) for i in range(len(names))]
    head = "".join(
        f'<th class="{"num" if numeric[i] else ""}">{escape(n.replace("_", " "))}</th>'
        for i, n in enumerate(names)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if numeric[i] else ""}">{escape(text)}</td>'
            for i, (text, _) in enumerate(row)
        )
        + "</tr>"
        for row in cells
    )
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _section(rows: list[Row], currency: str) -> str:
    """A table; a long one folded away (its chart above already gives the shape)."""
    if len(rows) <= _LONG:
        return _table(rows, currency)
    return (
        f"<details><summary>Show all {len(rows)} rows</summary>{_table(rows, currency)}</details>"
    )


_LONG = 12


def _card(label: str, value: str, detail: str) -> str:
    return (
        f'<div class="card"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(value)}</div><div class="detail">{escape(detail)}</div></div>'
    )


def _cards(report: dict[str, Any], currency: str) -> str:
    spend = report["spend"]
    rel = report["reliability"]
    wasted = sum(float(r["wasted_cost"] or 0) for r in report["wasted_spend"])
    rate = rel["success_rate"]
    estimated = spend["estimated_cost_est"]
    return (
        '<section class="cards">'
        + "".join(
            (
                _card(
                    "Spend",
                    _money(spend["cost"] or 0, currency),
                    f"{spend['runs']:,} runs; {_money(estimated or 0, currency)} estimated, "
                    f"{spend['runs_without_cost']:,} without a cost",
                ),
                _card(
                    "Success rate",
                    f"{float(rate):.1%}" if rate is not None else "n/a",
                    f"{rel['failed'] or 0:,} failed, {rel['canceled'] or 0:,} canceled, "
                    f"{rel['skipped'] or 0:,} skipped",
                ),
                _card(
                    "Wasted spend",
                    _money(wasted, currency),
                    f"failed and canceled runs and re-runs, top {len(report['wasted_spend'])} jobs",
                ),
                _card(
                    "Flaky tasks",
                    f"{len(report['flaky_tasks'])}",
                    "tasks whose failures a retry or repair fixed",
                ),
                _card(
                    "Stuck runs",
                    f"{len(report['stuck_runs'])}",
                    "active beyond 2\u00d7 their p95 duration or their timeout",
                ),
            )
        )
        + "</section>"
    )


def render_html(report: dict[str, Any], *, currency: str = "USD") -> str:
    """The report (from build_report) as a self-contained HTML page."""
    period = report["period"]
    now = datetime.fromisoformat(period["now"])
    scope = f" · job {report['job_id']}" if report.get("job_id") is not None else ""
    title = f"jobruns report: last {period['days']} days to {now:%Y-%m-%d}{scope}"
    figures = "".join(
        f"<figure>{figure_svg(draw(report[key], **({'currency': currency} if money else {})))}"
        "</figure>"
        for key, draw, money in CHARTS
    )
    tables = "".join(
        f"<h2>{escape(heading)}</h2>{_section(report[key], currency)}" for key, heading in SECTIONS
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body><main>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="period">Runs started {escape(period["since"][:16].replace("T", " "))} to '
        f"{escape(period['now'][:16].replace('T', ' '))} UTC{escape(scope)}. Costs in "
        f"{escape(currency)}: billed where billing data was imported, else estimated from list "
        "prices. Movers compare the last 7 days with the 7 before; wasted spend, flaky tasks and "
        "stuck runs cover the whole store.</p>"
        f"{_cards(report, currency)}"
        f'<h2>Charts</h2><section class="charts">{figures}</section>'
        f"{tables}"
        "<footer>Generated by jobruns from the analytics views; "
        "<code>jobruns views</code> lists them.</footer>"
        "</main></body></html>\n"
    )


def build_html_report(
    con: duckdb.DuckDBPyConnection, *, days: int = 30, job_id: int | None = None
) -> str:
    """Build the report from a store (views ready) and render it as HTML."""
    report = build_report(con, days=days, job_id=job_id)
    return render_html(report, currency=charts.currency(con))


def write_html_report(
    con: duckdb.DuckDBPyConnection, path: Path, *, days: int = 30, job_id: int | None = None
) -> Path:
    """Write the HTML report to `path`; returns the path."""
    path.write_text(build_html_report(con, days=days, job_id=job_id), encoding="utf-8")
    return path


__all__ = ["build_html_report", "figure_svg", "render_html", "write_html_report"]
