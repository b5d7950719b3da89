"""`jobruns bench`: extraction speed, load speed, memory and view latency, measured against targets.

Runs the real extractor against the built-in simulator (rate-limited, with latency), a serial
databricks-sdk loop for comparison, the views over a large generated store and a fleet of
simulators in processes of their own; prints one table of measured value, target, ratio and
verdict. Works only in a temporary folder, never on a user's store.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
from rich.console import Console

from extractor.analytics.cost import import_billing, import_list_prices
from extractor.analytics.failures import signature_columns
from extractor.client import JobsClient, strip_paging
from extractor.config import resolve_workspace
from extractor.dev import targets
from extractor.dev.simulator import Faults, SimServer, Workspace, serve
from extractor.errors import JobrunsError, NotFoundError, UsageError
from extractor.extract import (
    ExtractResult,
    extract,
    needs_full_fetch,
)
from extractor.extras import require
from extractor.flatten import RunBundle, flatten_runs, is_for_each, prepare_runs
from extractor.pipeline import extract_into, release_memory_promptly
from extractor.plan import ExtractOptions
from extractor.schema import TABLES, create_tables
from extractor.store import RunWriter, Store, store_files

SECTIONS = ("cold", "sdk", "incremental", "load", "memory", "views", "cost", "fleet")
# `--skip sdk,memory,views` reads naturally; so does `--skip extract` for the first section.
ALIASES = {"extract": "cold"}
# Every API path counts towards the rate limit: the Jobs API, clusters, instance pools.
API_PREFIX = "/api/"
# No-change extracts from the CLI measured, each a new process; the median counts.
CLI_PROCESSES = 5
# The simulated clock: 2026-11-02 12:00 UTC, as in the tests, so every run is reproducible.
START_MS = 1_793_620_800_000
DAY_MS = 86_400_000
RETENTION_DAYS = 60
FLUSH_RUNS = ExtractOptions().flush_runs
# Runs per second the no-network load should reach on 2 cores: the API rate of about seven
# workspaces (30 requests/s of 25 runs each).
LOAD_TARGET = 5_000

err = Console(stderr=True, highlight=False)


@dataclass
class BenchConfig:
    """Sizes and targets of one benchmark; `tiny()` shrinks every size to seconds."""

    runs: int = 20_000
    jobs: int = 25
    latency_ms: int = 300
    jitter_ms: int = 50
    rps: float = 30.0
    max_rps: float = 28.0
    concurrency: int = 10
    sdk_runs: int | None = None
    new_runs: int = 500
    load_runs: int = 20_000
    load_rounds: int = 3
    load_tasks: int = 10
    memory_runs: tuple[int, ...] = (50_000, 200_000)
    view_runs: int = 1_000_000
    view_tasks: int = 10
    seed: int = 1
    # The cost section's workspaces: seeds no test uses (this one on AWS, the next two on Azure
    # and GCP), 30 days each (billing of the first 20).
    cost_seed: int = 61
    cost_runs: int = 1500
    # The fleet section's workspaces, each served by its own simulator process: seeds from
    # fleet_seed on (none used by a test), clouds in turn.
    fleet_workspaces: int = 8
    fleet_runs: int = 2500
    fleet_seed: int = 71
    sections: tuple[str, ...] = SECTIONS
    tiny: bool = False

    def api_faults(self) -> Faults:
        """The simulated API of the extraction rows: latency, jitter and the server's limit
        (429 with Retry-After: 1)."""
        return Faults(
            latency_ms=self.latency_ms,
            jitter_ms=self.jitter_ms,
            rate_limit_rps=self.rps,
            retry_after_s=1,
            seed=self.seed,
        )

    def shrunk(self) -> BenchConfig:
        return replace(
            self,
            runs=300,
            latency_ms=20,
            jitter_ms=5,
            sdk_runs=None,
            new_runs=40,
            load_runs=600,
            load_rounds=2,
            memory_runs=(300, 1200),
            view_runs=5_000,
            cost_runs=300,
            fleet_workspaces=2,
            fleet_runs=60,
            tiny=True,
        )


def _names(text: str, option: str) -> set[str]:
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - set(SECTIONS) - set(ALIASES)
    if unknown:
        raise UsageError(
            f"{option}: unknown section {', '.join(sorted(unknown))}; use {', '.join(SECTIONS)}"
        )
    return {ALIASES.get(n, n) for n in names}


def bench_config(
    *, skip: str = "", only: str = "", memory_runs: str = "", tiny: bool = False, **sizes: Any
) -> BenchConfig:
    """A BenchConfig from CLI values: section lists by name, memory sizes as `50000,200000`."""
    wanted = _names(only, "--only") or set(SECTIONS)
    wanted -= _names(skip, "--skip")
    if memory_runs:
        try:
            sizes["memory_runs"] = tuple(int(n) for n in memory_runs.split(",") if n.strip())
        except ValueError:
            raise UsageError("--memory-runs: a comma-separated list of run counts") from None
    cfg = BenchConfig(**sizes)
    if tiny:
        cfg = cfg.shrunk()
    return replace(cfg, sections=tuple(s for s in SECTIONS if s in wanted))


@dataclass
class Row:
    section: str
    metric: str
    measured: str
    target: str = ""
    ratio: float | None = None
    met: bool | None = None
    note: str = ""


@dataclass
class Report:
    config: BenchConfig
    rows: list[Row] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        verdict = {True: "[green]met[/]", False: "[red]NOT met[/]", None: ""}[row.met]
        err.print(f"  {row.section} · {row.metric}: {row.measured} {verdict}")

    def markdown(self) -> str:
        cfg = self.config
        lines = ["# jobruns benchmark" + (" (tiny)" if cfg.tiny else ""), ""]
        lines += [f"- {k}: {v}" for k, v in self.machine.items()]
        lines.append(
            f"- simulator: {cfg.runs} runs, {cfg.jobs} jobs, latency {cfg.latency_ms}±"
            f"{cfg.jitter_ms} ms, server limit {cfg.rps:g} rps (429 + Retry-After: 1);"
            f" jobruns at --max-rps {cfg.max_rps:g}, concurrency {cfg.concurrency}"
        )
        if "fleet" in cfg.sections:
            lines.append(
                f"- fleet: {cfg.fleet_workspaces} workspaces x {cfg.fleet_runs} runs, the same"
                " latency and limit, each simulator in a process of its own"
            )
        lines += ["", "| section | metric | measured | target | ratio | met | note |"]
        lines.append("|---|---|---|---|---|---|---|")
        # Sections run in the order that suits the simulator; the table reads in section order.
        for r in sorted(self.rows, key=_section_order):
            ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
            met = {True: "yes", False: "**no**", None: ""}[r.met]
            cells = (r.section, r.metric, r.measured, r.target, ratio, met, r.note)
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        return "\n".join(lines) + "\n"


def _section_order(row: Row) -> int:
    """A row's place: its section's number ("10 fleet" after "9 failures"); a section that
    failed (named, not numbered) at the end."""
    number = row.section.split()[0]
    return int(number) if number.isdigit() else 1_000


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ""
    with contextlib.suppress(OSError):
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return {
        "machine": f"{cpu}, {os.cpu_count()} cores, load average at start {load or 'n/a'}",
        "software": f"Python {platform.python_version()}, duckdb {duckdb.__version__},"
        f" pyarrow {pa.__version__}, {platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _child_env() -> dict[str, str]:
    """The environment of a child interpreter: this package first on its path."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


# -- the simulated workspace ---------------------------------------------------------------------


class SimRun:
    """A served workspace and a scratch store, with the simulator's clock as `now`."""

    def __init__(
        self,
        cfg: BenchConfig,
        runs: int,
        faults: Faults,
        folder: Path,
        *,
        days: int = RETENTION_DAYS,
        cloud: str = "aws",
        seed: int | None = None,
    ) -> None:
        self.cfg = cfg
        with _step(f"generating a workspace of {runs} runs ({cloud})"):
            self.workspace = Workspace.generate(
                cfg.seed if seed is None else seed,
                jobs=cfg.jobs,
                runs=runs,
                days=days,
                now_ms=START_MS,
                cloud=cloud,
            )
        self.server: SimServer = serve(self.workspace, faults=faults)
        self.db = folder / f"store-{runs}-{cloud}.duckdb"
        self.store = Store(self.db)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.workspace.now_ms / 1000, tz=UTC)

    def client(self, *, max_rps: float | None = None) -> JobsClient:
        config = resolve_workspace(host=self.server.url, token=self.server.token, env={})
        return JobsClient(
            config,
            max_rps=max_rps or self.cfg.max_rps,
            max_concurrency=self.cfg.concurrency,
        )

    def extract(
        self, options: ExtractOptions | None = None, *, max_rps: float | None = None
    ) -> tuple[ExtractResult, float, Requests]:
        """One extraction: its result, wall seconds and API requests by status/endpoint."""
        self.server.reset_stats()
        opts = options or ExtractOptions(concurrency=self.cfg.concurrency)
        with self.client(max_rps=max_rps) as client:
            began = time.perf_counter()
            result = extract(client, self.store, opts, now=self.now, signer=signature_columns)
            wall = time.perf_counter() - began
        return result, wall, api_requests(self.server)

    def extract_into(self) -> Requests:
        """An extraction as `jobruns extract` runs it (views brought up to date after it);
        returns its API requests."""
        self.server.reset_stats()
        config = resolve_workspace(host=self.server.url, token=self.server.token, env={})
        (outcome,) = extract_into(
            self.db, [("sim", config)], ExtractOptions(), max_rps=10_000, now=self.now
        )
        if outcome.error is not None:
            raise outcome.error
        return api_requests(self.server)

    def advance(self, seconds: float) -> None:
        with self.server.lock:
            self.workspace.advance(seconds)

    def close(self) -> None:
        self.server.stop()


