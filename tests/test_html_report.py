"""The HTML report: one self-contained page with the charts inline, and the CLI that writes it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from extractor.analytics.connect import connect
from extractor.analytics.html_report import render_html
from extractor.analytics.report import build_report
from extractor.cli import cli
from tests.conftest import demo_copy

CHART_TITLES = (
    "Daily spend",
    "Top spenders: cost by job",
    "Week-over-week movers: change in cost",
    "Least reliable jobs: runs by outcome",
    "Wasted spend: failures and re-runs",
    "Flaky tasks: failures a retry or repair fixed",
    "Why runs fail: failed task runs by cause",
)


@pytest.fixture(scope="module")
def store(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_copy(demo_db, tmp_path_factory.mktemp("html"))


@pytest.fixture(scope="module")
def page(store: Path) -> tuple[str, str]:
    """The page `jobruns report --html` writes, and what the command printed on stderr."""
    out = store.with_name("monday.html")
    result = CliRunner().invoke(cli, ["report", "--db", str(store), "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    return out.read_text(encoding="utf-8"), result.stderr


def test_report_html_option_writes_the_page_and_prints_its_path(
    store: Path, page: tuple[str, str]
) -> None:
    html, stderr = page
    assert stderr.strip() == str(store.with_name("monday.html"))
    assert html.startswith("<!DOCTYPE html>")


def test_html_report_embeds_every_chart_as_inline_svg_with_its_title(
    page: tuple[str, str],
) -> None:
    html, _ = page
    assert html.count("<svg") == len(CHART_TITLES)
    labels = re.findall(r'<svg role="img" aria-label="([^"]+)"', html)
    assert [label.replace("&#x27;", "'") for label in labels] == list(CHART_TITLES)
    for heading in ("Spend by day", "Top spenders", "Least reliable jobs", "Stuck runs"):
        assert f"<h2>{heading}</h2>" in html
    assert "Success rate" in html and "$" in html


def test_html_report_loads_nothing_from_outside_the_page(page: tuple[str, str]) -> None:
    html, _ = page
    assert "http" not in html
    assert not re.search(r"<(script|link|img|iframe|object)\b", html)
    assert "@import" not in html
    assert not re.search(r"url\((?!#)", html)  # only references inside the page's own SVG


def test_html_report_of_an_empty_window_says_so_instead_of_drawing_blank_charts(
    store: Path,
) -> None:
    con = connect(store)
    try:
        report = build_report(con, days=30, job_id=-1)
    finally:
        con.close()
    html = render_html(report)
    assert html.count("<svg") == len(CHART_TITLES)
    assert html.count("None.") >= 5
    assert "No runs in this period." in html or "No run" in html
