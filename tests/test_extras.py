"""Every command on a plain `pip install jobruns`: works, or exits 2 naming the extra to install.

The default suite hides the optional packages from a child interpreter with an import hook; the
slow test builds a real virtualenv with the base dependencies alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from extractor.cli import cli
from extractor.dev.simulator import SimServer, Workspace, serve
from tests.conftest import START_MS
from tests.test_cost import BILLING_CSV

# A child Python per command with the optional packages hidden: seconds each, so these run
# with the slow tests (CI runs them on every change).
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# databricks-sdk is a base dependency (sign-in), so it is not hidden.
OPTIONAL = ("sqlglot", "deltalake", "matplotlib", "pyspark", "nbclient")

# Runs the CLI once per command line of argv[1] (JSON) in one fresh interpreter where importing
# an optional package fails as it does when the package is not installed; prints each command's
# exit code and output as JSON. One interpreter for all of them keeps the suite fast.
WITHOUT_EXTRAS = f"""
import contextlib, importlib.abc, io, json, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {OPTIONAL!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Hide())
from extractor.cli import main

results = []
for args in json.loads(sys.argv[1]):
    out = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code
    results.append((code, " ".join(out.getvalue().split())))
print(json.dumps(results))
"""

RATE_CARD = str(REPO / "extractor" / "data" / "rate_card.csv")
DB = ["--db", "s.duckdb"]

# (command line, exit code, what the output must say); together with NEEDS_AN_EXTRA and
# the extract below, every command of `jobruns --help`.
WORKS = [
    (["status", *DB], 0, "watermark"),
    (["init", *DB], 0, "store ready"),
    (["views"], 0, "job_reliability"),
    (["query", "SELECT count(*) AS n FROM runs", *DB], 0, "50"),
    (["report", *DB], 0, "Spend: "),
    (["report", "--format", "json", *DB], 0, '"period"'),
    (["rates", "import", RATE_CARD, *DB], 0, "imported"),
    (["billing", "import", "billing.csv", *DB], 0, "imported"),
    (["export", "lake", "--format", "parquet", *DB], 0, "(parquet)"),
    (["bench", "--tiny", "--only", "views"], 0, "pip install 'jobruns[export]'"),
    # The actions import no extra: without a host they stop at the configuration.
    (["repair", *DB], 2, "no Databricks host configured"),
    (["cancel", "--stuck", *DB], 2, "no Databricks host configured"),
    (["output", "1", *DB], 2, "no Databricks host configured"),
    (["alerts", "--dry-run", *DB], 0, ""),  # exit 0 and no traceback is the point
]
# (command line, the missing package, the extra it must name)
NEEDS_AN_EXTRA = [
    (["export", "lake", "--format", "delta", *DB], "deltalake", "'jobruns[export]'"),
    (
        ["export", "unwritten", "--format", "parquet", "--sql-dialect", "spark", *DB],
        "sqlglot",
        "'jobruns[spark]'",
    ),
    (
        ["export", "lake", "--sql-only", "--sql-dialect", "databricks", *DB],
        "sqlglot",
        "'jobruns[export]'",
    ),
    (["report", "--html", "report.html", *DB], "matplotlib", "'jobruns[notebooks]'"),
]
HELP = [
    [name, *sub, "--help"]
    for name, command in cli.commands.items()
    for sub in [[], *([s] for s in getattr(command, "commands", {}))]
]


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    sim = serve(Workspace.generate(5, jobs=3, runs=20, now_ms=START_MS))
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, server: SimServer
) -> tuple[Path, dict[str, tuple[int, str]]]:
    """The folder the commands ran in, and (exit code, output) by command line."""
    folder = tmp_path_factory.mktemp("no-extras")
    (folder / "billing.csv").write_text(BILLING_CSV, encoding="utf-8")
    extract = ["extract", "--host", server.url, "--token", server.token, "--db", "x.duckdb"]
    demo = ["demo", "--runs", "50", "-q", *DB]
    describe = ["auth", "describe", "--host", server.url, "--token", server.token]
    lines = [demo, extract, describe, *(c[0] for c in WORKS + NEEDS_AN_EXTRA), *HELP]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS, json.dumps(lines)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    )
    results = {
        " ".join(line): (int(code), text)
        for line, (code, text) in zip(lines, json.loads(done.stdout), strict=True)
    }
    for line, (_, text) in results.items():
        assert "Traceback (most recent call last)" not in text and "internal error:" not in text, (
            line,
            text,
        )
    return folder, results


def _id(value: object) -> str | None:
    return " ".join(value) if isinstance(value, list) else None


@pytest.mark.parametrize(("args", "code", "says"), WORKS, ids=_id)
def test_command_works_without_the_extras(
    outcomes: tuple[Path, dict[str, tuple[int, str]]], args: list[str], code: int, says: str
) -> None:
    got, text = outcomes[1][" ".join(args)]
    assert (got, says in text) == (code, True), text


@pytest.mark.parametrize(("args", "package", "extra"), NEEDS_AN_EXTRA, ids=_id)
def test_command_needing_an_extra_says_which_to_install(
    outcomes: tuple[Path, dict[str, tuple[int, str]]], args: list[str], package: str, extra: str
) -> None:
    code, text = outcomes[1][" ".join(args)]
    assert code == 2, text
    assert f"needs {package}, which is not installed: pip install" in text
    assert extra in text


def test_demo_extract_and_auth_describe_work_without_the_extras(
    outcomes: tuple[Path, dict[str, tuple[int, str]]],
) -> None:
    folder, results = outcomes
    for line, (code, text) in results.items():
        if line.startswith(("demo ", "extract ", "auth describe ")):
            assert code == 0, (line, text)
    assert (folder / "x.duckdb").exists()


def test_sql_dialect_without_sqlglot_exports_nothing(
    outcomes: tuple[Path, dict[str, tuple[int, str]]],
) -> None:
    assert not (outcomes[0] / "unwritten").exists()


def test_every_help_page_shows_without_the_extras(
    outcomes: tuple[Path, dict[str, tuple[int, str]]],
) -> None:
    for args in HELP:
        code, text = outcomes[1][" ".join(args)]
        assert code == 0 and "Usage:" in text, (args, text)


def test_every_command_is_tried_without_the_extras() -> None:
    tried = {args[0] for args, *_ in WORKS + NEEDS_AN_EXTRA} | {"demo", "extract", "auth"}
    assert tried == set(cli.commands)


BASE_DEPENDENCIES = (
    "duckdb", "pyarrow", "httpx", "orjson", "pydantic", "click", "rich", "databricks-sdk",
)  # fmt: skip


def test_plain_install_exports_parquet_and_names_the_extra_for_delta(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / ("Scripts" if os.name == "nt" else "bin") / "python"
    jobruns = python.parent / "jobruns"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # The base dependencies only, then the project without its (optional) extras.
    subprocess.run([*pip, *BASE_DEPENDENCIES], check=True, timeout=600)
    subprocess.run([*pip, "--no-deps", str(REPO)], check=True, timeout=600)

    # demo and export share the store through JOBRUNS_DB, as a user's shell would.
    env = {**os.environ, "JOBRUNS_DB": str(tmp_path / "jobruns.duckdb")}

    def run(*args: str) -> tuple[int, str]:
        done = subprocess.run(
            [str(jobruns), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        text = " ".join((done.stdout + done.stderr).split())
        assert "Traceback (most recent call last)" not in text and "internal error:" not in text, (
            text
        )
        return done.returncode, text

    missing = subprocess.run(
        [
            str(python),
            "-c",
            f"import importlib.util as u; print([m for m in {OPTIONAL!r} if u.find_spec(m)])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert missing.stdout.strip() == "[]"
    assert run("demo", "--runs", "50", "-q")[0] == 0
    code, text = run("export", "out", "--format", "parquet")
    assert code == 0, text
    assert (tmp_path / "out" / "runs").is_dir()
    code, text = run("export", "out", "--format", "delta")
    assert code == 2, text
    assert "pip install 'jobruns[export]'" in text
