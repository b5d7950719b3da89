"""`jobruns demo`: the real extraction against the built-in simulated workspace.

Starts the simulator on 127.0.0.1, extracts it over HTTP into a fresh store and creates the
views. It never touches a store that holds a real workspace.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.console import Console

from extractor.errors import UsageError
from extractor.store import open_connection, store_files

EXAMPLE_QUERIES = (
    (
        "Least reliable jobs",
        "SELECT job_name, runs, failed, round(success_rate, 3) AS success_rate"
        " FROM job_reliability WHERE terminal_runs > 0 ORDER BY success_rate LIMIT 5",
    ),
    (
        "Top spenders (estimated)",
        "SELECT job_name, runs, round(cost, 2) AS cost FROM job_cost ORDER BY cost DESC NULLS LAST LIMIT 5",
    ),
    (
        "Flaky tasks",
        "SELECT job_name, task_key, executions, flaky_executions, round(flake_rate, 2) AS flake_rate"
        " FROM flaky_tasks ORDER BY flaky_executions DESC LIMIT 5",
    ),
)


def _ensure_demo_path(path: Path) -> None:
    """Remove an earlier demo store at `path`; refuse any other file."""
    if not path.exists():
        return
    con = open_connection(path, read_only=True)
    try:
        tables = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        hosts = (
            [r[0] for r in con.execute("SELECT DISTINCT host FROM extract_state").fetchall()]
            if "extract_state" in tables
            else []
        )
    finally:
        con.close()
    if tables and not (hosts and all(str(h).startswith("http://127.0.0.1") for h in hosts)):
        raise UsageError(
            f"{path} exists and is not a demo store; pass another --db path for the demo"
        )
    for part in store_files(path):
        part.unlink(missing_ok=True)


def build_demo_store(
    path: str | Path,
    *,
    runs: int = 2000,
    jobs: int = 25,
    seed: int = 7,
    cloud: str = "aws",
    quiet: bool = True,
) -> Any:
    """Build a demo store at `path` (replacing an earlier demo store); returns the extract result."""
    from extractor.config import resolve_workspace
    from extractor.dev.simulator import Workspace, serve
    from extractor.pipeline import extract_into
    from extractor.plan import ExtractOptions
    from extractor.progress import print_outcomes, progress_board

    path = Path(path)
    _ensure_demo_path(path)
    workspace = Workspace.generate(seed, jobs=jobs, runs=runs, days=60, cloud=cloud)
    with serve(workspace) as server:
        # The simulator's own host and token: nothing from the environment may leak in.
        config = resolve_workspace(host=server.url, token=server.token, env={})
        with progress_board(enabled=not quiet) as board:
            (outcome,) = extract_into(
                path, [("demo", config)], ExtractOptions(), max_rps=1000.0, board=board
            )
    if not quiet:
        print_outcomes([outcome])
    if outcome.error is not None:
        raise outcome.error
    return outcome.result


def run_demo(
    path: Path, *, runs: int, jobs: int, seed: int, quiet: bool, cloud: str = "aws"
) -> None:
    console = Console()
    err = Console(stderr=True)
    if not quiet:
        err.print(
            f"simulating a workspace ({cloud}) with {jobs} jobs and {runs} runs over 60 days ..."
        )
    build_demo_store(path, runs=runs, jobs=jobs, seed=seed, cloud=cloud, quiet=quiet)
    shown = os.path.relpath(path) if not path.is_absolute() else str(path)
    console.print(f"\nstore: [bold]{shown}[/]\n")
    console.print("Try:")
    for title, sql in EXAMPLE_QUERIES:
        console.print(f"  # {title}", style="dim")
        console.print(f'  jobruns query --db {shown} "{sql}"', soft_wrap=True, highlight=False)
    console.print(f"  jobruns report --db {shown}", highlight=False)
