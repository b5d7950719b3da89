"""All-purpose clusters: read with clusters/get at most daily, and used to cost their runs."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from extractor.flatten import flatten_clusters
from tests.conftest import MakeSim, Sim

CLUSTERS_GET = "/api/2.1/clusters/get"
NODE_TYPES_UNKNOWN = "all-purpose cluster: node types unknown"


def cluster_requests(sim: Sim) -> int:
    return int(sim.server.stats()["requests"].get(CLUSTERS_GET, 0))


def query(sim: Sim, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(sim.db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_each_used_cluster_is_read_once_and_not_again_within_a_day(make_sim: MakeSim) -> None:
    sim = make_sim(seed=11)
    result = sim.extract()
    used = {
        r[0]
        for r in query(
            sim,
            "SELECT DISTINCT existing_cluster_id FROM tasks WHERE existing_cluster_id IS NOT NULL",
        )
    }
    assert used
    assert cluster_requests(sim) == len(used) == result.clusters_fetched
    rows = query(sim, "SELECT cluster_id, node_type_id, error FROM clusters")
    assert {r[0] for r in rows} == used
    assert all(r[1] is not None and r[2] is None for r in rows)

    sim.advance(6 * 3600)  # new runs on the same clusters, well within a day
    sim.server.reset_stats()
    second = sim.extract()
    assert second.runs_new > 0
    assert cluster_requests(sim) == 0 and second.clusters_fetched == 0

    sim.advance(20 * 3600)  # more than a day after the first read: read again
    sim.server.reset_stats()
    sim.extract()
    assert 0 < cluster_requests(sim) <= len(used)


def test_after_an_extract_no_run_lacks_all_purpose_node_types(make_sim: MakeSim) -> None:
    from extractor.analytics.connect import connect

    sim = make_sim(seed=11)
    sim.extract()
    con = connect(sim.db)
    try:
        reasons = dict(
            con.execute("SELECT cost_null_reason, count(*) FROM run_cost GROUP BY ALL").fetchall()
        )
        costed = con.execute(
            "SELECT count(*) FROM task_cost WHERE compute_kind = 'existing_cluster'"
            " AND cost IS NOT NULL"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert NODE_TYPES_UNKNOWN not in reasons
    assert costed > 0


def test_a_refused_cluster_is_stored_with_its_reason_only() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    table = flatten_clusters(
        {"a": "not found", "b": {"cluster_id": "b", "node_type_id": "i3.xlarge", "num_workers": 2}},
        "1",
        at,
    )
    rows = {r["cluster_id"]: r for r in table.to_pylist()}
    assert rows["a"]["error"] == "not found" and rows["a"]["node_type_id"] is None
    assert rows["a"]["fetched_at"] == at
    assert rows["b"]["driver_node_type_id"] == "i3.xlarge" and rows["b"]["num_workers"] == 2
