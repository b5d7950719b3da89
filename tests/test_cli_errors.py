"""Bad input meets one clear paragraph, the right exit code and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from extractor.dev.simulator import SimServer, Workspace, serve
from extractor.store import Store
from tests.conftest import START_MS, jobruns


@pytest.fixture(scope="module")
def server() -> object:
    sim = serve(Workspace.generate(3, jobs=3, runs=20, now_ms=START_MS))
    yield sim
    sim.stop()


def test_missing_host_says_how_to_set_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, text = jobruns(capsys, "extract", "--db", str(tmp_path / "s.duckdb"))
    assert code == 2
    assert "no Databricks host configured" in text and "DATABRICKS_HOST" in text


def test_missing_token_says_how_to_set_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: SimServer
) -> None:
    code, text = jobruns(capsys, "extract", "--host", server.url, "--db", str(tmp_path / "s.db"))
    assert code == 2
    assert "credentials" in text and "DATABRICKS_TOKEN" in text


def test_wrong_token_is_an_authentication_failure(
    capsys, tmp_path: Path, server: SimServer
) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "s.duckdb")
    code, text = jobruns(
        capsys, "extract", "--host", server.url, "--token", "dapiwrong", "--db", db
    )
    assert code == 1
    assert f"authentication failed (403) for {server.url}" in text
    assert "dapiwrong" not in text


def test_connection_refused_fails_fast(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real budget (20 s) is pinned by the slow test below; here it is shortened.
    monkeypatch.setattr("extractor.client.CONNECT_RETRY_BUDGET_S", 0.3)
    # So is the SDK's own probe of the host's metadata, which gives up and falls back.
    monkeypatch.setattr("extractor.config._SDK_RETRY_TIMEOUT_S", 1)
    host = "http://127.0.0.1:9"  # discard port: nothing listens
    code, text = jobruns(
        capsys, "extract", "--host", host, "--token", "dapi0123", "--db", str(tmp_path / "s")
    )
    assert code == 1
    assert f"cannot reach {host}" in text and "Connection refused" in text


@pytest.mark.slow
@pytest.mark.parametrize("host", ["http://127.0.0.1:9", "https://jobruns-test.invalid"])
def test_unreachable_host_fails_within_30_seconds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, host: str
) -> None:
    import time

    began = time.monotonic()
    code, text = jobruns(
        capsys, "extract", "--host", host, "--token", "dapi0123", "--db", str(tmp_path / "s")
    )
    assert code == 1 and "cannot reach" in text
    assert time.monotonic() - began < 30


def test_plain_http_to_a_remote_host_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, text = jobruns(
        capsys,
        "extract",
        "--host",
        "http://example.com",
        "--token",
        "dapi0123",
        "--db",
        str(tmp_path / "s"),
    )
    assert code == 2 and "refusing plain http://" in text


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--since", "not-a-date", "invalid --since value 'not-a-date'"),
        ("--until", "yesterday-ish", "invalid --until value"),
        ("--overlap", "banana", "--overlap: invalid duration 'banana'"),
        ("--concurrency", "0", "Invalid value for '--concurrency'"),
        ("--bogus", "1", "No such option '--bogus'"),
    ],
)
def test_bad_options_are_usage_errors(
    capsys, tmp_path: Path, server: SimServer, option: str, value: str, message: str
) -> None:
    code, text = jobruns(
        capsys, "extract", "--host", server.url, "--token", server.token, "--db",
        str(tmp_path / "s.duckdb"), option, value,
    )  # fmt: skip
    assert code == 2
    assert message in text


def _not_duckdb(path: Path) -> Path:
    path.write_text("this is a CSV, not a store\n")
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _newer(path: Path) -> Path:
    Store(path).initialize()
    con = duckdb.connect(str(path))
    con.execute("UPDATE jobruns_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_not_duckdb, "is not a DuckDB file; pass another --db path"),
        (_folder, "is a folder, not a DuckDB file"),
        (lambda p: p / "missing" / "s.duckdb", "folder"),
        (_newer, "written by a newer jobruns (schema version 99"),
    ],
    ids=["not_duckdb", "folder", "missing_folder", "newer"],
)
def test_unusable_store_is_refused_with_exit_1(
    capsys, tmp_path: Path, server: SimServer, make, message: str
) -> None:
    db = make(tmp_path / "s.duckdb")
    code, text = jobruns(
        capsys, "extract", "--host", server.url, "--token", server.token, "--db", str(db)
    )
    assert code == 1
    assert message in text
    if db.exists() and db.is_file():
        code, text = jobruns(capsys, "query", "SELECT 1", "--db", str(db))
        assert code == 1 and message in text


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only file")
def test_unwritable_store_is_refused_with_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, server: SimServer
) -> None:
    db = tmp_path / "s.duckdb"
    Store(db).initialize()
    db.chmod(0o444)
    code, text = jobruns(
        capsys, "extract", "--host", server.url, "--token", server.token, "--db", str(db)
    )
    assert code == 1 and "permission denied" in text


def _program(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter that runs `script`, its output captured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    env["DATABRICKS_CONFIG_FILE"] = str(tmp_path / "no-databrickscfg")
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_program_exits_with_the_command_s_code_its_output_and_exit_handlers_whole(
    tmp_path: Path,
) -> None:
    # `jobruns` skips tearing the interpreter down; what it printed and what exit handlers do
    # still reaches the end, and the exit code is the command's.
    template = (
        "import atexit, sys\n"
        "from extractor.cli import run\n"
        "atexit.register(lambda: print('exit handler ran', flush=True))\n"
        "sys.argv = ['jobruns', *{args!r}]\n"
        "run()\n"
        "print('not reached')\n"
    )
    done = _program(template.format(args=["--version"]), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("jobruns, version")
    assert done.stdout.splitlines()[-1] == "exit handler ran"
    missing = str(tmp_path / "none.duckdb")
    done = _program(template.format(args=["query", "--db", missing, "SELECT 1"]), tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "error:" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout.strip() == "exit handler ran"


def test_the_program_waits_for_a_worker_thread_still_running(tmp_path: Path) -> None:
    script = (
        "import sys, threading, time\n"
        "from extractor.cli import run\n"
        "def later():\n"
        "    time.sleep(0.3)\n"
        "    print('worker done', flush=True)\n"
        "threading.Thread(target=later).start()\n"
        "sys.argv = ['jobruns', '--version']\n"
        "run()\n"
    )
    done = _program(script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "worker done"
