"""One writer, many readers, and stopping: real `jobruns` processes on one store file."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import pytest

from extractor.analytics.connect import connect
from extractor.dev.simulator import Faults
from extractor.errors import LockedError
from extractor.lock import ExtractLock, lock_path
from extractor.store import Store
from tests.conftest import assert_store_matches
from tests.fixtures.processes import LiveSim, clean_env, jobruns_argv, make_live_sim

FAST = ("--max-rps", "1000")


def wait_for_requests(live: LiveSim, proc: subprocess.Popen[str], count: int = 1) -> None:
    """Until the extract subprocess has sent `count` API requests (it is then mid-extract)."""
    deadline = time.monotonic() + 20
    while sum(live.server.stats()["requests"].values()) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the extract never reached the API"
        time.sleep(0.02)


@pytest.mark.parametrize(
    "until_done",
    [pytest.param(False, marks=pytest.mark.slow), pytest.param(True, marks=pytest.mark.slow)],
    ids=["once", "until_done"],
)
def test_while_an_extract_runs_readers_work_and_a_second_extract_is_refused(
    tmp_path: Path, until_done: bool
) -> None:
    # Slow enough answers that the writer is still running when the second extract, started
    # after its first request, has imported itself and reaches the lock (a few seconds).
    latency = 400
    with make_live_sim(tmp_path, 21, runs=120, faults=Faults(latency_ms=latency)) as live:
        Store(live.db).initialize()
        # A notebook's connection, held for the whole extract: a snapshot never blocks it.
        notebook = connect(live.db)
        writer = live.start(live.extract_argv(*FAST))
        wait_for_requests(live, writer)

        second = live.extract(*FAST)
        assert second.returncode == 1, second.stderr
        assert "another extract is running (pid " in second.stderr
        assert f"pid {writer.pid} since " in second.stderr
        assert "Traceback" not in second.stderr

        # `jobruns query` and `jobruns report` while the extract writes: they may wait, never fail.
        queries = 0
        while queries == 0 or (until_done and writer.poll() is None):
            readers = [
                live.start(
                    jobruns_argv("query", "SELECT count(*) FROM runs", "--db", str(live.db))
                ),
                live.start(jobruns_argv("report", "--db", str(live.db), "--format", "json")),
            ]
            for reader in readers:
                _out, err = reader.communicate(timeout=60)
                assert reader.returncode == 0, err
                assert "lock" not in err.lower()
            queries += 1
        _out, err = writer.communicate()
        assert writer.returncode == 0, err
        # The notebook still reads its snapshot, undisturbed.
        assert notebook.execute("SELECT count(*) FROM job_reliability").fetchall()[0][0] >= 0
        assert notebook.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 0
        notebook.close()
        assert_store_matches(live.sim)
        assert not list(tmp_path.glob("jobruns-snapshot-*"))


def test_a_lock_left_by_a_killed_extract_is_taken_over(tmp_path: Path) -> None:
    db = tmp_path / "store.duckdb"
    holder = subprocess.Popen(
        jobruns_argv_python(
            "import sys, time; from pathlib import Path; from extractor.lock import ExtractLock;"
            f" lock = ExtractLock(Path({str(db)!r})).__enter__(); print('held', flush=True);"
            " time.sleep(60)"
        ),
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(
                LockedError, match=rf"another extract is running \(pid {holder.pid} since "
            ),
            ExtractLock(db),
        ):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert f"pid {holder.pid}" in lock_path(db).read_text()  # the dead owner's note stays
    with ExtractLock(db):
        assert lock_path(db).read_text().startswith("pid ")
        assert f"pid {holder.pid} " not in lock_path(db).read_text()


def test_a_reader_waiting_for_a_store_an_extract_holds_gets_in_within_a_second(
    tmp_path: Path,
) -> None:
    # An extract keeps the file open across its write transactions (up to 10 s), and lets go
    # when a jobruns process says it waits. Here this process writes as an extract does.
    db = tmp_path / "store.duckdb"
    store = Store(db)
    store.initialize()
    stop = threading.Event()

    def write() -> None:
        with store.holding():
            while not stop.is_set():
                with store.transaction() as con:
                    con.execute("INSERT INTO extract_state (workspace_id, host) VALUES ('w', 'h')")
                time.sleep(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.3)  # the file is held now
        reader = subprocess.run(
            jobruns_argv_python(
                "import time; from pathlib import Path; from extractor.store import"
                f" open_connection; began = time.monotonic(); con = open_connection(Path({str(db)!r}),"
                " read_only=True); print(time.monotonic() - began,"
                " con.execute('SELECT count(*) FROM extract_state').fetchone()[0])"
            ),
            env=clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        stop.set()
        writer.join()
    assert reader.returncode == 0, reader.stderr
    waited, rows = reader.stdout.split()
    assert float(waited) < 1.0
    assert int(rows) > 0
    assert not (tmp_path / "store.duckdb.waiting").exists()


def jobruns_argv_python(code: str) -> list[str]:
    return [*jobruns_argv()[:1], "-c", code]


def _stop_with(tmp_path: Path, signum: int, seed: int) -> None:
    with make_live_sim(tmp_path, seed, runs=100, faults=Faults(latency_ms=300)) as live:
        proc = live.start(live.extract_argv(*FAST))
        wait_for_requests(live, proc, 14)
        sent = time.monotonic()
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=10)
        took = time.monotonic() - sent
        assert proc.returncode == 130, err
        assert took < 2.0, f"took {took:.1f} s to stop"
        assert "interrupted: what was committed is kept" in err
        assert "Traceback" not in err
        # The file is intact and what was committed is readable.
        con = duckdb.connect(str(live.db), read_only=True)
        try:
            assert con.execute("SELECT count(*) FROM jobs").fetchall()[0][0] >= 0
        finally:
            con.close()
        live.server.set_faults(Faults())
        assert live.extract(*FAST).returncode == 0
        assert_store_matches(live.sim)


@pytest.mark.slow
def test_sigterm_stops_within_two_seconds_and_keeps_what_was_committed(tmp_path: Path) -> None:
    _stop_with(tmp_path, signal.SIGTERM, 31)


@pytest.mark.slow
def test_ctrl_c_stops_within_two_seconds_and_keeps_what_was_committed(tmp_path: Path) -> None:
    _stop_with(tmp_path, signal.SIGINT, 32)
