"""The benchmark harness keeps working: `jobruns bench --tiny` prints every section's rows."""

from __future__ import annotations

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
    assert "machine:" in result.stdout and "duckdb" in result.stdout
    assert output.read_text(encoding="utf-8") == result.stdout.rstrip("\n") + "\n"


def test_section_names_are_checked_and_only_views_keeps_its_size() -> None:
    cfg = bench_config(only="views", view_runs=1_000_000)
    assert cfg.sections == ("views",) and cfg.view_runs == 1_000_000
    assert bench_config(skip="sdk,memory,views").sections == ("cold", "incremental", "load")
    assert bench_config(tiny=True).sections == SECTIONS
    with pytest.raises(UsageError, match="unknown section"):
        bench_config(skip="network")


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
