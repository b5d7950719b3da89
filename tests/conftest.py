"""Shared fixtures: a simulated workspace served on loopback, a client for it, a store path,
and the comparison of a store with the simulator's ground truth."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pytest

from extractor.analytics.views import create_views
from extractor.cli import main
from extractor.client import JobsClient
from extractor.config import resolve_workspace
from extractor.dev.simulator import Faults, SimServer, Workspace, serve
from extractor.extract import ExtractResult, extract
from extractor.plan import ExtractOptions
from extractor.schema import KEYS, TABLES, create_tables
from extractor.store import Store

# The API reference's samples, in the shared folder beside the repository.
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "databricks-api" / "samples"


def sample_path(name: str) -> Path:
    """A sample response file; the test is skipped in a checkout without the shared folder."""
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"API sample {name} is not available beside this checkout")
    return path


# A fixed clock for the simulated workspace: 2026-11-02 12:00 UTC.
START_MS = 1_793_620_800_000
DAY_MS = 86_400_000


@pytest.fixture(autouse=True)
def _no_databricks_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never see the developer's credentials or config file."""
    for name in (
        "DATABRICKS_HOST",
        "DATABRICKS_TOKEN",
        "DATABRICKS_CLIENT_ID",
        "DATABRICKS_CLIENT_SECRET",
        "DATABRICKS_CONFIG_PROFILE",
        "DATABRICKS_AUTH_TYPE",
        "JOBRUNS_DB",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


# The simulator's periodic jobs fire at multiples of their period (at most two days, or a week),
# which divide this cycle: workspaces generated at multiples of it are alike.
SCHEDULE_CYCLE_MS = 14 * DAY_MS


def cycle_clock_ms() -> int:
    """The wall clock rounded down to a multiple of SCHEDULE_CYCLE_MS, at most 14 days behind it:
    for tests through the CLI (the machine's clock) that rely on the mix of runs a seed gives,
    which is then the same at any time of day and on any date."""
    return wall_clock_ms() // SCHEDULE_CYCLE_MS * SCHEDULE_CYCLE_MS


class Sim:
    """A served workspace plus what a test needs to extract it."""

    def __init__(self, server: SimServer, db: Path) -> None:
        self.server = server
        self.workspace: Workspace = server.workspace
        self.db = db
        self.store = Store(db)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.workspace.now_ms / 1000, tz=UTC)

    def client(self, **kwargs: Any) -> JobsClient:
        config = resolve_workspace(host=self.server.url, token=self.server.token, env={})
        kwargs.setdefault("max_rps", 1000.0)
        return JobsClient(config, **kwargs)

    def extract(self, options: ExtractOptions | None = None, **kwargs: Any) -> ExtractResult:
        with self.client(**kwargs) as client:
            return extract(client, self.store, options or ExtractOptions(), now=self.now)

    def advance(self, seconds: float) -> None:
        with self.server.lock:
            self.workspace.advance(seconds)


class MakeSim(Protocol):
    """The make_sim fixture: a served simulated workspace per call."""

    def __call__(
        self,
        seed: int = ...,
        *,
        runs: int = ...,
        jobs: int = ...,
        faults: Faults | None = ...,
        db: Path | None = ...,
        now_ms: int = ...,
        days: int = ...,
        cloud: str | None = ...,
        **kwargs: Any,
    ) -> Sim: ...


@pytest.fixture
def make_sim(tmp_path: Path) -> Iterator[MakeSim]:
    servers: list[SimServer] = []

    def make(
        seed: int = 11,
        *,
        runs: int = 600,
        jobs: int = 20,
        faults: Faults | None = None,
        db: Path | None = None,
        now_ms: int = START_MS,
        days: int = 60,
        cloud: str | None = None,
        **kwargs: Any,
    ) -> Sim:
        """A served workspace (of AWS unless `cloud` says azure or gcp); pass
        now_ms=wall_clock_ms() for tests that go through the CLI, whose clock is the machine's."""
        workspace = Workspace.generate(
            seed, jobs=jobs, runs=runs, days=days, now_ms=now_ms, cloud=cloud
        )
        server = serve(workspace, faults=faults, **kwargs)
        servers.append(server)
        return Sim(server, db or tmp_path / f"store-{seed}.duckdb")

    yield make
    for server in servers:
        server.stop()