@dataclass(frozen=True)
class Requests:
    """API requests of one extraction: 2xx answers by endpoint, all requests, 429s."""

    by_endpoint: dict[str, int]
    total: int
    throttled: int

    @property
    def ok(self) -> int:
        return sum(self.by_endpoint.values())

    def get(self, endpoint: str) -> int:
        return self.by_endpoint.get(endpoint, 0)

    def note(self) -> str:
        """`jobs/runs/list 12, jobs/runs/get 3, ...; 429s 4`, the busiest endpoint first."""
        parts = [f"{k} {n}" for k, n in sorted(self.by_endpoint.items(), key=lambda kv: -kv[1])]
        return ", ".join(parts) + (f"; 429s {self.throttled}" if self.throttled else "")


def api_requests(server: SimServer) -> Requests:
    """Every API request the server answered: 2xx by endpoint (`jobs/runs/list`,
    `clusters/events`, ...), all of them whatever their status, and the 429s among them."""
    return requests_of(server.stats())


def requests_of(stats: dict[str, Any]) -> Requests:
    """`api_requests` from a simulator's stats (`SimServer.stats()`, or its `/_sim/stats`)."""
    ok = {
        path.split("/", 3)[3]: int(n)
        for path, n in stats["ok"].items()
        if path.startswith(API_PREFIX) and n
    }
    total = sum(int(n) for p, n in stats["requests"].items() if p.startswith(API_PREFIX))
    return Requests(ok, total, int(stats["statuses"].get("429", 0)))


@contextlib.contextmanager
def _step(what: str) -> Iterator[None]:
    began = time.perf_counter()
    with err.status(what + " ..."):
        yield
    err.print(f"[dim]{what}: {time.perf_counter() - began:.1f} s[/]")


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3g}"


def _ratio_row(
    section: str,
    metric: str,
    value: float,
    limit: float,
    unit: str,
    note: str = "",
    *,
    at_least: bool = False,
    target: str | None = None,
) -> Row:
    """A row whose ratio is measured / target; met when at most 1 (or at least 1 if at_least)."""
    ratio = value / limit
    return Row(
        section,
        metric,
        f"{_fmt(value)} {unit}".rstrip(),
        target or f"{'>=' if at_least else '<='} {_fmt(limit)} {unit}".rstrip(),
        ratio,
        ratio >= 1.0 if at_least else ratio <= 1.0,
        note,
    )


# -- 1 and 3: jobruns, cold and incremental ---------------------------------------------------


def bench_cold(cfg: BenchConfig, report: Report, sim: SimRun) -> float:
    """The first extract of the whole retention; returns its wall time (for the SDK ratio)."""
    with _step(f"cold extract of {cfg.runs} runs"):
        result, wall, req = sim.extract()
    bound = req.ok / cfg.rps
    report.add(
        Row(
            "1 cold extract",
            f"{result.runs_seen} runs, {req.total} requests",
            f"{wall:.1f} s",
            f"<= 1.25x rate bound ({bound:.1f} s = {req.ok} req / {cfg.rps:g} rps)",
            wall / bound if bound else None,
            wall <= 1.25 * bound if bound else None,
            req.note(),
        )
    )
    report.add(
        Row(
            "1 cold extract",
            "throughput",
            f"{req.total / wall:.1f} req/s, {result.runs_seen / wall:.0f} runs/s",
            note=f"{result.pages} pages; rate bound = 2xx requests / server limit",
        )
    )
    return wall


def bench_incremental(cfg: BenchConfig, report: Report, sim: SimRun) -> None:
    with _step("incremental extract, nothing new"):
        result, wall, req = sim.extract()
    report.add(
        _ratio_row(
            "3 incremental",
            "nothing new",
            wall,
            2.0,
            "s",
            f"{req.total} requests ({req.note()}); {result.runs_refreshed} active runs refreshed",
        )
    )
    before = sim.workspace.now_ms
    active = len(sim.store.active_runs(str(result.workspace_id)))
    per_second = cfg.runs / (RETENTION_DAYS * 86_400)
    sim.advance(cfg.new_runs / per_second)
    appeared = len(sim.workspace.run_ids(before + 1, None))
    # Hourly sweeps and daily rescans are what they are; this measures the incremental path only.
    opts = ExtractOptions(
        concurrency=cfg.concurrency,
        repair_every=timedelta(days=365),
        rescan_every=timedelta(days=365),
    )
    with _step(f"incremental extract, {appeared} new runs"):
        result, wall, req = sim.extract(opts)
    bound = req.ok / cfg.rps
    limit = max(2.0, 1.25 * bound)
    report.add(
        _ratio_row(
            "3 incremental",
            f"{result.runs_new} new runs, {result.runs_changed + result.runs_refreshed}"
            f" changed/completed",
            wall,
            limit,
            "s",
            f"{req.total} requests ({req.note()}); {active} runs were active;"
            " sweep and rescan not due",
            target=f"<= max(2 s, 1.25x rate bound {bound:.1f} s)",
        )
    )


def _real_clock_workspace(cfg: BenchConfig, runs: int) -> Workspace:
    """A workspace of the bench's seed whose clock is the real one, for rows measured through
    the CLI (which reads the machine's clock)."""
    with _step(f"generating a workspace of {runs} runs on the real clock"):
        return Workspace.generate(
            cfg.seed, jobs=cfg.jobs, runs=runs, days=RETENTION_DAYS, now_ms=int(time.time() * 1000)
        )


