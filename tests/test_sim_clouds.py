"""The simulator on AWS, Azure and GCP: node types of each cloud with the rate card's DBU rates,
host names and attributes of the cloud, a family newer than the card; and cost on each cloud
close to the simulator's true list-price cost."""

from __future__ import annotations

import csv
import re
from importlib.resources import files
from pathlib import Path

import duckdb
import pytest

from extractor.analytics.rates import load_node_facts
from extractor.dev import targets
from extractor.dev.simulator import Workspace, _catalog, _cost
from tests.conftest import START_MS, MakeSim, jobruns

HOSTS = {
    "aws": r"https://dbc-[0-9a-f]{8}-[0-9a-f]{4}\.cloud\.databricks\.com",
    "azure": r"https://adb-\d{16}\.\d+\.azuredatabricks\.net",
    "gcp": r"https://\d{16}\.\d\.gcp\.databricks\.com",
}


def card_rows() -> list[dict[str, str]]:
    text = (files("extractor") / "data" / "rate_card.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@pytest.mark.parametrize("cloud", _catalog.CLOUDS)
def test_the_simulators_node_types_and_prices_are_the_rate_cards(cloud: str) -> None:
    facts = _catalog.CLOUD[cloud]
    card = load_node_facts(cloud.upper())
    known = set(facts.node_facts) - set(facts.new_node_types)
    assert len(known) >= 6 and set(facts.node_types) <= known
    assert set(facts.all_purpose_nodes) | {facts.driver_alternative} <= known
    for node in known:
        cores, memory_mb, _, dbu = facts.node_facts[node]
        assert card[node] == (cores, memory_mb / 1024, dbu), node
    # The newer family is one the card lacks, listed like the rest (the inferred path).
    assert facts.new_node_types and not set(facts.new_node_types) & set(card)
    assert {node for _, node in facts.pools.values()} <= set(facts.node_facts)
    rows = {
        (r["kind"], r["name"]): float(r["value"])
        for r in card_rows()
        if r["cloud"] == cloud.upper()
    }
    assert _cost.PRICE[cloud] == {
        "jobs": rows[("sku", "JOBS_COMPUTE")],
        "all_purpose": rows[("sku", "ALL_PURPOSE_COMPUTE")],
    }
    assert _cost.PHOTON[cloud] == {
        "jobs": rows[("multiplier", "photon_jobs")],
        "all_purpose": rows[("multiplier", "photon_all_purpose")],
    }


def cluster_specs(ws: Workspace) -> list[dict[str, object]]:
    specs = []
    for job in ws.jobs.values():
        specs += [c["new_cluster"] for c in job.job_clusters or []]
        specs += [t.new_cluster for t in job.tasks if t.new_cluster is not None]
    return specs


def test_each_cloud_has_the_same_runs_on_its_own_node_types_host_and_attributes(
    make_sim: MakeSim,
) -> None:
    runs = {}
    for cloud in _catalog.CLOUDS:
        ws = Workspace.generate(4, jobs=12, runs=200, now_ms=START_MS, cloud=cloud)
        assert re.fullmatch(HOSTS[cloud], ws.host), ws.host
        runs[cloud] = [(r.run_id, r.start) for r in ws.runs.values()]
        specs = cluster_specs(ws)
        nodes = {s["node_type_id"] for s in specs if "node_type_id" in s}
        facts = _catalog.CLOUD[cloud]
        assert nodes <= set(facts.node_facts) and len(nodes) >= 4
        assert nodes & set(facts.new_node_types)
        assert all(facts.attributes_key in s for s in specs if "node_type_id" in s)
        others = {"aws_attributes", "azure_attributes", "gcp_attributes"} - {facts.attributes_key}
        assert not any(others & set(s) for s in specs)
    # A seed's runs and their timing are the same on every cloud.
    assert runs["aws"] == runs["azure"] == runs["gcp"]
    # The cloud follows a host given without one.
    azure = Workspace.generate(
        4, jobs=12, runs=20, now_ms=START_MS, host="https://adb-1.2.azuredatabricks.net"
    )
    assert azure.cloud == "azure"
    with pytest.raises(ValueError, match="cloud must be one of"):
        Workspace.generate(4, jobs=12, runs=20, now_ms=START_MS, cloud="oracle")

    sim = make_sim(seed=4, runs=100, jobs=12, cloud="gcp")
    with sim.client() as client:
        listed = client.list_node_types()["node_types"]
        pool = client.get_instance_pool(sorted(_catalog.INSTANCE_POOLS)[0])
    assert {n["node_type_id"] for n in listed} == set(_catalog.CLOUD["gcp"].node_facts)
    assert not any("support_ebs_volumes" in n for n in listed)
    assert pool["node_type_id"] == "n2-standard-8" and "gcp_attributes" in pool


@pytest.mark.parametrize("cloud", ["azure", pytest.param("gcp", marks=pytest.mark.slow)])
def test_classic_runs_on_azure_and_gcp_get_a_cost_close_to_the_truth(
    make_sim: MakeSim, cloud: str
) -> None:
    sim = make_sim(seed=11, runs=300, jobs=12, cloud=cloud)
    result = sim.extract()
    assert result.status == "ok" and not result.errors
    figures = targets.cost_figures(sim.db, sim.workspace)
    assert figures.runs > 150
    assert figures.share >= 0.995
    assert figures.median_error <= 0.15
    inferred = targets.inferred_node_types(sim.db)
    assert set(inferred) == set(_catalog.CLOUD[cloud].new_node_types)


@pytest.mark.slow
def test_demo_builds_a_store_of_the_cloud_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "demo.duckdb"
    code, out = jobruns(
        capsys, "demo", "--cloud", "azure", "--runs", "60", "--jobs", "12", "--db", str(db), "-q"
    )
    assert code == 0, out
    con = duckdb.connect(str(db), read_only=True)
    try:
        nodes = {r[0] for r in con.execute("SELECT DISTINCT node_type_id FROM tasks").fetchall()}
    finally:
        con.close()
    nodes.discard(None)
    assert nodes and all(n.startswith("Standard_") for n in nodes)
    code, out = jobruns(capsys, "demo", "--cloud", "oracle", "--db", str(db))
    assert code == 2 and "oracle" in out


def test_simulator_command_line_takes_the_cloud(tmp_path: Path) -> None:
    from extractor.dev.simulator.__main__ import main

    prices = tmp_path / "prices.csv"
    args = ["--cloud", "azure", "--runs", "30", "--jobs", "12", "--prices-csv", str(prices)]
    assert main(args) == 0
    rows = list(csv.DictReader(prices.read_text(encoding="utf-8").splitlines()))
    assert rows and {r["cloud"] for r in rows} == {"AZURE"}
    with pytest.raises(SystemExit):
        main(["--cloud", "oracle"])
