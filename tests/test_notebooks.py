"""The analysis notebooks: committed without outputs, and every cell runs and draws.

The notebooks are executed with nbclient against a small demo store built by
extractor.notebook, exactly as a user without JOBRUNS_DB would see them.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest

from extractor.errors import UsageError
from extractor.notebook import DEMO_JOBS, DEMO_RUNS, demo_store, describe, open_or_demo, store_path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ("reliability.ipynb", "cost.ipynb")


def test_notebooks_are_committed_without_outputs() -> None:
    for name in NAMES:
        notebook = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [], f"{name}: clear the outputs before committing"
                assert cell["execution_count"] is None, f"{name}: clear the execution counts"


def test_every_chart_has_a_markdown_cell_before_it() -> None:
    for name in NAMES:
        cells = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))["cells"]
        for before, cell in itertools.pairwise(cells):
            if cell["cell_type"] == "code" and "charts." in "".join(cell["source"]):
                assert before["cell_type"] == "markdown" or "charts." in "".join(
                    before["source"]
                ), f"{name}: explain the chart {''.join(cell['source'])!r}"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo store in a cache laid out like $XDG_CACHE_HOME/jobruns, shared by these tests."""
    directory = tmp_path_factory.mktemp("xdg") / "jobruns"
    demo_store(directory)
    return directory


def test_open_or_demo_builds_the_demo_store_once_and_reuses_it(cache: Path) -> None:
    path = demo_store(cache)
    built = path.stat().st_mtime_ns
    con = open_or_demo({}, directory=cache)  # no JOBRUNS_DB: the demo store
    try:
        assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == DEMO_RUNS
    finally:
        con.close()
    assert demo_store(cache) == path
    assert path.stat().st_mtime_ns == built
    assert [p.name for p in cache.iterdir()] == [path.name]  # no scratch left behind


def test_open_or_demo_opens_the_store_jobruns_db_names(cache: Path, tmp_path: Path) -> None:
    path = demo_store(cache)
    con = open_or_demo({"JOBRUNS_DB": str(path)}, directory=tmp_path / "unused")
    try:
        assert describe(con).startswith(f"{DEMO_RUNS} runs of {DEMO_JOBS} jobs")
    finally:
        con.close()
    assert not (tmp_path / "unused").exists()
    with pytest.raises(UsageError, match="does not exist"):
        store_path({"JOBRUNS_DB": str(tmp_path / "missing.duckdb")})


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_without_errors_and_draws_charts(
    name: str, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")
    # No JOBRUNS_DB: the notebooks open the demo store, already built in this cache.
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache.parent))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute(env=dict(os.environ))  # raises CellExecutionError on any failing cell
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    charts = sum("charts." in cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert len(images) == charts > 0