def bench_cli_incremental(cfg: BenchConfig, report: Report, folder: Path) -> None:
    """`jobruns extract` with nothing new, as cron starts it: a new process each time.

    The CLI reads the real clock, so this workspace's clock is the real one too (the simulated
    clock of the other rows would make its rescan due). Stored first without the API's limits,
    then asked with the bench's latency and rate limit, five times; the median counts. The
    processes use compiled bytecode, as an installed package does (`pip install` compiles it;
    the cache goes to the bench folder even where PYTHONDONTWRITEBYTECODE is set), written by
    one process first that is not counted."""
    runs = cfg.runs
    workspace = _real_clock_workspace(cfg, runs)
    db = folder / "store-cli.duckdb"
    with serve(workspace) as server:
        config = resolve_workspace(host=server.url, token=server.token, env={})
        with _step(f"storing its {runs} runs"):
            (outcome,) = extract_into(db, [("sim", config)], ExtractOptions(), max_rps=10_000)
        if outcome.error is not None:
            raise outcome.error
        server.set_faults(cfg.api_faults())
        env = {
            k: v
            for k, v in _child_env().items()
            if not k.startswith("DATABRICKS_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        command = [sys.executable, "-m", "extractor.cli", "extract", "--db", str(db)]
        command += ["--host", server.url, "--token", server.token]
        with _step("jobruns extract with nothing new, compiling its bytecode (not counted)"):
            subprocess.run(command, env=env, capture_output=True, text=True)
        walls: list[float] = []
        for attempt in range(CLI_PROCESSES):
            server.reset_stats()
            with _step(
                f"jobruns extract with nothing new, process {attempt + 1} of {CLI_PROCESSES}"
            ):
                began = time.perf_counter()
                done = subprocess.run(command, env=env, capture_output=True, text=True)
                walls.append(time.perf_counter() - began)
            if done.returncode != 0:
                raise JobrunsError(f"jobruns extract exited {done.returncode}: {done.stderr}")
            req = api_requests(server)
    walls.sort()
    report.add(
        _ratio_row(
            "3 incremental",
            "nothing new, from the CLI (a new process)",
            statistics.median(walls),
            2.0,
            "s",
            f"median of {', '.join(f'{w:.2f}' for w in walls)} s; {runs} runs stored;"
            f" {req.total} requests ({req.note()})",
        )
    )


# -- 2: a careful serial databricks-sdk loop ----------------------------------------------------


@contextlib.contextmanager
def _sdk_environment(folder: Path) -> Iterator[None]:
    """No DATABRICKS_* variable of the caller, and a config file that does not exist."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("DATABRICKS_")}
    for key in saved:
        del os.environ[key]
    os.environ["DATABRICKS_CONFIG_FILE"] = str(folder / "no-databrickscfg")
    try:
        yield
    finally:
        del os.environ["DATABRICKS_CONFIG_FILE"]
        os.environ.update(saved)


def sdk_extract(url: str, token: str, db: Path, start_ms: int, end_ms: int) -> int:
    """What a careful user writes with the SDK: list with tasks, get where needed, insert JSON."""
    from databricks.sdk import WorkspaceClient

    w = WorkspaceClient(host=url, token=token, auth_type="pat")
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE IF NOT EXISTS sdk_jobs (job_id BIGINT, raw JSON)")
    con.execute("CREATE TABLE IF NOT EXISTS sdk_runs (run_id BIGINT, raw JSON)")
    jobs = [w.jobs.get(j.job_id).as_dict() for j in w.jobs.list() if j.job_id is not None]
    _insert_json(con, "sdk_jobs", "job_id", jobs)
    batch: list[dict[str, Any]] = []
    count = 0
    for listed in w.jobs.list_runs(
        expand_tasks=True, start_time_from=start_ms, start_time_to=end_ms, limit=25
    ):
        run = listed.as_dict()
        if needs_full_fetch(run) and listed.run_id is not None:
            run = w.jobs.get_run(listed.run_id, include_history=True).as_dict()
        iterations = {}
        for task in run.get("tasks") or []:
            if is_for_each(task):
                parent = w.jobs.get_run(int(task["run_id"])).as_dict()
                iterations[str(task["run_id"])] = parent.get("iterations") or []
        run["iterations_by_task"] = iterations
        batch.append(run)
        count += 1
        if len(batch) >= 1000:
            _insert_json(con, "sdk_runs", "run_id", batch)
            batch = []
    _insert_json(con, "sdk_runs", "run_id", batch)
    con.close()
    return count


def _insert_json(
    con: duckdb.DuckDBPyConnection, table: str, key: str, rows: list[dict[str, Any]]
) -> None:
    if not rows:
        return
    data = pa.table(
        {
            key: pa.array([int(r[key]) for r in rows], pa.int64()),
            "raw": pa.array([json.dumps(r) for r in rows], pa.string()),
        }
    )
    con.register("sdk_batch", data)
    con.execute(f"INSERT INTO {table} SELECT * FROM sdk_batch")
    con.unregister("sdk_batch")


def bench_sdk(cfg: BenchConfig, report: Report, sim: SimRun, folder: Path) -> float:
    """The serial SDK loop; returns its wall time for all runs (extrapolated from a subset)."""
    now = sim.workspace.now_ms
    start = now - RETENTION_DAYS * DAY_MS
    ids = sim.workspace.run_ids(start, now)
    subset = cfg.sdk_runs is not None and cfg.sdk_runs < len(ids)
    if subset and cfg.sdk_runs is not None:
        # The newest sdk_runs runs: the same mix of jobs, read the same way.
        start = sim.workspace.runs[ids[cfg.sdk_runs - 1]].start
    sim.server.reset_stats()
    with _sdk_environment(folder), _step("serial databricks-sdk loop"):
        began = time.perf_counter()
        count = sdk_extract(sim.server.url, sim.server.token, folder / "sdk.duckdb", start, now)
        wall = time.perf_counter() - began
    req = api_requests(sim.server)
    scale = len(ids) / count if subset and count else 1.0
    full = wall * scale
    how = f"measured on {count} runs, extrapolated linearly x{scale:.2f}; " if subset else ""
    report.add(
        Row(
            "2 databricks-sdk",
            f"serial loop, {count} runs, {req.total} requests",
            f"{wall:.1f} s" + (f" -> {full:.1f} s for {len(ids)} runs" if subset else ""),
            note=how + req.note(),
        )
    )
    return full


# -- 4: load speed without network --------------------------------------------------------------


class Recorder:
    """A JobsApi that forwards to a client and keeps every answer; runs are widened to N tasks."""

    def __init__(self, client: JobsClient, tasks_per_run: int) -> None:
        self.client = client
        self.tasks_per_run = tasks_per_run
        self.pages: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.runs: dict[tuple[int, bool], dict[str, Any]] = {}
        self.jobs: list[dict[str, Any]] = []
        self.job_bodies: dict[int, dict[str, Any]] = {}
        self.clusters: dict[str, dict[str, Any]] = {}
        self.outputs: dict[int, dict[str, Any]] = {}
        self.pools: dict[str, dict[str, Any]] = {}
        self.node_types: dict[str, Any] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}

    @property
    def workspace_id(self) -> str | None:
        return self.client.workspace_id

    @property
    def host(self) -> str:
        return self.client.host

    def list_runs_page(
        self,
        *,
        start_time_from: int | None,
        start_time_to: int | None,
        page_token: str | None = None,
        expand_tasks: bool = True,
    ) -> dict[str, Any]:
        page = self.client.list_runs_page(
            start_time_from=start_time_from,
            start_time_to=start_time_to,
            page_token=page_token,
            expand_tasks=expand_tasks,
        )
        page = {**page, "runs": [self._widen(r) for r in page.get("runs") or []]}
        self.pages[(start_time_from, start_time_to, page_token, expand_tasks)] = page
        return page

    def get_run(self, run_id: int, *, include_history: bool = True) -> dict[str, Any]:
        run = self._widen(self.client.get_run(run_id, include_history=include_history))
        self.runs[(run_id, include_history)] = run
        return run

    def iter_jobs(self) -> Iterator[dict[str, Any]]:
        self.jobs = list(self.client.iter_jobs())
        return iter(self.jobs)

    def get_job(self, job_id: int) -> dict[str, Any]:
        self.job_bodies[job_id] = self.client.get_job(job_id)
        return self.job_bodies[job_id]

    def get_cluster(self, cluster_id: str) -> dict[str, Any]:
        self.clusters[cluster_id] = self.client.get_cluster(cluster_id)
        return self.clusters[cluster_id]

    def get_run_output(self, run_id: int) -> dict[str, Any]:
        self.outputs[run_id] = self.client.get_run_output(run_id)
        return self.outputs[run_id]

    def get_instance_pool(self, instance_pool_id: str) -> dict[str, Any]:
        self.pools[instance_pool_id] = self.client.get_instance_pool(instance_pool_id)
        return self.pools[instance_pool_id]

    def list_node_types(self) -> dict[str, Any]:
        self.node_types = self.client.list_node_types()
        return self.node_types

    def cluster_events(self, cluster_id: str, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        self.events[cluster_id] = self.client.cluster_events(cluster_id, start_ms, end_ms)
        return self.events[cluster_id]

    def stats(self) -> dict[str, Any]:
        return self.client.stats()

    def _widen(self, run: dict[str, Any]) -> dict[str, Any]:
        """Copies of a run's code tasks (new ids and keys) until it has about N task runs."""
        tasks = run.get("tasks") or []
        plain = [t for t in tasks if not is_for_each(t)]
        if not plain or len(tasks) >= self.tasks_per_run or "iterations" in run:
            return run
        copies = list(tasks)
        k = 1
        while len(copies) < self.tasks_per_run and k < 16:
            for t in plain[: self.tasks_per_run - len(copies)]:
                copies.append(
                    {**t, "run_id": int(t["run_id"]) * 16 + k, "task_key": f"{t['task_key']}_{k}"}
                )
            k += 1
        return {**run, "tasks": copies}


class Replay:
    """A JobsApi answering from a Recorder's answers: the extraction without network."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self._workspace_id = rec.workspace_id
        self._host = rec.host
        self.requests = 0

    @property
    def workspace_id(self) -> str | None:
        return self._workspace_id

    @property
    def host(self) -> str:
        return self._host

    def list_runs_page(
        self,
        *,
        start_time_from: int | None,
        start_time_to: int | None,
        page_token: str | None = None,
        expand_tasks: bool = True,
    ) -> dict[str, Any]:
        self.requests += 1
        return self.rec.pages[(start_time_from, start_time_to, page_token, expand_tasks)]

    def get_run(self, run_id: int, *, include_history: bool = True) -> dict[str, Any]:
        self.requests += 1
        return self.rec.runs[(run_id, include_history)]

    def iter_jobs(self) -> Iterator[dict[str, Any]]:
        return iter(self.rec.jobs)

    def get_job(self, job_id: int) -> dict[str, Any]:
        return self.rec.job_bodies[job_id]

    def get_cluster(self, cluster_id: str) -> dict[str, Any]:
        self.requests += 1
        return self.rec.clusters[cluster_id]

    def get_run_output(self, run_id: int) -> dict[str, Any]:
        self.requests += 1
        if run_id not in self.rec.outputs:  # refused when recorded (a widened copy's id)
            raise NotFoundError(f"run {run_id}: no output recorded")
        return self.rec.outputs[run_id]

    def get_instance_pool(self, instance_pool_id: str) -> dict[str, Any]:
        self.requests += 1
        return self.rec.pools[instance_pool_id]

    def list_node_types(self) -> dict[str, Any]:
        self.requests += 1
        return self.rec.node_types

    def cluster_events(self, cluster_id: str, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        self.requests += 1
        return self.rec.events[cluster_id]

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests}


def bundles_of(rec: Recorder) -> list[RunBundle]:
    """The runs an extraction would store, as bundles, from the recorded answers."""
    latest: dict[int, dict[str, Any]] = {}
    for (_lo, _hi, _token, expand), page in rec.pages.items():
        if expand:
            for run in page.get("runs") or []:
                latest.setdefault(int(run["run_id"]), run)
    bundles = []
    for run_id, listed in latest.items():
        run = strip_paging(rec.runs.get((run_id, True), listed))
        iterations = {
            int(t["run_id"]): rec.runs.get((int(t["run_id"]), False), {}).get("iterations") or []
            for t in run.get("tasks") or []
            if is_for_each(t)
        }
        bundles.append(RunBundle(run, iterations))
    return bundles


def bench_load(cfg: BenchConfig, report: Report, folder: Path) -> None:
    sim = SimRun(cfg, cfg.load_runs, Faults(), folder / "load")
    try:
        with _step("capturing pages and run bodies"), sim.client(max_rps=10_000) as client:
            rec = Recorder(client, cfg.load_tasks)
            extract(rec, Store(folder / "capture.duckdb"), ExtractOptions(), now=sim.now)
    finally:
        sim.close()
    bundles = bundles_of(rec)
    tasks = sum(len(b.run.get("tasks") or []) for b in bundles)
    per_run = tasks / max(1, len(bundles))
    ws = rec.workspace_id or "bench"
    extracted_at = datetime.fromtimestamp(START_MS / 1000, tz=UTC)

    with _step("replayed extraction (no network)"):
        store = Store(folder / "replay.duckdb")
        began = time.perf_counter()
        result = extract(Replay(rec), store, ExtractOptions(), now=sim.now)
        replay_wall = time.perf_counter() - began
    report.add(
        _ratio_row(
            "4 load (no network)",
            f"extract() from saved pages, {result.runs_seen} runs x {per_run:.1f} tasks",
            result.runs_seen / replay_wall,
            LOAD_TARGET,
            "runs/s",
            f"{replay_wall:.2f} s: triage, threads, flatten, upsert, signatures",
            at_least=True,
        )
    )

    # Rounds side by side, in alternating order: the machine's load moves both, and the median
    # of each round's ratio is the figure.
    rounds: list[tuple[float, float, float]] = []
    for number in range(1, cfg.load_rounds + 1):
        with _step(f"round {number} of {cfg.load_rounds}: flatten + upsert, DuckDB read_json"):
            if number % 2:
                t_load, t_flatten = jobruns_load(folder, bundles, ws, extracted_at)
                t_json = read_json_load(folder, bundles, ws)
            else:
                t_json = read_json_load(folder, bundles, ws)
                t_load, t_flatten = jobruns_load(folder, bundles, ws, extracted_at)
        rounds.append((t_load, t_flatten, t_json))
    t_load, t_flatten, t_json = (_median([r[i] for r in rounds]) for i in range(3))
    ratio = _median([r[0] / r[2] for r in rounds])
    with _step("plain Arrow insert of the same rows"):
        t_plain = plain_arrow_load(folder, bundles, ws, extracted_at)
    n = len(bundles)
    t_upsert = t_load - t_flatten
    each = "; ".join(f"{n / a:,.0f} vs {n / c:,.0f} runs/s = {a / c:.2f}x" for a, _, c in rounds)
    report.add(
        _ratio_row(
            "4 load (no network)",
            f"flatten + upsert, {n} runs x {per_run:.1f} tasks",
            n / t_load,
            LOAD_TARGET,
            "runs/s",
            f"median of {len(rounds)}: {t_load:.2f} s: JSON text on the extract's thread"
            f" {t_flatten:.2f} s ({n / t_flatten:,.0f} runs/s), then {t_upsert:.2f} s more for"
            f" the writer thread (DuckDB flattens and upserts), batches of {FLUSH_RUNS}",
            at_least=True,
        )
    )
    report.add(
        _ratio_row(
            "4 load (no network)",
            "flatten + upsert vs DuckDB read_json of the same runs",
            ratio,
            1.5,
            "x",
            f"median of {len(rounds)} rounds side by side (jobruns vs read_json: {each});"
            f" read_json into the same four tables, parsing included, one transaction",
        )
    )
    report.add(
        _ratio_row(
            "4 load (no network)",
            "flatten + upsert vs plain Arrow insert",
            t_load / t_plain,
            3.0,
            "x",
            f"plain INSERT ... SELECT * FROM arrow_table: {t_plain:.2f} s ({n / t_plain:,.0f} runs/s)",
        )
    )


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def jobruns_load(
    folder: Path, bundles: list[RunBundle], workspace_id: str, extracted_at: datetime
) -> tuple[float, float]:
    """Seconds to store the runs as an extract does (the file held, a writer thread storing
    batches while the next is prepared) into a new store, and the part spent preparing."""
    path = folder / "upsert.duckdb"
    _remove_store(path)
    store = Store(path)
    store.initialize()
    t_prepare = 0.0
    began_load = time.perf_counter()
    with store.holding(), RunWriter(store, workspace_id) as writer:
        for i in range(0, len(bundles), FLUSH_RUNS):
            began = time.perf_counter()
            batch = prepare_runs(bundles[i : i + FLUSH_RUNS], extracted_at)
            t_prepare += time.perf_counter() - began
            writer.store(batch)
    return time.perf_counter() - began_load, t_prepare


def plain_arrow_load(
    folder: Path, bundles: list[RunBundle], workspace_id: str, extracted_at: datetime
) -> float:
    """Seconds to insert the flattened rows (Arrow, flattened beforehand) batch by batch, one
    transaction each, with no upsert: what storing costs by itself."""
    flats = [
        flatten_runs(bundles[i : i + FLUSH_RUNS], workspace_id, extracted_at)
        for i in range(0, len(bundles), FLUSH_RUNS)
    ]
    path = folder / "plain.duckdb"
    _remove_store(path)
    plain = Store(path)
    plain.initialize()
    began = time.perf_counter()
    with plain.holding():
        for flat in flats:
            with plain.transaction() as con:
                for name, arrow_table in flat.tables().items():
                    con.register("arrow_table", arrow_table)
                    con.execute(f"INSERT INTO {name} SELECT * FROM arrow_table")
                    con.unregister("arrow_table")
    return time.perf_counter() - began


def _remove_store(path: Path) -> None:
    for part in store_files(path):
        part.unlink(missing_ok=True)


def read_json_load(folder: Path, bundles: list[RunBundle], workspace_id: str) -> float:
    """Seconds DuckDB's own JSON reader takes to load the runs into a new store's four run
    tables (read_json_load.sql), from files of one JSON object per line: the yardstick."""
    runs, iterations = folder / "runs.ndjson", folder / "iterations.ndjson"
    with runs.open("w") as out_runs, iterations.open("w") as out_iterations:
        for bundle in bundles:
            out_runs.write(json.dumps(bundle.run) + "\n")
            for parent, items in bundle.iterations.items():
                ids = {"parent_task_run_id": parent, "job_run_id": bundle.run["run_id"]}
                for item in items:
                    line = {**item, **ids, "job_id": bundle.run.get("job_id")}
                    out_iterations.write(json.dumps(line) + "\n")
    sql = (Path(__file__).with_name("read_json_load.sql")).read_text()
    for name, value in {
        "runs": str(runs),
        "iterations": str(iterations),
        "ws": workspace_id,
        "extracted_us": str(START_MS * 1000),
    }.items():
        sql = sql.replace("{" + name + "}", value)
    path = folder / "read_json.duckdb"
    _remove_store(path)
    Store(path).initialize()
    began = time.perf_counter()
    con = duckdb.connect(str(path))
    try:
        # DuckDB's default memory limit: the yardstick runs as DuckDB runs by itself.
        con.execute("BEGIN TRANSACTION")
        con.execute(sql)
        con.execute("COMMIT")
    finally:
        con.close()
    return time.perf_counter() - began


# -- 5: peak memory of the extraction and of `jobruns extract`, each in a process of its own ----


def _peak_lines(stderr: str) -> dict[str, int]:
    """BASE_KB and PEAK_KB as `extractor.dev.peak` prints them."""
    out: dict[str, int] = {}
    for line in stderr.splitlines():
        key, _, value = line.partition(" ")
        if key in ("BASE_KB", "PEAK_KB") and value.strip().isdigit():
            out[key] = int(value)
    return out


_EXTRACTION_CHILD = "from extractor.dev.peak import extraction; extraction()"


def _memory_row(
    report: Report, out: subprocess.CompletedProcess[str], db: Path, what: str, note: str
) -> dict[str, int] | None:
    """The row of one child's peak; its BASE_KB and PEAK_KB, None if it failed."""
    kb = _peak_lines(out.stderr)
    if out.returncode != 0 or len(kb) < 2:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        report.add(Row("5 peak memory", f"{what}: failed", "failed", "", None, False, tail))
        return None
    with duckdb.connect(str(db), read_only=True) as con:
        (runs,) = con.execute("SELECT count(*) FROM runs").fetchone() or (0,)
    report.add(
        _ratio_row(
            "5 peak memory",
            f"max RSS, cold {what} of {runs} runs",
            kb["PEAK_KB"] / 1024,
            300.0,
            "MB",
            f"{kb['BASE_KB'] / 1024:.0f} MB once imported; {note} (no latency)",
        )
    )
    return kb


def bench_memory(cfg: BenchConfig, report: Report, folder: Path) -> None:
    """Cold extracts in processes of their own (`extractor.dev.peak`), imports included: the
    extraction alone, and `jobruns extract` as cron runs it, which then builds the views'
    derived tables. The CLI reads the real clock, so each workspace's clock is the real one too;
    the API answers without latency or limits."""
    peaks: dict[int, tuple[float, float]] = {}
    for runs in sorted(cfg.memory_runs):
        with serve(_real_clock_workspace(cfg, runs)) as server:
            # The token in the environment: out of `ps` and of error messages.
            env = {k: v for k, v in _child_env().items() if not k.startswith("DATABRICKS_")}
            env["DATABRICKS_TOKEN"] = server.token
            env["DATABRICKS_CONFIG_FILE"] = str(folder / "no-databrickscfg")
            db = folder / f"memory-{runs}.duckdb"
            extraction = [sys.executable, "-c", _EXTRACTION_CHILD]
            args = json.dumps({"url": server.url, "db": str(db), "concurrency": cfg.concurrency})
            with _step(f"extraction of {runs} runs in a process of its own"):
                began = time.perf_counter()
                out = subprocess.run(
                    extraction, input=args, capture_output=True, text=True, env=env
                )
                wall = time.perf_counter() - began
            req = api_requests(server)
            note = f"{req.total} requests in {wall:.1f} s"
            kb = _memory_row(report, out, db, "extraction", note)
            if kb is not None:
                peaks[runs] = (kb["PEAK_KB"] / 1024, kb["BASE_KB"] / 1024)
            cli_db = folder / f"memory-{runs}-cli.duckdb"
            command = [sys.executable, "-m", "extractor.dev.peak", "extract", "-q"]
            command += ["--db", str(cli_db), "--host", server.url, "--max-rps", "10000"]
            command += ["--concurrency", str(cfg.concurrency)]
            with _step(f"jobruns extract of {runs} runs in a process of its own"):
                began = time.perf_counter()
                out = subprocess.run(command, capture_output=True, text=True, env=env)
                wall = time.perf_counter() - began
            note = f"{wall:.1f} s, building the derived tables after the extraction included"
            _memory_row(report, out, cli_db, "jobruns extract", note)
    if len(peaks) >= 2:
        (small, (p1, b1)), (large, (p2, b2)) = sorted(peaks.items())[0], sorted(peaks.items())[-1]
        growth = (p2 - b2) / max(p1 - b1, 1.0)
        report.add(
            _ratio_row(
                "5 peak memory",
                f"growth above imports, {small} -> {large} runs",
                growth,
                large / small,
                "x",
                f"{p1 - b1:.0f} MB -> {p2 - b2:.0f} MB; sublinear when below the runs ratio",
            )
        )


# -- 6: views over a large generated store -------------------------------------------------------

# Column expressions of generated rows (DuckDB SQL over g_runs / g_tasks); unlisted columns are NULL.
# u(x, k) is a deterministic uniform [0, 1) per row and salt.
_RUN_COLUMNS = {
    "workspace_id": "'1234567890123456'",
    "run_id": "run_id",
    "job_id": "job_id",
    "run_name": "'job_' || job_id",
    "run_type": "CASE WHEN u(i, 6) < 0.95 THEN 'JOB_RUN' ELSE 'SUBMIT_RUN' END",
    "trigger": "CASE WHEN retry THEN 'RETRY' WHEN u(job_id, 7) < 0.7 THEN 'PERIODIC'"
    " WHEN u(job_id, 7) < 0.9 THEN 'ONE_TIME' ELSE 'FILE_ARRIVAL' END",
    "creator_user_name": "'user' || (job_id % 40) || '@example.com'",
    "start_time": "make_timestamptz(start_ms * 1000)",
    "end_time": "CASE WHEN NOT active THEN make_timestamptz((start_ms + dur_ms) * 1000) END",
    "life_cycle_state": "lcs",
    "result_state": "result",
    "status_state": "CASE WHEN active THEN 'RUNNING' ELSE 'TERMINATED' END",
    "termination_code": "code",
    "termination_type": "CASE WHEN code = 'SUCCESS' THEN 'SUCCESS' WHEN code = 'CLUSTER_ERROR'"
    " THEN 'CLOUD_FAILURE' WHEN code IS NOT NULL THEN 'CLIENT_ERROR' END",
    "state_message": "CASE WHEN result = 'FAILED' THEN 'Task main failed with message: boom' END",
    "queue_duration_ms": "CASE WHEN u(i, 8) < 0.9 THEN 0 ELSE CAST(u(i, 9) * 300000 AS BIGINT) END",
    "setup_duration_ms": "setup_ms",
    "execution_duration_ms": "dur_ms - setup_ms - 2000",
    "cleanup_duration_ms": "2000",
    "run_duration_ms": "CASE WHEN NOT active THEN dur_ms END",
    "duration_ms": "CASE WHEN NOT active THEN dur_ms END",
    "attempt_number": "CAST(retry AS INTEGER)",
    "original_attempt_run_id": "CASE WHEN retry THEN run_id - 1 ELSE run_id END",
    "is_active": "active",
    "task_count": "ntasks",
    "repair_count": "CAST(repaired AS INTEGER)",
    "run_page_url": "'https://dbc-bench.cloud.databricks.com/?o=1234567890123456#job/' || job_id"
    " || '/run/' || run_id",
    "raw": "'{\"run_id\":' || run_id || '}'",
    "extracted_at": "make_timestamptz(now_ms * 1000)",
}
_TASK_COLUMNS = {
    "workspace_id": "'1234567890123456'",
    "run_id": "task_run_id",
    "job_run_id": "run_id",
    "job_id": "job_id",
    "task_key": "'task_' || k",
    "attempt_number": "CASE WHEN u(task_run_id, 1) < 0.03 THEN 1 ELSE 0 END",
    "repair_id": "CASE WHEN repaired AND k = ntasks - 1 THEN run_id + 7 ELSE 0 END",
    "start_time": "make_timestamptz((start_ms + setup_ms + k * step_ms) * 1000)",
    "end_time": "CASE WHEN NOT active THEN make_timestamptz((start_ms + setup_ms + (k + 1) * step_ms)"
    " * 1000) END",
    "queue_duration_ms": "0",
    "setup_duration_ms": "CASE WHEN kind = 'serverless' THEN 5000 ELSE setup_ms END",
    "execution_duration_ms": "step_ms",
    "cleanup_duration_ms": "500",
    "run_duration_ms": "CASE WHEN NOT active THEN step_ms + 500 END",
    "duration_ms": "CASE WHEN NOT active THEN step_ms + 500 END",
    "life_cycle_state": "CASE WHEN k = ntasks - 1 THEN lcs ELSE 'TERMINATED' END",
    "result_state": "CASE WHEN k = ntasks - 1 THEN result WHEN active THEN NULL ELSE 'SUCCESS' END",
    "status_state": "CASE WHEN active AND k = ntasks - 1 THEN 'RUNNING' ELSE 'TERMINATED' END",
    "termination_code": "CASE WHEN k = ntasks - 1 THEN code ELSE 'SUCCESS' END",
    "termination_type": "CASE WHEN k = ntasks - 1 AND code <> 'SUCCESS' THEN 'CLIENT_ERROR'"
    " ELSE 'SUCCESS' END",
    "is_active": "active AND k = ntasks - 1",
    "cluster_id": "CASE kind WHEN 'job_cluster' THEN 'jc-' || run_id WHEN 'new_cluster' THEN"
    " 'nc-' || task_run_id WHEN 'existing_cluster' THEN 'ap-' || (job_id % 7) END",
    "compute_kind": "kind",
    "job_cluster_key": "CASE WHEN kind = 'job_cluster' THEN 'main' END",
    "existing_cluster_id": "CASE WHEN kind = 'existing_cluster' THEN 'ap-' || (job_id % 7) END",
    "node_type_id": "CASE WHEN kind IN ('job_cluster', 'new_cluster', 'existing_cluster') THEN"
    " node END",
    "driver_node_type_id": "CASE WHEN kind IN ('job_cluster', 'new_cluster', 'existing_cluster')"
    " THEN node END",
    "num_workers": "CASE WHEN kind IN ('job_cluster', 'new_cluster') AND u(job_id, 11) < 0.7 THEN"
    " 2 + CAST(u(job_id, 12) * 14 AS INTEGER) END",
    "autoscale_min_workers": "CASE WHEN kind IN ('job_cluster', 'new_cluster')"
    " AND u(job_id, 11) >= 0.7 THEN 2 END",
    "autoscale_max_workers": "CASE WHEN kind IN ('job_cluster', 'new_cluster')"
    " AND u(job_id, 11) >= 0.7 THEN 8 END",
    "workers": "CASE WHEN kind IN ('job_cluster', 'new_cluster') THEN CASE WHEN u(job_id, 11) < 0.7"
    " THEN 2 + CAST(u(job_id, 12) * 14 AS INTEGER) ELSE 8 END END",
    "spark_version": "CASE WHEN kind <> 'serverless' THEN '15.4.x-scala2.12' END",
    "runtime_engine": "CASE WHEN kind <> 'serverless' THEN CASE WHEN u(job_id, 13) < 0.3 THEN"
    " 'PHOTON' ELSE 'STANDARD' END END",
    "depends_on": "CASE WHEN k = 0 THEN []::VARCHAR[] ELSE ['task_' || (k - 1)] END",
    "run_if": "'ALL_SUCCESS'",
    "task_type": "CASE WHEN foreach AND k = 0 THEN 'for_each_task' WHEN kind IS NULL THEN"
    " 'condition_task' WHEN kind = 'serverless' THEN 'spark_python_task' ELSE 'notebook_task' END",
    "max_retries": "CASE WHEN u(job_id, 14) < 0.3 THEN 2 ELSE 0 END",
    "timeout_seconds": "0",
    "iteration_count": "CASE WHEN foreach AND k = 0 THEN 20 END",
    "raw": "'{\"run_id\":' || task_run_id || '}'",
}
_ITERATION_COLUMNS = {
    "workspace_id": "'1234567890123456'",
    "run_id": "task_run_id * 32 + j",
    "parent_task_run_id": "task_run_id",
    "job_run_id": "run_id",
    "job_id": "job_id",
    "task_key": "'task_0_iteration'",
    "attempt_number": "0",
    "start_time": "make_timestamptz((start_ms + setup_ms + j * 1000) * 1000)",
    "end_time": "CASE WHEN NOT active THEN make_timestamptz((start_ms + setup_ms + j * 1000 +"
    " step_ms) * 1000) END",
    "execution_duration_ms": "step_ms",
    "duration_ms": "CASE WHEN NOT active THEN step_ms END",
    "life_cycle_state": "'TERMINATED'",
    "result_state": "CASE WHEN active THEN NULL ELSE 'SUCCESS' END",
    "status_state": "'TERMINATED'",
    "is_active": "false",
    "cluster_id": "'jc-' || run_id",
    "raw": '\'{"job_cluster_key":"main"}\'',
}
_REPAIR_COLUMNS = {
    "workspace_id": "'1234567890123456'",
    "job_run_id": "run_id",
    "repair_id": "CASE WHEN n = 0 THEN 0 ELSE run_id + 7 END",
    "type": "CASE WHEN n = 0 THEN 'ORIGINAL' ELSE 'REPAIR' END",
    "start_time": "make_timestamptz(start_ms * 1000)",
    "end_time": "CASE WHEN NOT active THEN make_timestamptz((start_ms + dur_ms) * 1000) END",
    "life_cycle_state": "lcs",
    "result_state": "result",
    "status_state": "'TERMINATED'",
    "task_run_ids": "[]::BIGINT[]",
}
_JOB_COLUMNS = {
    "workspace_id": "'1234567890123456'",
    "job_id": "job_id",
    "name": "'job_' || job_id",
    "creator_user_name": "'user' || (job_id % 40) || '@example.com'",
    "run_as_user_name": "'user' || (job_id % 40) || '@example.com'",
    "created_time": "make_timestamptz((now_ms - 7776000000) * 1000)",
    "tags": "MAP {'team': 'team' || (job_id % 9)}",
    "schedule_cron": "'0 0 * * * ?'",
    "trigger_kind": "'schedule'",
    "continuous": "false",
    "max_concurrent_runs": "1",
    "timeout_seconds": "0",
    "format": "'MULTI_TASK'",
    "raw": "'{}'",
    "extracted_at": "make_timestamptz(now_ms * 1000)",
}
_NODES = "['m5d.large', 'm5d.xlarge', 'm5d.2xlarge', 'm5.xlarge', 'm5.4xlarge', 'i3.xlarge']"


def _insert_generated(
    con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str], source: str
) -> None:
    exprs = ", ".join(f'{columns.get(c, "NULL")} AS "{c}"' for c in TABLES[table])
    con.execute(f"INSERT INTO {table} SELECT {exprs} FROM {source}")


def build_view_store(path: Path, runs: int, tasks: int, now_ms: int = START_MS) -> None:
    """A store of `runs` runs of ~`tasks` task runs each, over 60 days, generated in SQL."""
    jobs = max(50, runs // 2000)
    con = duckdb.connect(str(path))
    create_tables(con)
    con.execute("CREATE TEMP MACRO u(x, k) AS (hash(x, k) % 1000000) / 1000000.0")
    con.execute(
        "CREATE TEMP TABLE g_base AS SELECT i, 1000000000000 + i * 3 AS run_id,"
        f" 1000 + CAST(floor(pow(u(i, 1), 2) * {jobs}) AS BIGINT) AS job_id,"
        f" {now_ms} - CAST(({runs} - i) * {RETENTION_DAYS * DAY_MS - 3_600_000} / {runs} AS BIGINT)"
        f" AS start_ms, {now_ms} AS now_ms, i >= {runs} - {max(1, runs // 2000)} AND u(i, 2) < 0.5"
        " AS active, u(i, 3) AS r, CAST(exp(ln(60000) + u(i, 4) * ln(240)) AS BIGINT) AS dur_ms,"
        f" 1 + CAST(u(i, 5) * {2 * tasks - 2} AS INTEGER) AS ntasks, u(i, 10) < 0.04 AS retry,"
        " 20000 + CAST(u(i, 15) * 120000 AS BIGINT) AS setup_ms, u(i, 16) < 0.01 AS foreach"
        f" FROM range({runs}) AS t(i)"
    )
    con.execute(
        "CREATE TEMP TABLE g_runs AS SELECT *, CASE WHEN active THEN 'RUNNING' WHEN r < 0.005"
        " THEN 'INTERNAL_ERROR' WHEN r < 0.015 THEN 'SKIPPED' ELSE 'TERMINATED' END AS lcs,"
        " CASE WHEN active THEN NULL WHEN r < 0.015 THEN NULL WHEN r < 0.88 THEN 'SUCCESS'"
        " WHEN r < 0.95 THEN 'FAILED' WHEN r < 0.97 THEN 'TIMEDOUT' WHEN r < 0.99 THEN 'CANCELED'"
        " ELSE 'SUCCESS_WITH_FAILURES' END AS result, NOT active AND r >= 0.88 AND r < 0.95"
        " AND u(i, 17) < 0.3 AS repaired, greatest(1000, (dur_ms - setup_ms) // ntasks) AS step_ms"
        " FROM g_base"
    )
    con.execute(
        "CREATE TEMP TABLE g_runs2 AS SELECT *, CASE WHEN active THEN NULL WHEN lcs = 'SKIPPED'"
        " THEN 'SKIPPED' WHEN lcs = 'INTERNAL_ERROR' THEN 'CLUSTER_ERROR' WHEN result = 'SUCCESS'"
        " THEN 'SUCCESS' WHEN result = 'CANCELED' THEN 'USER_CANCELED' ELSE"
        " 'RUN_EXECUTION_ERROR' END AS code FROM g_runs"
    )
    con.execute(
        "CREATE TEMP TABLE g_tasks AS SELECT *, (run_id * 32 + k) AS task_run_id,"
        " CASE WHEN foreach AND k = 0 THEN NULL WHEN u(job_id * 32 + k, 18) < 0.5 THEN 'job_cluster'"
        " WHEN u(job_id * 32 + k, 18) < 0.75 THEN 'serverless' WHEN u(job_id * 32 + k, 18) < 0.85"
        " THEN 'new_cluster' WHEN u(job_id * 32 + k, 18) < 0.95 THEN 'existing_cluster' END AS kind,"
        f" {_NODES}[1 + CAST(u(job_id, 19) * 6 AS INTEGER)] AS node"
        " FROM (SELECT *, unnest(range(ntasks)) AS k FROM g_runs2)"
    )
    _insert_generated(con, "runs", _RUN_COLUMNS, "g_runs2")
    _insert_generated(con, "tasks", _TASK_COLUMNS, "g_tasks")
    _insert_generated(
        con,
        "task_iterations",
        _ITERATION_COLUMNS,
        "(SELECT *, unnest(range(20)) AS j FROM g_tasks WHERE foreach AND k = 0)",
    )
    _insert_generated(
        con,
        "repair_history",
        _REPAIR_COLUMNS,
        "(SELECT *, unnest(range(CASE WHEN repaired THEN 2 ELSE 1 END)) AS n FROM g_runs2)",
    )
    _insert_generated(
        con,
        "jobs",
        _JOB_COLUMNS,
        f"(SELECT 1000 + range AS job_id, {now_ms} AS now_ms FROM range({jobs}))",
    )
    con.execute("CHECKPOINT")
    con.close()


def bench_views(cfg: BenchConfig, report: Report, folder: Path) -> None:
    from extractor.analytics.sqlfiles import view_files
    from extractor.analytics.views import create_views

    path = folder / "views.duckdb"
    with _step(f"generating a store of {cfg.view_runs} runs in SQL"):
        build_view_store(path, cfg.view_runs, cfg.view_tasks)
    con = duckdb.connect(str(path))
    try:
        create_views(con)
        counts = {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
            for t in ("runs", "tasks", "task_iterations", "repair_history", "jobs")
        }
        report.add(
            Row(
                "6 views",
                "store",
                ", ".join(f"{t} {n:,}" for t, n in counts.items()),
                note="generated with DuckDB SQL (no API); each view timed on a full scan of all"
                " its columns: SELECT count(*), bit_xor(hash(v)) FROM view AS v",
            )
        )
        timings: list[tuple[str, float]] = []
        with _step(f"timing {len(view_files())} views"):
            for view in view_files():
                began = time.perf_counter()
                con.execute(f"SELECT count(*), bit_xor(hash(v)) FROM {view.name} AS v").fetchall()
                timings.append((view.name, time.perf_counter() - began))
    finally:
        con.close()
    slow = [name for name, s in timings if s > 1.0]
    report.add(
        Row(
            "6 views",
            "views under 1 s",
            f"{len(timings) - len(slow)} of {len(timings)}",
            "all",
            None,
            not slow,
            ("slow: " + ", ".join(slow)) if slow else "",
        )
    )
    for name, seconds in timings:
        report.add(_ratio_row("6 views", name, seconds, 1.0, "s"))
    bench_export(report, path, folder)


def bench_export(report: Report, store: Path, folder: Path) -> None:
    """Issue #10's figures: a Delta export of the views' store, then one with nothing new."""
    try:
        require("deltalake", "jobruns[export]", "measuring the export")
    except UsageError as exc:
        # A figure left out, not a failed bench: the other sections stand on their own.
        report.add(Row("7 export", "skipped", "not measured", note=str(exc)))
        return
    lake = folder / "lake"
    for label in ("first export to Delta", "second export, nothing changed"):
        with _step(label):
            began = time.perf_counter()
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "extractor.dev.peak",
                    "export",
                    str(lake),
                    "--format",
                    "delta",
                    "--db",
                    str(store),
                    "-q",
                ],
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - began
        kb = _peak_lines(out.stderr)
        if out.returncode != 0 or "PEAK_KB" not in kb:
            tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
            report.add(Row("7 export", label, "failed", met=False, note=tail))
            continue
        report.add(
            _ratio_row(
                "7 export",
                f"{label}: peak RSS",
                kb["PEAK_KB"] / 1024,
                1000.0,
                "MB",
                f"{wall:.1f} s wall",
            )
        )


# -- 8 and 9: cost and failures against the simulator's truth ------------------------------------

COST_CLOUDS = ("aws", "azure", "gcp")


def _percent_row(
    section: str, metric: str, value: float, limit: float, note: str = "", *, at_least: bool = False
) -> Row:
    row = _ratio_row(section, metric, 100 * value, 100 * limit, "%", note, at_least=at_least)
    return replace(row, measured=f"{100 * value:.2f} %")


def bench_cost(cfg: BenchConfig, report: Report, folder: Path) -> None:
    """Issue 13's cost targets on a workspace of each cloud (30 days, billing of the first 20),
    and issue 14's failure targets on the same extracts."""
    failures: list[tuple[targets.FailureFigures, int, int]] = []
    for offset, cloud in enumerate(COST_CLOUDS):
        seed = cfg.cost_seed + offset
        sim = SimRun(cfg, cfg.cost_runs, Faults(), folder, days=30, cloud=cloud, seed=seed)
        try:
            failures.append(_bench_cost_on(cfg, report, sim, cloud, folder))
        finally:
            sim.close()
    section = "9 failures"
    failed = sum(f.failed for f, _, _ in failures)
    stored = sum(f.with_text for f, _, _ in failures)
    outputs = sum(n for _, n, _ in failures)
    again = sum(n for _, _, n in failures)
    each = f"{cfg.cost_runs} runs on each of {', '.join(COST_CLOUDS)}" + (
        f" (seeds {cfg.cost_seed}-{cfg.cost_seed + len(COST_CLOUDS) - 1})"
    )
    report.add(
        _percent_row(
            section,
            "error text stored, failed task runs and iterations",
            stored / failed if failed else 1.0,
            0.99,
            f"{stored} of {failed}; {each}",
            at_least=True,
        )
    )
    for metric in ("precision", "recall"):
        value = min(getattr(f, metric) for f, _, _ in failures)
        report.add(
            _ratio_row(
                section,
                f"B-cubed {metric} of signatures vs true families",
                value,
                0.95,
                "",
                "lowest of the three workspaces",
                at_least=True,
            )
        )
    report.add(
        Row(
            section,
            "get-output requests, cold extract",
            f"{outputs} requests",
            f"<= failed task runs ({failed})",
            outputs / failed if failed else None,
            outputs <= failed,
        )
    )
    report.add(
        Row(
            section,
            "get-output requests, incremental with nothing new",
            str(again),
            "0",
            None,
            again == 0,
        )
    )


def _bench_cost_on(
    cfg: BenchConfig, report: Report, sim: SimRun, cloud: str, folder: Path
) -> tuple[targets.FailureFigures, int, int]:
    """One cloud's cost rows; returns its failure figures, get-output requests of the cold
    extract and of an extract right after it."""
    section = f"8 cost {cloud}"
    ws = sim.workspace
    report.add(Row(section, "workspace", f"seed {ws.seed}, {len(ws.runs)} runs", note=ws.host))
    with _step(f"cold extract ({cloud})"):
        cold = sim.extract_into()
    cost = targets.cost_figures(sim.db, ws)
    inferred = targets.inferred_node_types(sim.db)
    report.add(
        _percent_row(
            section,
            "classic runs with a cost estimate, no billing",
            cost.share,
            0.995,
            f"{cost.runs} terminal classic-compute runs; rates inferred for"
            f" {', '.join(sorted(inferred)) or 'none'}",
            at_least=True,
        )
    )
    report.add(
        _percent_row(section, "per-job median error vs true list price", cost.median_error, 0.15)
    )
    failures = targets.failure_figures(sim.db, ws)
    with _step(f"extract with nothing new ({cloud})"):
        again = sim.extract_into()

    cut = ws.now_ms - 10 * DAY_MS
    usage, prices = folder / f"usage-{cloud}.csv", folder / f"prices-{cloud}.csv"
    ws.write_billing_csv(str(usage), None, cut)
    ws.write_list_prices_csv(str(prices))
    with sim.store.connect() as con:
        import_list_prices(con, prices)
        import_billing(con, usage)
    cal = targets.calibration_figures(sim.db, ws, cut)
    report.add(
        _percent_row(
            section,
            "billed runs (first 20 days) costed exactly",
            cal["billed_exact_share"],
            1.0,
            f"{cal['billed_runs']:.0f} runs",
            at_least=True,
        )
    )
    sources = ", ".join(
        f"{k.removeprefix('last10_')} {v:.0f}"
        for k, v in cal.items()
        if k.startswith("last10_") and k != "last10_uncalibrated_true_cost"
    )
    for metric, key, limit in (("median", "median_error", 0.05), ("p90", "p90_error", 0.15)):
        report.add(
            _percent_row(
                section,
                f"calibrated, last 10 days: per-job {metric} error vs billing",
                cal[key],
                limit,
                f"{cal['jobs']:.0f} jobs, serverless included; runs by cost source: {sources}",
            )
        )

    sim.advance(6 * 3600)
    with _step(f"extract 6 hours later ({cloud})"):
        later = sim.extract_into()
    clusters = targets.all_purpose_clusters(sim.db)
    gets = cold.get("clusters/get") + again.get("clusters/get") + later.get("clusters/get")
    report.add(
        _ratio_row(
            section,
            "clusters/get per all-purpose cluster per day",
            gets / max(1, len(clusters)),
            1.0,
            "per cluster",
            f"{gets} requests over 3 extracts within 6 hours, {len(clusters)} clusters",
        )
    )
    instances = targets.autoscaling_instances(sim.db)
    events = (
        cold.get("clusters/events") + again.get("clusters/events") + later.get("clusters/events")
    )
    report.add(
        Row(
            section,
            "clusters/events per autoscaling cluster instance",
            f"{events} for {len(instances)}",
            "1 each",
            events / len(instances) if instances else None,
            events == len(instances),
            f"cold extract: {cold.total} requests ({cold.note()})",
        )
    )
    return failures, cold.get("jobs/runs/get-output"), again.get("jobs/runs/get-output")


# -- 10: a fleet of workspaces, each simulator in its own process ---------------------------------

# Seconds the fleet's simulator processes may take to generate their workspaces and serve.
SIMULATOR_START_S = 120.0


@dataclass(frozen=True)
class ServedWorkspace:
    """A simulated workspace served by a process of its own: where, and what it holds."""

    seed: int
    cloud: str
    url: str
    token: str
    workspace_id: str
    runs: int

    @property
    def name(self) -> str:
        return f"sim-{self.seed}-{self.cloud}"

    def admin(self, path: str) -> Any:
        """An answer of the simulator's own endpoints (`/_sim/stats`, `/_sim/ground_truth`)."""
        answer = httpx.get(self.url + path, timeout=120)
        answer.raise_for_status()
        return answer.json()


def start_simulator(cfg: BenchConfig, seed: int, cloud: str, log: Path) -> subprocess.Popen[bytes]:
    """`python -m extractor.dev.simulator` serving one workspace of the fleet, its stderr in
    `log`; it prints where it serves once its workspace is generated (see `served`)."""
    command = [
        *(sys.executable, "-m", "extractor.dev.simulator", "--port", "0"),
        *("--seed", str(seed), "--cloud", cloud, "--runs", str(cfg.fleet_runs)),
        *("--jobs", str(cfg.jobs), "--days", str(RETENTION_DAYS), "--now-ms", str(START_MS)),
        *("--latency-ms", str(cfg.latency_ms), "--jitter-ms", str(cfg.jitter_ms)),
        *("--rate-limit-rps", str(cfg.rps)),
    ]
    with log.open("wb") as stderr:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_child_env(),
        )


