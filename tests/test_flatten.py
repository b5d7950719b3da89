"""Flattening API objects into store rows: odd but valid runs must never break a load."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from extractor.flatten import (
    KNOWN_RUN_FIELDS,
    KNOWN_TASK_FIELDS,
    RunBatch,
    RunBundle,
    arrow_schema,
    flatten_jobs,
    flatten_runs,
    prepare_runs,
)
from extractor.schema import create_tables
from extractor.store import Store, insert_arrow
from tests.conftest import sample_path

NOW = datetime(2025, 6, 10, 14, 5, tzinfo=UTC)


def sample(name: str) -> dict[str, Any]:
    return json.loads(sample_path(name).read_text())


def load(bundles: list[RunBundle]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    create_tables(con)
    flat = flatten_runs(bundles, "4187230015569021", NOW)
    for name, table in flat.tables().items():
        insert_arrow(con, name, table)
    return con


def test_repaired_run_keeps_every_attempt_and_partitions_tasks_by_repair() -> None:
    con = load([RunBundle(sample("run_multitask_repaired.json"))])
    rows = con.execute(
        "SELECT task_key, attempt_number, repair_id FROM tasks ORDER BY run_id"
    ).fetchall()
    assert len(rows) == 7
    assert [r[1] for r in rows if r[0] == "transform_sales"] == [0, 1, 2]
    assert {r[2] for r in rows} == {0, 309445871200117}
    run = con.execute(
        "SELECT result_state, repair_count, task_count, duration_ms, epoch_ms(end_time) FROM runs"
    ).fetchone()
    assert run == ("SUCCESS", 1, 7, 4568024, 1749462019590)
    history = con.execute(
        "SELECT repair_id, type, len(task_run_ids) FROM repair_history ORDER BY repair_id"
    ).fetchall()
    assert history == [(0, "ORIGINAL", 5), (309445871200117, "REPAIR", 2)]


def test_shared_job_cluster_resolves_node_types_from_run_job_clusters() -> None:
    con = load([RunBundle(sample("run_multitask_repaired.json"))])
    row = con.execute(
        "SELECT compute_kind, node_type_id, driver_node_type_id, workers, runtime_engine"
        " FROM tasks WHERE task_key = 'ingest_orders'"
    ).fetchone()
    assert row == ("job_cluster", "i3.xlarge", "i3.xlarge", 4, "STANDARD")


def test_legacy_single_task_run_uses_run_level_durations_and_cluster_spec() -> None:
    con = load([RunBundle(sample("run_single_task_submit.json"))])
    run = con.execute("SELECT duration_ms, run_duration_ms FROM runs").fetchone()
    assert run == (241000 + 708000 + 6000, None)
    task = con.execute(
        "SELECT compute_kind, node_type_id, workers, cluster_id FROM tasks"
    ).fetchone()
    assert task == ("new_cluster", "m5d.2xlarge", 3, "0610-111508-x1y2z3w4")


def test_active_run_has_null_end_and_duration() -> None:
    con = load([RunBundle(sample("run_active.json"))])
    assert con.execute("SELECT end_time, duration_ms, is_active FROM runs").fetchone() == (
        None,
        None,
        True,
    )


def test_serverless_tasks_have_no_cluster() -> None:
    con = load([RunBundle(sample("run_serverless.json"))])
    kinds = con.execute("SELECT DISTINCT compute_kind, cluster_id FROM tasks").fetchall()
    assert kinds == [("serverless", None)]


def test_for_each_iterations_are_rows_of_their_own() -> None:
    foreach = sample("run_foreach_task.json")
    parent_task = foreach["tasks"][0]
    run = {"run_id": foreach["job_run_id"], "job_id": foreach["job_id"], "tasks": [parent_task]}
    con = load([RunBundle(run, {parent_task["run_id"]: foreach["iterations"]})])
    assert con.execute("SELECT count(*) FROM task_iterations").fetchone() == (6,)
    assert con.execute("SELECT iteration_count, compute_kind FROM tasks").fetchone() == (6, None)
    assert con.execute(
        "SELECT DISTINCT parent_task_run_id, job_run_id FROM task_iterations"
    ).fetchone() == (parent_task["run_id"], foreach["job_run_id"])


def test_duplicate_run_ids_in_a_batch_keep_the_last() -> None:
    run = sample("run_active.json")
    done = json.loads(json.dumps(run))
    done["end_time"] = run["start_time"] + 1000
    done["state"] = {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"}
    done["status"] = {"state": "TERMINATED"}
    flat = flatten_runs([RunBundle(run), RunBundle(done)], "1", NOW)
    assert flat.runs.num_rows == 1
    assert flat.runs.column("is_active").to_pylist() == [False]


def test_jobs_flatten_tags_and_schedule() -> None:
    job = sample("job_get.json")
    table = flatten_jobs([job], "1", NOW)
    con = duckdb.connect()
    create_tables(con)
    insert_arrow(con, "jobs", table)
    row = con.execute(
        "SELECT name, schedule_cron, trigger_kind, cardinality(tags) FROM jobs"
    ).fetchone()
    assert row is not None
    assert row[0] == job["settings"]["name"]
    assert row[1] == job["settings"]["schedule"]["quartz_cron_expression"]
    assert row[2] == "schedule"
    assert row[3] == len(job["settings"].get("tags", {}))


# -- property tests: odd but valid runs -------------------------------------------------------

times = st.one_of(st.just(0), st.none(), st.integers(1, 4_000_000_000_000))
enum_text = st.one_of(
    st.none(), st.sampled_from(["TERMINATED", "RUNNING", "SKIPPED"]), st.text(max_size=12)
)
states = st.fixed_dictionaries(
    {},
    optional={
        "life_cycle_state": enum_text,
        "result_state": enum_text,
        "state_message": st.text(max_size=20),
    },
)
statuses = st.fixed_dictionaries(
    {},
    optional={
        "state": enum_text,
        "termination_details": st.fixed_dictionaries(
            {}, optional={"code": st.one_of(enum_text, st.integers()), "type": enum_text}
        ),
    },
)
# Fields the API reference does not name: a known field keeps its type (a run's tasks a list).
extra_fields = st.dictionaries(
    st.text(min_size=1, max_size=10).filter(
        lambda k: not k.endswith("_task") and k not in KNOWN_RUN_FIELDS | KNOWN_TASK_FIELDS
    ),
    st.one_of(st.integers(), st.text(max_size=5), st.booleans()),
    max_size=3,
)


@st.composite
def tasks(draw: st.DrawFn, run_id: int) -> dict[str, Any]:
    task: dict[str, Any] = {
        "run_id": draw(st.integers(1, 2**62)),
        "task_key": draw(st.text(max_size=8)),
    }
    optional = {
        "start_time": times,
        "end_time": times,
        "setup_duration": st.integers(0, 10**7),
        "execution_duration": st.integers(0, 10**7),
        "attempt_number": st.integers(0, 5),
        "state": states,
        "status": statuses,
        "job_cluster_key": st.text(max_size=5),
        "existing_cluster_id": st.text(max_size=5),
        "new_cluster": st.fixed_dictionaries(
            {}, optional={"num_workers": st.integers(0, 50), "node_type_id": st.text(max_size=8)}
        ),
        "depends_on": st.lists(
            st.fixed_dictionaries({"task_key": st.text(max_size=5)}), max_size=3
        ),
        "notebook_task": st.just({"notebook_path": "/x"}),
        "brand_new_task": st.just({"x": 1}),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            task[key] = draw(strategy)
    task.update(draw(extra_fields))
    return task


@st.composite
def runs(draw: st.DrawFn) -> dict[str, Any]:
    run_id = draw(st.integers(1, 2**62))
    run: dict[str, Any] = {"run_id": run_id}
    optional = {
        "job_id": st.integers(1, 2**62),
        "start_time": times,
        "end_time": times,
        "run_duration": st.integers(0, 10**9),
        "state": states,
        "status": statuses,
        "trigger": enum_text,
        "run_type": enum_text,
        "tasks": st.lists(tasks(run_id), max_size=4),
        "repair_history": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["ORIGINAL", "REPAIR", "SOMETHING_NEW"])},
                optional={
                    "id": st.integers(1, 2**62),
                    "task_run_ids": st.lists(st.integers(1, 2**62), max_size=3),
                },
            ),
            max_size=3,
        ),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            run[key] = draw(strategy)
    run.update(draw(extra_fields))
    return run


# One in-memory store for every example (creating the tables costs more than a load).
SHARED = duckdb.connect()
create_tables(SHARED)


@settings(max_examples=25, deadline=None)
@given(st.lists(runs(), max_size=5))
def test_any_valid_run_flattens_to_the_store_schema_and_loads(batch: list[dict[str, Any]]) -> None:
    flat = flatten_runs([RunBundle(r) for r in batch], "ws", NOW)
    for name, table in flat.tables().items():
        assert table.schema == arrow_schema(name)
    con = SHARED.cursor()
    for name in flat.tables():
        con.execute(f"DELETE FROM {name}")
    for name, table in flat.tables().items():
        insert_arrow(con, name, table)
    distinct = {r["run_id"] for r in batch}
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (len(distinct),)
    # Zero times mean "not yet" and are never stored as the epoch.
    assert con.execute(
        "SELECT count(*) FROM runs WHERE epoch_ms(start_time) = 0 OR epoch_ms(end_time) = 0"
    ).fetchone() == (0,)
    # Raw JSON round-trips the run exactly, unknown fields included.
    for raw in con.execute("SELECT raw FROM runs").fetchall():
        parsed = json.loads(raw[0])
        assert parsed["run_id"] in distinct


# 39 lists in all: 20 examples meet both branches.
@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.sampled_from(["BRAND_NEW_STATE", "TERMINATED", "QUEUED"]), min_size=1, max_size=3)
)
def test_unknown_enum_values_are_stored_and_reported(values: list[str]) -> None:
    batch = [
        RunBundle({"run_id": i + 1, "state": {"life_cycle_state": v}, "status": {"state": v}})
        for i, v in enumerate(values)
    ]
    flat = flatten_runs(batch, "ws", NOW)
    assert flat.runs.column("life_cycle_state").to_pylist() == values
    expected_unknown = {
        ("life_cycle_state", "BRAND_NEW_STATE"),
        ("status_state", "BRAND_NEW_STATE"),
    }
    assert flat.unknown == (expected_unknown if "BRAND_NEW_STATE" in values else set())


@settings(max_examples=8, deadline=None)
@given(st.lists(runs(), max_size=6), st.integers(0, 6), st.integers(1, 400))
def test_batches_joined_then_cut_by_size_store_what_one_batch_stores(
    batch: list[dict[str, Any]], cut: int, max_bytes: int
) -> None:
    # The writer joins the batches waiting (a run in both: the last) and stores them in parts of
    # at most max_bytes of JSON text: the rows must be those of the runs flattened at once.
    # A task run id belongs to one job run (the store keeps the last job run naming it).
    owners: dict[int, set[int]] = {}
    for r in batch:
        for t in r.get("tasks") or []:
            owners.setdefault(t["run_id"], set()).add(r["run_id"])
    assume(all(len(o) == 1 for o in owners.values()))
    bundles = [RunBundle(r) for r in batch]
    joined = RunBatch.concat([prepare_runs(bundles[:cut], NOW), prepare_runs(bundles[cut:], NOW)])
    con = SHARED.cursor()
    expected = flatten_runs(bundles, "ws", NOW)
    for name in expected.tables():
        con.execute(f"DELETE FROM {name}")
    for part in joined.parts(max_bytes):
        Store(":memory:").upsert_runs(con, "ws", part)
    for name, table in expected.tables().items():
        con.register("want", table)
        cols = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in table.column_names)
        for a, b in (("want", name), (name, "want")):
            missing = con.execute(f"SELECT {cols} FROM {a} EXCEPT ALL SELECT {cols} FROM {b}")
            assert missing.fetchall() == [], (name, a)
        con.unregister("want")
