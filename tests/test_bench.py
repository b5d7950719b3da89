"""The benchmark harness keeps working: `jobruns bench --tiny` prints every section's rows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from extractor.cli import cli
from extractor.dev.bench import SECTIONS, api_requests, bench_config
from extractor.dev.simulator import Faults
from extractor.errors import UsageError
from tests.conftest import MakeSim

SECTION_LABELS = (
    "1 cold extract",
    "2 databricks-sdk",
    "3 incremental",
    "4 load (no network)",
    "5 peak memory",
    "6 views",
    "8 cost aws",
    "8 cost azure",
    "8 cost gcp",
    "9 failures",
    "10 fleet",
)


@pytest.mark.bench
def test_tiny_bench_prints_one_table_with_every_section(tmp_path: Path) -> None:
    output = tmp_path / "bench.md"
    result = CliRunner().invoke(cli, ["bench", "--tiny", "--output", str(output)])
    assert result.exit_code == 0, result.output
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| section | metric | measured | target | ratio | met |")
    sections = {line.split(" | ")[0].removeprefix("| ") for line in table[1:]}
    assert sections >= set(SECTION_LABELS)
    # Both memory children (the extraction, `jobruns extract`) ran and reported their peaks.
    memory = [line for line in table if line.startswith("| 5 peak memory | max RSS, cold ")]
    assert len(memory) == 4 and all(" | failed | " not in line for line in memory), memory
    assert "machine:" in result.stdout and "duckdb" in result.stdout
    assert output.read_text(encoding="utf-8") == result.stdout.rstrip("\n") + "\n"


def test_section_names_are_checked_and_only_views_keeps_its_size() -> None:
    cfg = bench_config(only="views", view_runs=1_000_000)
    assert cfg.sections == ("views",) and cfg.view_runs == 1_000_000
    assert bench_config(skip="sdk,memory,views").sections == (
        "cold",
        "incremental",
        "load",
        "cost",
        "fleet",
    )
    assert bench_config(only="cost").sections == ("cost",)
    assert bench_config(only="fleet", tiny=True).sections == ("fleet",)
    assert "fleet" not in bench_config(skip="fleet").sections
    assert bench_config(tiny=True).sections == SECTIONS
    with pytest.raises(UsageError, match="unknown section"):
        bench_config(skip="network")


@pytest.mark.slow
def test_request_counts_take_every_endpoint_an_extract_reads_and_only_its_2xx(
    make_sim: MakeSim,
) -> None:
    # Autoscaling clusters, pools, all-purpose clusters, failed tasks and a node type the card
    # lacks: each endpoint the cold-extract rate bound must count.
    sim = make_sim(seed=11, runs=200, jobs=12, faults=Faults(error_5xx_rate=0.05, seed=3))
    sim.extract()
    req = api_requests(sim.server)
    assert set(req.by_endpoint) >= {
        "jobs/list",
        "jobs/runs/list",
        "jobs/runs/get-output",
        "clusters/get",
        "clusters/events",
        "clusters/list-node-types",
        "instance-pools/get",
    }
    stats = sim.server.stats()
    # Retried 5xx answers are requests but not in the bound; the host's config is not the API.
    outside = sum(n for path, n in stats["requests"].items() if not path.startswith("/api/"))
    assert req.ok == stats["statuses"]["200"] - outside < req.total
    assert "clusters/events" in req.note()


@pytest.mark.slow
def test_cost_section_measures_each_cloud_and_the_failure_targets(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["bench", "--tiny", "--only", "cost"])
    assert result.exit_code == 0, result.output
    rows = [line.split(" | ") for line in result.stdout.splitlines() if line.startswith("| 8")]
    rows += [line.split(" | ") for line in result.stdout.splitlines() if line.startswith("| 9")]
    by_metric = {(r[0].removeprefix("| "), r[1]): r for r in rows}
    for cloud in ("aws", "azure", "gcp"):
        for metric in (
            "classic runs with a cost estimate, no billing",
            "per-job median error vs true list price",
            "billed runs (first 20 days) costed exactly",
            "clusters/get per all-purpose cluster per day",
            "clusters/events per autoscaling cluster instance",
        ):
            assert by_metric[(f"8 cost {cloud}", metric)][5] == "yes", metric
        assert (f"8 cost {cloud}", "calibrated, last 10 days: per-job p90 error vs billing") in (
            by_metric
        )
    failures = [r for (section, _), r in by_metric.items() if section == "9 failures"]
    assert len(failures) == 5 and all(r[5] == "yes" for r in failures)


def simulator_children() -> list[str]:
    """Command lines of this process's children that serve a simulated workspace."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and "extractor.dev.simulator" in command:
            found.append(command)
    return found


@pytest.mark.slow
def test_fleet_section_extracts_each_workspace_exactly_and_stops_its_simulators() -> None:
    result = CliRunner().invoke(cli, ["bench", "--tiny", "--only", "fleet"])
    assert result.exit_code == 0, result.output
    rows = [line.split(" | ") for line in result.stdout.splitlines() if line.startswith("| 10")]
    assert len(rows) == 2, result.stdout
    speed, exact = rows
    assert speed[1].startswith("2 workspaces x 60 runs, ")
    assert speed[3].startswith("<= 1.3x slowest workspace's rate bound") and speed[4].endswith("x")
    assert "seeds 71-72 (aws, azure)" in speed[6]
    assert exact[1] == "store vs each simulator's truth, by workspace_id"
    assert exact[2:6] == ["2 of 2 workspaces exact", "all", "", "yes"]
    assert "120 runs in all" in exact[6]
    if Path("/proc/self/stat").exists():
        assert simulator_children() == []
