"""Cost on any workspace: node types the rate card lacks, instance pools, real autoscaling.

Hand-computed view answers from given node facts, pools and cluster events; then extracts of
the simulator, counting the requests each feature may make and comparing the cost with the
simulator's hidden truth (its worker trajectories and true DBU rates).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from extractor.analytics.connect import connect
from extractor.dev import targets
from extractor.flatten import worker_intervals
from tests.conftest import MakeSim, Sim
from tests.test_views import MIN, T0, add_run, add_task, all_rows, insert, one

EVENTS = "/api/2.1/clusters/events"
NODE_TYPES = "/api/2.1/clusters/list-node-types"
POOLS = "/api/2.0/instance-pools/get"


def requests(sim: Sim, path: str) -> int:
    return int(sim.server.stats()["requests"].get(path, 0))


def query(sim: Sim, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(sim.db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# --- the views, by hand -------------------------------------------------------------------


def add_autoscaling_task(con: duckdb.DuckDBPyConnection, **extra: Any) -> None:
    add_run(con, 100)
    add_task(
        con,
        101,
        100,
        kind="new_cluster",
        workers=None,
        autoscale_min_workers=2,
        autoscale_max_workers=6,
        **extra,
    )


def test_autoscaling_cluster_is_costed_from_its_worker_events(views_con):
    # 2 workers for 30 min then 6 for 30 min, i3.xlarge at 1.0 DBU/h:
    # (1 + 2) x 0.5 + (1 + 6) x 0.5 = 5 DBU -> x $0.15 = $0.75.
    add_autoscaling_task(views_con)
    insert(views_con, "cluster_workers", workspace_id="ws1", cluster_id="c1", since=T0, workers=2)
    insert(
        views_con,
        "cluster_workers",
        workspace_id="ws1",
        cluster_id="c1",
        since=T0 + 30 * MIN,
        workers=6,
    )
    inst = one(
        views_con,
        "SELECT workers_est, workers_basis, dbus_est, cost_est FROM int_cluster_instances",
    )
    assert inst["workers_basis"] == "events"
    assert inst["workers_est"] == pytest.approx(4.0)
    assert inst["dbus_est"] == pytest.approx(5.0)
    assert inst["cost_est"] == pytest.approx(0.75)


def test_first_worker_count_holds_from_the_start_and_the_last_until_the_end(views_con):
    # RUNNING 5 min after the task started (setup) with 2 workers, up to 4 at 0:45, and a row
    # after the task ended (1:30). 2 x 45 min + 4 x 15 min = 150 worker-min over 60 min
    # -> 2.5 workers; (1 + 2.5) x 1 h = 3.5 DBU.
    add_autoscaling_task(views_con)
    for minute, workers in ((5, 2), (45, 4), (90, 0)):
        insert(
            views_con,
            "cluster_workers",
            workspace_id="ws1",
            cluster_id="c1",
            since=T0 + minute * MIN,
            workers=workers,
        )
    inst = one(views_con, "SELECT workers_est, dbus_est FROM int_cluster_instances")
    assert inst["workers_est"] == pytest.approx(2.5)
    assert inst["dbus_est"] == pytest.approx(3.5)


def test_without_events_the_midpoint_stays_the_guess(views_con):
    add_autoscaling_task(views_con)
    inst = one(views_con, "SELECT workers_est, workers_basis, dbus_est FROM int_cluster_instances")
    assert (inst["workers_est"], inst["workers_basis"]) == (4, "autoscale_midpoint")
    assert inst["dbus_est"] == pytest.approx(5.0)


def test_resize_events_become_worker_intervals():
    def event(at: int, kind: str, **details: int) -> dict[str, Any]:
        return {"cluster_id": "c", "timestamp": at, "type": kind, "details": details}

    events = [
        event(3_000, "UPSIZE_COMPLETED", current_num_workers=6, target_num_workers=6),
        event(1_000, "RUNNING", current_num_workers=2),
        event(2_000, "RESIZING", current_num_workers=2, target_num_workers=6),  # not yet
        event(4_000, "RESIZING", current_num_workers=6, target_num_workers=3),  # at once
    ]
    assert worker_intervals(events) == [(1_000, 2), (3_000, 6), (4_000, 3)]


def test_cluster_on_instance_pools_takes_node_types_from_the_pools(views_con):
    # Workers from pool p1 (i3.xlarge, 1.0 DBU/h), driver from p2 (i3.2xlarge, 2.0 DBU/h):
    # (2.0 + 2 x 1.0) x 1 h = 4 DBU.
    add_run(views_con, 100)
    add_task(
        views_con,
        101,
        100,
        node=None,
        driver_node_type_id=None,
        instance_pool_id="p1",
        driver_instance_pool_id="p2",
    )
    for pool, node in (("p1", "i3.xlarge"), ("p2", "i3.2xlarge")):
        insert(
            views_con,
            "instance_pools",
            workspace_id="ws1",
            instance_pool_id=pool,
            node_type_id=node,
        )
    inst = one(
        views_con,
        "SELECT node_type_id, driver_node_type_id, dbus_est, rate_basis FROM int_cluster_instances",
    )
    assert inst == {
        "node_type_id": "i3.xlarge",
        "driver_node_type_id": "i3.2xlarge",
        "dbus_est": pytest.approx(4.0),
        "rate_basis": "rate_card",
    }


def test_a_pool_alone_fixes_the_driver_too(views_con):
    add_run(views_con, 100)
    add_task(views_con, 101, 100, node=None, driver_node_type_id=None, instance_pool_id="p1")
    insert(
        views_con,
        "instance_pools",
        workspace_id="ws1",
        instance_pool_id="p1",
        node_type_id="i3.xlarge",
    )
    assert one(views_con, "SELECT dbus_est FROM int_cluster_instances")["dbus_est"] == (
        pytest.approx(3.0)
    )


def test_node_type_missing_from_the_card_is_costed_at_its_inferred_rate(views_con):
    # m8gd.2xlarge inferred at 1.92 DBU/h: (1 + 2) x 1.92 x 1 h = 5.76 DBU -> x $0.15.
    add_run(views_con, 100)
    add_task(views_con, 101, 100, node="m8gd.2xlarge")
    insert(
        views_con,
        "node_types",
        workspace_id="ws1",
        node_type_id="m8gd.2xlarge",
        cloud="AWS",
        num_cores=8,
        memory_mb=32768,
        dbu_per_hour=1.92,
        inferred_from="inferred from m7gd.2xlarge (same vCPUs and memory)",
    )
    run = one(views_con, "SELECT dbus_est, cost, rate_basis, cost_null_reason FROM run_cost")
    assert run == {
        "dbus_est": pytest.approx(5.76),
        "cost": pytest.approx(5.76 * 0.15),
        "rate_basis": "inferred",
        "cost_null_reason": None,
    }


def test_a_node_type_nothing_close_to_keeps_its_reason(views_con):
    add_run(views_con, 100)
    add_task(views_con, 101, 100, node="zz9.mega")
    insert(views_con, "node_types", workspace_id="ws1", node_type_id="zz9.mega", num_cores=8)
    run = one(views_con, "SELECT cost, rate_basis, cost_null_reason FROM run_cost")
    assert run == {
        "cost": None,
        "rate_basis": None,
        "cost_null_reason": "node type not in rate card: zz9.mega",
    }
    # Another workspace's inferred rate is not this one's.
    insert(views_con, "node_types", workspace_id="ws2", node_type_id="zz9.mega", dbu_per_hour=1.0)
    assert all_rows(views_con, "SELECT cost FROM run_cost") == [{"cost": None}]


# --- extracts of the simulator ------------------------------------------------------------


def autoscaling_instances(sim: Sim) -> set[str]:
    return targets.autoscaling_instances(sim.db)


def test_each_feature_asks_once_and_a_second_extract_asks_nothing(make_sim: MakeSim) -> None:
    sim = make_sim(seed=11, runs=200, jobs=12)
    first = sim.extract()
    assert first.status == "ok" and not first.errors
    instances = autoscaling_instances(sim)
    pools = {r[0] for r in query(sim, "SELECT instance_pool_id FROM instance_pools")}
    named = {
        r[0]
        for r in query(
            sim,
            "SELECT unnest([instance_pool_id, driver_instance_pool_id]) FROM tasks"
            " WHERE instance_pool_id IS NOT NULL",
        )
    }
    assert instances and pools and named - {None} == pools
    assert requests(sim, EVENTS) == len(instances) == first.cluster_events_read
    assert requests(sim, POOLS) == len(pools) == first.pools_fetched
    assert requests(sim, NODE_TYPES) == 1
    inferred = query(
        sim,
        "SELECT node_type_id, dbu_per_hour, inferred_from FROM node_types WHERE dbu_per_hour IS NOT NULL",
    )
    assert {r[0] for r in inferred} >= {"m8gd.xlarge", "m8gd.2xlarge"}
    assert all("inferred from m7gd" in r[2] for r in inferred)

    sim.advance(3600)
    sim.server.reset_stats()
    second = sim.extract()
    assert second.status == "ok"
    # Runs that ended since are read; nothing read before is asked again.
    new_instances = autoscaling_instances(sim) - instances
    assert requests(sim, EVENTS) == len(new_instances)
    assert requests(sim, POOLS) == 0 and requests(sim, NODE_TYPES) == 0

    sim.server.reset_stats()
    sim.extract()
    assert requests(sim, EVENTS) == requests(sim, POOLS) == requests(sim, NODE_TYPES) == 0


def test_a_workspace_the_card_fully_prices_never_lists_node_types(make_sim: MakeSim) -> None:
    sim = make_sim(seed=11, runs=60, jobs=12)
    con = duckdb.connect(str(sim.db))
    # The card learns the new family (as a user's rate import would): nothing is unknown.
    from extractor.analytics.cost import ensure_cost_tables
    from extractor.schema import create_tables

    create_tables(con)
    ensure_cost_tables(con)
    con.execute(
        "INSERT INTO rate_card VALUES ('node_type', 'AWS', 'm8gd.xlarge', 1.0, NULL, 'test', NULL),"
        " ('node_type', 'AWS', 'm8gd.2xlarge', 2.0, NULL, 'test', NULL)"
    )
    con.close()
    sim.extract()
    assert requests(sim, NODE_TYPES) == 0


def test_events_are_read_on_every_page(make_sim: MakeSim) -> None:
    sim = make_sim(seed=11, runs=60, jobs=12)
    sim.workspace.events_page_limit = 1  # every event its own page
    sim.extract()
    instances = autoscaling_instances(sim)
    reads = query(sim, "SELECT sum(events) FROM cluster_event_reads")[0][0]
    assert reads > len(instances)
    assert requests(sim, EVENTS) == reads
    # A page per event, the same intervals as from one page each.
    paged = query(
        sim, "SELECT cluster_id, epoch_ms(since), workers FROM cluster_workers ORDER BY ALL"
    )
    other = make_sim(seed=11, runs=60, jobs=12, db=sim.db.with_name("one-page.duckdb"))
    other.extract()
    assert paged == query(
        other, "SELECT cluster_id, epoch_ms(since), workers FROM cluster_workers ORDER BY ALL"
    )


def test_unknown_pool_is_stored_with_its_reason(make_sim: MakeSim) -> None:
    sim = make_sim(seed=11, runs=50, jobs=12)
    with sim.client() as client:
        from extractor.errors import NotFoundError

        with pytest.raises(NotFoundError):
            client.get_instance_pool("0000-000000-nope-pool-zzzzzzzz")
        pool = client.get_instance_pool("0101-120000-pool1-pool-abcdefgh")
    assert pool["node_type_id"] == "i3.xlarge"


def test_classic_runs_all_get_a_cost_close_to_the_truth(make_sim: MakeSim) -> None:
    sim = make_sim(seed=11, runs=150, jobs=12)
    sim.extract()
    figures = targets.cost_figures(sim.db, sim.workspace)
    assert figures.runs > 50
    assert figures.share == 1.0
    assert figures.median_error < 0.05
    con = connect(sim.db)
    try:
        rows = con.execute("SELECT DISTINCT cost_null_reason FROM int_cluster_instances").fetchall()
    finally:
        con.close()
    assert {r[0] for r in rows} - {None} == {"serverless: cost needs billing data"}


def test_store_of_schema_version_2_gets_the_new_tables_and_pool_columns(make_sim: MakeSim) -> None:
    sim = make_sim(seed=11, runs=120, jobs=12)
    sim.extract()
    before = query(sim, "SELECT run_id, instance_pool_id FROM tasks ORDER BY run_id")
    assert any(r[1] for r in before)
    con = duckdb.connect(str(sim.db))
    for table in ("instance_pools", "node_types", "cluster_workers", "cluster_event_reads"):
        con.execute(f"DROP TABLE {table}")
    for table in ("tasks", "clusters"):
        for column in ("instance_pool_id", "driver_instance_pool_id"):
            con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    con.execute("ALTER TABLE tasks ADD COLUMN raw JSON")  # dropped in version 3
    con.execute("UPDATE jobruns_meta SET value = '2' WHERE key = 'schema_version'")
    con.close()

    sim.server.reset_stats()
    result = sim.extract()
    assert result.status == "ok" and result.runs_new == 0
    # The pool columns are filled from the stored JSON; pools, node types and events re-read.
    assert query(sim, "SELECT run_id, instance_pool_id FROM tasks ORDER BY run_id") == before
    assert requests(sim, POOLS) > 0 and requests(sim, NODE_TYPES) == 1
    assert requests(sim, EVENTS) == len(autoscaling_instances(sim))
    assert targets.cost_figures(sim.db, sim.workspace).share == 1.0


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "cloud"), [(11, "aws"), (12, "aws"), (12, "azure"), (12, "gcp")])
def test_benchmark_cost_without_billing(make_sim: MakeSim, seed: int, cloud: str) -> None:
    sim = make_sim(seed=seed, runs=1500, jobs=30, cloud=cloud)
    sim.extract()
    figures = targets.cost_figures(sim.db, sim.workspace)
    print(
        f"\nseed {seed} ({cloud}): {figures.runs} terminal classic-compute runs, {figures.share:.1%} with a"
        f" cost estimate, per-job median error vs true list price {figures.median_error:.2%}"
    )
    assert figures.share >= 0.995
    assert figures.median_error <= 0.15
