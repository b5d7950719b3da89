"""`jobruns demo` and `jobruns bench`: the simulated workspace, extracted or measured."""

from __future__ import annotations

import os
from pathlib import Path

import click

from extractor.cli._common import cli, db_option


@cli.command()
@db_option
@click.option("--runs", type=click.IntRange(1, 1_000_000), default=2000, show_default=True)
@click.option("--jobs", type=click.IntRange(1, 10_000), default=25, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--cloud",
    type=click.Choice(["aws", "azure", "gcp"]),
    default="aws",
    show_default=True,
    help="The simulated workspace's cloud: its node types, pools and host name.",
)
@click.option("--quiet", "-q", is_flag=True)
def demo(db: str | None, runs: int, jobs: int, seed: int, cloud: str, quiet: bool) -> None:
    """Extract a simulated workspace into a store, with nothing to configure.

    Starts the built-in simulated Databricks workspace on 127.0.0.1 and runs the real
    extraction against it over HTTP.
    """
    from extractor.dev.demo import run_demo

    path = Path(db) if db else Path(os.environ.get("JOBRUNS_DB") or "jobruns-demo.duckdb")
    run_demo(path, runs=runs, jobs=jobs, seed=seed, cloud=cloud, quiet=quiet)


@cli.command()
@click.option("--runs", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--latency-ms", type=click.IntRange(0), default=300, show_default=True)
@click.option("--jitter-ms", type=click.IntRange(0), default=50, show_default=True)
@click.option("--rps", type=float, default=30.0, show_default=True, help="Simulator rate limit.")
@click.option("--max-rps", type=float, default=28.0, show_default=True, help="jobruns' own limit.")
@click.option("--concurrency", type=click.IntRange(1, 32), default=10, show_default=True)
@click.option("--sdk-runs", type=click.IntRange(1), help="Run the SDK loop on the newest N runs.")
@click.option("--new-runs", type=click.IntRange(1), default=500, show_default=True)
@click.option("--load-runs", type=click.IntRange(1), default=20_000, show_default=True)
@click.option(
    "--load-rounds",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Rounds of the load section, jobruns and read_json side by side; medians count.",
)
@click.option("--memory-runs", default="50000,200000", show_default=True)
@click.option("--view-runs", type=click.IntRange(1), default=1_000_000, show_default=True)
@click.option(
    "--fleet-workspaces",
    type=click.IntRange(1, 32),
    default=8,
    show_default=True,
    help="Workspaces of the fleet section, each served by its own simulator process.",
)
@click.option(
    "--fleet-runs",
    type=click.IntRange(1),
    default=2500,
    show_default=True,
    help="Runs of each fleet workspace.",
)
@click.option("--tiny", is_flag=True, help="Every section at a tiny size, in seconds (CI).")
@click.option(
    "--skip",
    default="",
    help="Sections to skip: cold,sdk,incremental,load,memory,views,cost,fleet.",
)
@click.option("--only", default="", help="Only these sections (same names as --skip).")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the table here (Markdown).",
)
def bench(
    runs: int,
    latency_ms: int,
    jitter_ms: int,
    rps: float,
    max_rps: float,
    concurrency: int,
    sdk_runs: int | None,
    new_runs: int,
    load_runs: int,
    load_rounds: int,
    memory_runs: str,
    view_runs: int,
    fleet_workspaces: int,
    fleet_runs: int,
    tiny: bool,
    skip: str,
    only: str,
    output: Path | None,
) -> None:
    """Measure extraction, load, memory and view speed against the simulator, and a fleet of
    simulated workspaces extracted into one store; print one table."""
    from extractor.dev.bench import bench_config, run_bench

    cfg = bench_config(
        runs=runs,
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        rps=rps,
        max_rps=max_rps,
        concurrency=concurrency,
        sdk_runs=sdk_runs,
        new_runs=new_runs,
        load_runs=load_runs,
        load_rounds=load_rounds,
        memory_runs=memory_runs,
        view_runs=view_runs,
        fleet_workspaces=fleet_workspaces,
        fleet_runs=fleet_runs,
        tiny=tiny,
        skip=skip,
        only=only,
    )
    text = run_bench(cfg).markdown()
    click.echo(text)
    if output is not None:
        output.write_text(text, encoding="utf-8")
