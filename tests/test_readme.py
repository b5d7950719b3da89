"""The README's examples run as written: every SQL block against a demo store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import extractor
from extractor.dev.demo import EXAMPLE_QUERIES

README = Path(__file__).resolve().parents[1] / "README.md"


def sql_blocks() -> list[str]:
    """The SQL examples of the README's section on the views (other sections show Spark SQL)."""
    text = README.read_text().split("## Answers: the views", 1)[1].split("\n## ", 1)[0]
    statements = []
    for block in re.findall(r"```sql\n(.*?)```", text, flags=re.S):
        statements += [s.strip() for s in block.split(";") if s.strip()]
    return statements


@pytest.fixture(scope="module")
def demo_store(demo_db: Path) -> Path:
    return demo_db


def test_readme_has_an_example_for_each_question() -> None:
    assert len(sql_blocks()) >= 14


@pytest.mark.parametrize("sql", sql_blocks(), ids=lambda s: s.split("FROM")[1].split()[0])
def test_readme_sql_runs_on_the_demo_store(demo_store: Path, sql: str) -> None:
    con = extractor.connect(demo_store)
    try:
        con.execute(sql).fetchall()
    finally:
        con.close()


def test_demo_example_queries_return_rows(demo_store: Path) -> None:
    con = extractor.connect(demo_store)
    try:
        for title, sql in EXAMPLE_QUERIES:
            assert con.execute(sql).fetchall(), title
    finally:
        con.close()