def served(
    proc: subprocess.Popen[bytes], seed: int, cloud: str, log: Path, deadline: float
) -> ServedWorkspace:
    """The `key=value` words a simulator process prints once it serves, up to its
    `workspace_id=... runs=...` line; an error with its last words if it dies or stalls."""
    assert proc.stdout is not None
    fd, text = proc.stdout.fileno(), b""
    while not re.search(rb"^workspace_id=.*\n", text, re.M):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 65_536) if ready else b""
        if not chunk:
            how = (
                "stopped" if proc.poll() is not None else f"not serving in {SIMULATOR_START_S:g} s"
            )
            tail = (log.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
            raise JobrunsError(f"simulator of seed {seed} ({cloud}) {how}: {tail}")
        text += chunk
    words = dict(w.split("=", 1) for w in text.decode().split() if "=" in w)
    return ServedWorkspace(
        seed, cloud, words["url"], words["token"], words["workspace_id"], int(words["runs"])
    )


def stop_simulator(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def served_fleet(cfg: BenchConfig, folder: Path) -> Iterator[list[ServedWorkspace]]:
    """The fleet's workspaces, each served by its own process (they generate theirs side by
    side); every process is stopped when the block ends, by an error or Ctrl-C too."""
    with contextlib.ExitStack() as stack:
        started = []
        for i in range(cfg.fleet_workspaces):
            seed, cloud = cfg.fleet_seed + i, COST_CLOUDS[i % len(COST_CLOUDS)]
            log = folder / f"simulator-{seed}.log"
            proc = start_simulator(cfg, seed, cloud, log)
            stack.callback(stop_simulator, proc)
            started.append((proc, seed, cloud, log))
        deadline = time.monotonic() + SIMULATOR_START_S
        yield [served(*each, deadline) for each in started]


class FrozenClock:
    """The simulators' time, as the fleet's extracts read it; notes when it was last read.
    Each workspace's extract reads it as it ends, so the last reading is when the last one
    ended and the views' refresh began."""

    def __init__(self, now_ms: int) -> None:
        self.at = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        self.last_read = time.perf_counter()

    def __call__(self) -> datetime:
        self.last_read = time.perf_counter()
        return self.at


@contextlib.contextmanager
def _arrow_as_the_cli() -> Iterator[None]:
    """Arrow's allocator as `jobruns extract` sets it (release_memory_promptly), in the block."""
    saved = pa.default_memory_pool()
    release_memory_promptly()
    try:
        yield
    finally:
        pa.set_memory_pool(saved)


def bench_fleet(cfg: BenchConfig, report: Report, folder: Path) -> None:
    """Issue 17: a fleet extracted into one new store as `jobruns extract` extracts several
    profiles, against the rate bound of its slowest workspace; then the store against each
    simulator's truth."""
    section, n = "10 fleet", cfg.fleet_workspaces
    folder = folder / "fleet"
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "fleet.duckdb"
    with served_fleet(cfg, folder) as fleet:
        workspaces = [
            (ws.name, resolve_workspace(host=ws.url, token=ws.token, env={})) for ws in fleet
        ]
        clock = FrozenClock(START_MS)
        options = ExtractOptions(concurrency=cfg.concurrency)
        what = f"fleet extract of {n} workspaces x {cfg.fleet_runs} runs"
        with _step(what), _arrow_as_the_cli():
            began = time.perf_counter()
            outcomes = extract_into(db, workspaces, options, max_rps=cfg.max_rps, now=clock)
            wall = time.perf_counter() - began
        failed = [o for o in outcomes if o.error is not None]
        if failed:
            raise JobrunsError(
                f"{len(failed)} of {n} workspaces failed: "
                + "; ".join(f"{o.name}: {o.error}" for o in failed)
            )
        requests = [requests_of(ws.admin("/_sim/stats")) for ws in fleet]
        with _step("the store against each simulator's truth"):
            differences = {
                ws.name: targets.keys_vs_truth(db, ws.workspace_id, ws.admin("/_sim/ground_truth"))
                for ws in fleet
            }
    bounds = [r.ok / cfg.rps for r in requests]
    slowest = max(range(n), key=bounds.__getitem__)
    bound = bounds[slowest]
    runs = sum(o.result.runs_seen for o in outcomes if o.result is not None)
    total = sum(r.total for r in requests)
    extracted = clock.last_read - began
    seeds = f"seeds {cfg.fleet_seed}-{cfg.fleet_seed + n - 1}"
    clouds = ", ".join(sorted({ws.cloud for ws in fleet}))
    report.add(
        Row(
            section,
            f"{n} workspaces x {cfg.fleet_runs} runs, {total} requests, one store",
            f"{wall:.1f} s",
            f"<= 1.3x slowest workspace's rate bound ({bound:.1f} s ="
            f" {requests[slowest].ok} req / {cfg.rps:g} rps)",
            wall / bound if bound else None,
            wall <= 1.3 * bound if bound else None,
            f"slowest {fleet[slowest].name}; bounds {min(bounds):.1f}-{bound:.1f} s;"
            f" {runs} runs, {total} requests ({sum(r.throttled for r in requests)} 429s),"
            f" {runs / wall:.0f} runs/s; last workspace extracted at {extracted:.1f} s, views"
            f" {wall - extracted:.1f} s; {seeds} ({clouds}), a simulator process each, jobruns"
            f" at --max-rps {cfg.max_rps:g} each",
        )
    )
    wrong = {name: d for name, d in differences.items() if d}
    report.add(
        Row(
            section,
            "store vs each simulator's truth, by workspace_id",
            f"{n - len(wrong)} of {n} workspaces exact",
            "all",
            None,
            not wrong,
            "; ".join(
                f"{name}: " + ", ".join(f"{t} {m} missing, {x} extra" for t, (m, x) in d.items())
                for name, d in wrong.items()
            )
            or f"keys of runs, tasks, task iterations, repair history and jobs;"
            f" {sum(ws.runs for ws in fleet)} runs in all",
        )
    )


# -- the whole benchmark -------------------------------------------------------------------------


def run_bench(cfg: BenchConfig, *, workdir: Path | None = None) -> Report:
    """Run the selected sections; returns the report (also printed by the CLI)."""
    report = Report(cfg, machine=machine_info())
    with contextlib.ExitStack() as stack:
        folder = workdir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="jobruns-bench-"))
        )
        wanted = set(cfg.sections)
        jobruns_wall: float | None = None
        if wanted & {"cold", "incremental", "sdk"}:
            sim = SimRun(cfg, cfg.runs, cfg.api_faults(), folder)
            try:
                # The SDK loop first: extractions move the simulated clock, listing does not.
                sdk_wall = bench_sdk(cfg, report, sim, folder) if "sdk" in wanted else None
                if wanted & {"cold", "incremental"}:
                    err.rule("jobruns extract")
                    jobruns_wall = bench_cold(cfg, report, sim)
                    if "incremental" in wanted:
                        bench_incremental(cfg, report, sim)
            finally:
                sim.close()
            if "incremental" in wanted:
                bench_cli_incremental(cfg, report, folder)
            if sdk_wall is not None and jobruns_wall is not None:
                report.add(
                    _ratio_row(
                        "2 databricks-sdk",
                        "jobruns speed-up over the SDK loop",
                        sdk_wall / jobruns_wall,
                        4.0,
                        "x",
                        f"SDK {sdk_wall:.1f} s vs jobruns {jobruns_wall:.1f} s",
                        at_least=True,
                    )
                )
        sections: list[tuple[str, Callable[[BenchConfig, Report, Path], None]]] = [
            ("load", bench_load),
            ("memory", bench_memory),
            ("views", bench_views),
            ("cost", bench_cost),
            ("fleet", bench_fleet),
        ]
        for name, bench in sections:
            if name in wanted:
                err.rule(name)
                try:
                    bench(cfg, report, folder)
                except Exception as exc:  # one broken section must not hide the others
                    report.add(
                        Row(name, "section failed", type(exc).__name__, met=False, note=str(exc))
                    )
    return report