def store_rows(
    db: Path, table: str, columns: list[str], where: str = "true"
) -> dict[Any, dict[str, Any]]:
    """Rows of a store table in ground-truth terms: epoch ms for times, dicts for maps."""
    types = TABLES[table]
    select = []
    for column in columns:
        sql_type = types[column]
        if sql_type == "TIMESTAMPTZ":
            select.append(f'epoch_ms("{column}") AS "{column}"')
        elif sql_type.startswith("MAP"):
            select.append(f'map_entries("{column}") AS "{column}"')
        else:
            select.append(f'"{column}"')
    con = duckdb.connect(str(db), read_only=True)
    try:
        cursor = con.execute(f"SELECT {', '.join(select)} FROM {table} WHERE {where}")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    finally:
        con.close()
    out: dict[Any, dict[str, Any]] = {}
    key_columns = [k for k in KEYS[table] if k != "workspace_id"]
    for row in rows:
        for column in columns:
            if types[column].startswith("MAP") and row[column] is not None:
                row[column] = {e["key"]: e["value"] for e in row[column]}
        for column in columns:
            # Arrays are sets here (dependencies, task runs of a repair): compare them sorted.
            if types[column].endswith("[]") and row[column] is not None:
                row[column] = sorted(row[column])
        key = row[key_columns[0]] if len(key_columns) == 1 else tuple(row[k] for k in key_columns)
        assert key not in out, f"duplicate {table} row for key {key}"
        out[key] = row
    return out


def assert_store_matches(
    sim: Sim, start_ms: int | None = None, end_ms: int | None = None
) -> dict[str, dict[Any, dict[str, Any]]]:
    """The store holds exactly the ground truth for runs started in [start_ms, end_ms]."""
    truth = sim.workspace.ground_truth(start_ms, end_ms)
    lo = -(2**62) if start_ms is None else start_ms
    hi = 2**62 if end_ms is None else end_ms
    ws = str(sim.workspace.workspace_id)
    in_window = f"workspace_id = '{ws}' AND deleted_at IS NULL AND epoch_ms(start_time) BETWEEN {lo} AND {hi}"
    parents = f"SELECT run_id FROM runs WHERE {in_window}"
    wheres = {
        "runs": in_window,
        "tasks": f"job_run_id IN ({parents})",
        "repair_history": f"job_run_id IN ({parents})",
        "task_iterations": f"job_run_id IN ({parents})",
        "jobs": f"workspace_id = '{ws}' AND deleted_at IS NULL",
    }
    for table, expected in truth.items():
        columns = list(next(iter(expected.values())).keys()) if expected else list(KEYS[table])
        got = store_rows(sim.db, table, columns, wheres[table])
        missing = expected.keys() - got.keys()
        extra = got.keys() - expected.keys()
        assert not missing, f"{table}: {len(missing)} rows missing, e.g. {sorted(missing)[:3]}"
        assert not extra, f"{table}: {len(extra)} unexpected rows, e.g. {sorted(extra)[:3]}"
        for key, row in expected.items():
            row = {c: sorted(v) if isinstance(v, list) else v for c, v in row.items()}
            if row != got[key]:
                diff = {c: (row[c], got[key].get(c)) for c in row if row[c] != got[key].get(c)}
                raise AssertionError(f"{table} {key} differs (expected, stored): {diff}")
    return truth


# -- an in-memory store with the views, for hand-built answers ----------------------------


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo store (400 runs, 20 jobs, seed 3) built once per test session, the xdist workers
    sharing it: read it, or copy it (`demo_copy`) to write to it or beside it."""
    from extractor.dev.demo import build_demo_store

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / "demo-shared" / "demo.duckdb"
    path.parent.mkdir(exist_ok=True)
    with (root / "demo-shared.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            building = path.with_name("building.duckdb")
            build_demo_store(building, runs=400, jobs=20, seed=3)
            building.rename(path)
    return path


def demo_copy(demo_db: Path, directory: Path) -> Path:
    """A copy of the shared demo store in `directory`, the test's own."""
    directory.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(demo_db, directory / "demo.duckdb"))


@pytest.fixture(scope="module")
def views_store() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    create_tables(con)
    create_views(con)
    con.execute("CREATE TEMP TABLE shipped_rates AS SELECT * FROM rate_card")
    yield con
    con.close()


@pytest.fixture
def views_con(views_store: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """The shared store, emptied: creating the views once per module keeps the tests fast."""
    for table in TABLES:
        views_store.execute(f"DELETE FROM {table}")
    views_store.execute("INSERT INTO rate_card SELECT * FROM shipped_rates")
    return views_store


def jobruns(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the console entry in-process: (exit code, stdout + stderr).

    An extract runs without jobruns' own rate limit (the simulator has none unless a test's
    faults set one) unless the test passes --max-rps itself."""
    argv = list(args)
    if argv[:1] == ["extract"] and "--max-rps" not in argv:
        argv += ["--max-rps", "1000"]
    previous = signal.getsignal(signal.SIGTERM)
    try:
        main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        signal.signal(signal.SIGTERM, previous)
    out = capsys.readouterr()
    text = " ".join((out.out + out.err).split())
    assert "Traceback" not in text
    return code, text
