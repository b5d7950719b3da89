"""Issue 13's, 14's and 17's targets, measured on an extracted simulated workspace against its
truth.

Cost coverage and error, calibration against billing and the grouping of task errors, shared by
`jobruns bench` (section cost) and the tests that pin them; a fleet's rows per workspace (section
fleet). Reads a store and the simulator's hidden truth; never writes either.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from extractor.analytics.connect import connect
from extractor.dev.simulator import Workspace
from extractor.schema import KEYS

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@dataclass(frozen=True)
class CostFigures:
    """Terminal classic-compute runs, the share with a cost estimate, and the median over jobs
    of |estimate - true list-price cost| / true cost."""

    runs: int
    share: float
    median_error: float


def cost_figures(db: Path, workspace: Workspace) -> CostFigures:
    """Estimates of the store (no billing) against the simulator's true list-price cost."""
    con = connect(db)
    try:
        est = dict(con.execute("SELECT run_id, cost FROM run_cost").fetchall())
    finally:
        con.close()
    truth = workspace.true_costs()
    classic = {k: v for k, v in truth.items() if v["classic"] and not v["serverless"]}
    costed = sum(1 for k in classic if est.get(k) is not None)
    per_job: dict[int, list[float]] = {}
    for run_id, row in classic.items():
        sums = per_job.setdefault(row["job_id"], [0.0, 0.0])
        sums[0] += row["cost"]
        sums[1] += est.get(run_id) or 0.0
    errors = [abs(e - t) / t for t, e in per_job.values() if t > 0]
    return CostFigures(len(classic), costed / len(classic), statistics.median(errors))


def autoscaling_instances(db: Path) -> set[str]:
    """Cluster ids of the autoscaling job-cluster instances of the store's terminal runs."""
    rows = _rows(
        db,
        "SELECT DISTINCT t.cluster_id FROM tasks t JOIN runs r ON r.run_id = t.job_run_id"
        " WHERE t.autoscale_min_workers IS NOT NULL AND t.cluster_id IS NOT NULL"
        " AND t.compute_kind IN ('job_cluster', 'new_cluster') AND NOT r.is_active",
    )
    return {r[0] for r in rows}


def all_purpose_clusters(db: Path) -> set[str]:
    """The all-purpose clusters the store's tasks ran on."""
    rows = _rows(
        db, "SELECT DISTINCT existing_cluster_id FROM tasks WHERE existing_cluster_id IS NOT NULL"
    )
    return {r[0] for r in rows}


# The rows of one workspace ($ws) that its truth lists, as in the tests' comparison.
_OF_WORKSPACE = "workspace_id = $ws AND deleted_at IS NULL"
_OF_ITS_RUNS = (
    f"workspace_id = $ws AND job_run_id IN (SELECT run_id FROM runs WHERE {_OF_WORKSPACE})"
)
_TRUTH_ROWS = {
    "runs": _OF_WORKSPACE,
    "jobs": _OF_WORKSPACE,
    "tasks": _OF_ITS_RUNS,
    "repair_history": _OF_ITS_RUNS,
    "task_iterations": _OF_ITS_RUNS,
}


def keys_vs_truth(
    db: Path, workspace_id: str, truth: Mapping[str, list[dict[str, Any]]]
) -> dict[str, tuple[int, int]]:
    """Per table of the truth (`/_sim/ground_truth`: runs, tasks, task iterations, repair
    history, jobs), the keys it has that the workspace's rows in the store lack and those the
    store has beyond it; {} when they are the same."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        out = {}
        for table, rows in truth.items():
            columns = [k for k in KEYS[table] if k != "workspace_id"]
            expected = {tuple(row[c] for c in columns) for row in rows}
            sql = f"SELECT {', '.join(columns)} FROM {table} WHERE {_TRUTH_ROWS[table]}"
            stored = set(con.execute(sql, {"ws": workspace_id}).fetchall())
            if expected != stored:
                out[table] = (len(expected - stored), len(stored - expected))
        return out
    finally:
        con.close()


def inferred_node_types(db: Path) -> dict[str, str]:
    """Node types the card lacks whose DBU rate the extract inferred: name -> basis."""
    rows = _rows(
        db, "SELECT node_type_id, inferred_from FROM node_types WHERE dbu_per_hour IS NOT NULL"
    )
    return {r[0]: r[1] for r in rows}


def calibration_figures(db: Path, workspace: Workspace, cut_ms: int) -> dict[str, float]:
    """With billing imported up to `cut_ms`: the share of billed runs (ended an hour before the
    cut) whose cost is exactly their billing, and per job the error of the costs of the runs
    started after the cut against what their billing later shows (median, p90), with the
    runs' cost sources and the true cost of those left uncalibrated."""
    truth = workspace.true_run_cost()
    rows = _rows(
        db,
        "SELECT run_id, job_id, epoch_ms(start_time), epoch_ms(end_time), cost, cost_source"
        " FROM int_run_facts WHERE NOT is_active",
    )
    exact = [0, 0]
    per_job: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    sources: dict[str, int] = defaultdict(int)
    uncalibrated_cost = 0.0  # true cost of runs after the cut not calibrated (no compute: 0)
    for run_id, job_id, start, end, cost, source in rows:
        true = truth.get(run_id, {}).get("cost", 0.0)
        if end is not None and end < cut_ms - HOUR_MS and source == "billing":
            exact[0] += 1
            exact[1] += abs((cost or 0.0) - true) < 0.01
        if start >= cut_ms:
            sources[source or "unknown"] += 1
            uncalibrated_cost += true if source != "calibrated" else 0.0
            per_job[job_id][0] += cost or 0.0
            per_job[job_id][1] += true
    errors = sorted(abs(c - t) / t for c, t in per_job.values() if t > 0)
    return {
        "billed_runs": exact[0],
        "billed_exact_share": exact[1] / exact[0],
        "jobs": len(errors),
        "median_error": statistics.median(errors),
        "p90_error": errors[min(len(errors) - 1, int(0.9 * len(errors)))],
        **{f"last10_{k}": v for k, v in sorted(sources.items())},
        "last10_uncalibrated_true_cost": round(uncalibrated_cost, 6),
    }


def b_cubed(truth: Mapping[Any, str], found: Mapping[Any, str]) -> tuple[float, float]:
    """B-cubed precision and recall of a clustering `found` against the classes `truth`."""
    if not truth:
        return 1.0, 1.0
    by_found: dict[str, set[Any]] = defaultdict(set)
    by_true: dict[str, set[Any]] = defaultdict(set)
    for item in truth:
        by_found[found[item]].add(item)
        by_true[truth[item]].add(item)
    precision = recall = 0.0
    for item in truth:
        same = by_found[found[item]] & by_true[truth[item]]
        precision += len(same) / len(by_found[found[item]])
        recall += len(same) / len(by_true[truth[item]])
    return precision / len(truth), recall / len(truth)


@dataclass(frozen=True)
class FailureFigures:
    """Failed task runs and iterations (the simulator's truth), those whose error text the
    store holds, task runs with an error row at all, and the B-cubed precision and recall of
    the stored signatures against the true families."""

    failed: int
    with_text: int
    stored: int
    precision: float
    recall: float

    @property
    def coverage(self) -> float:
        return self.with_text / self.failed if self.failed else 1.0


def failure_figures(db: Path, workspace: Workspace) -> FailureFigures:
    truth = workspace.failure_families()
    stored = {
        r[0]: (r[1], r[2]) for r in _rows(db, "SELECT run_id, error, signature FROM task_errors")
    }
    with_text = [r for r in truth if r in stored and (stored[r][0] or "").strip()]
    precision, recall = b_cubed(
        {r: truth[r] for r in with_text}, {r: stored[r][1] for r in with_text}
    )
    return FailureFigures(len(truth), len(with_text), len(stored), precision, recall)


__all__ = [
    "CostFigures",
    "FailureFigures",
    "all_purpose_clusters",
    "autoscaling_instances",
    "b_cubed",
    "calibration_figures",
    "cost_figures",
    "failure_figures",
    "inferred_node_types",
]
