"""What the simulated workspace's runs really cost: hidden worker trajectories and true rates.

Autoscaling job clusters follow a hidden worker trajectory (served as clusters/events); the
true list-price cost of a run integrates it with the true DBU rates of the cloud's node facts (_catalog.CLOUD).
Computed from the ground-truth rows the store must hold; never reads the served JSON.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from . import _catalog

# List prices per DBU and Photon factors per cloud, as the shipped rate card has them
# (extractor/data/rate_card.csv: JOBS_COMPUTE / ALL_PURPOSE_COMPUTE, photon_jobs,
# photon_all_purpose; a test checks they agree).
PRICE = {
    "aws": {"jobs": 0.15, "all_purpose": 0.55},
    "azure": {"jobs": 0.30, "all_purpose": 0.55},
    "gcp": {"jobs": 0.15, "all_purpose": 0.55},
}
PHOTON = {
    "aws": {"jobs": 2.9, "all_purpose": 2.0},
    "azure": {"jobs": 2.9, "all_purpose": 2.0},
    "gcp": {"jobs": 2.5, "all_purpose": 2.0},
}
UPSIZE_MS = 45_000


def trajectory(
    seed: int, cluster_id: str, start: int, end: int, lo: int, hi: int
) -> list[tuple[int, int]]:
    """(epoch ms, workers) steps of an autoscaling cluster over [start, end]: `lo` at start,
    then one to five resizes within [lo, hi]. Fixed per seed and cluster id."""
    rng = random.Random(f"{seed}:{cluster_id}")
    points = [(start, lo)]
    span = end - start
    if span <= 4 * UPSIZE_MS or hi <= lo:
        return points
    times = sorted(
        {rng.randint(start + 2 * UPSIZE_MS, end - UPSIZE_MS) for _ in range(rng.randint(1, 5))}
    )
    for at in times:
        workers = rng.choice([w for w in range(lo, hi + 1) if w != points[-1][1]])
        if at - points[-1][0] > 2 * UPSIZE_MS:
            points.append((at, workers))
    return points


def events(
    seed: int, cluster_id: str, start: int, end: int, lo: int, hi: int
) -> list[dict[str, Any]]:
    """The cluster's events (ClusterEvent shape), oldest first: creation, RUNNING, each resize
    (RESIZING, then UPSIZE_COMPLETED when it grew) and termination."""
    steps = trajectory(seed, cluster_id, start, end, lo, hi)

    def event(at: int, kind: str, **details: Any) -> dict[str, Any]:
        return {"cluster_id": cluster_id, "timestamp": at, "type": kind, "details": details}

    out = [
        event(start - 240_000, "CREATING", user="JobLauncher"),
        event(start, "RUNNING", current_num_workers=lo),
    ]
    for (_, old), (at, new) in itertools.pairwise(steps):
        if new > old:
            out.append(
                event(at - UPSIZE_MS, "RESIZING", current_num_workers=old, target_num_workers=new)
            )
            out.append(
                event(at, "UPSIZE_COMPLETED", current_num_workers=new, target_num_workers=new)
            )
        else:
            out.append(event(at, "RESIZING", current_num_workers=old, target_num_workers=new))
    out.append(
        event(end + 20_000, "TERMINATING", reason={"code": "JOB_FINISHED", "type": "SUCCESS"})
    )
    return out


def mean_workers(seed: int, cluster_id: str, start: int, end: int, lo: int, hi: int) -> float:
    """The time-weighted worker count of an autoscaling cluster over [start, end]."""
    if end <= start:
        return float(lo)
    steps = trajectory(seed, cluster_id, start, end, lo, hi)
    return _workers_integral(steps, start, end) / (end - start)


def _workers_integral(steps: list[tuple[int, int]], start: int, end: int) -> float:
    """Worker-milliseconds over [start, end]; the first count holds before its time too."""
    total = 0.0
    for i, (at, workers) in enumerate(steps):
        lo = start if i == 0 else max(at, start)
        hi = min(steps[i + 1][0], end) if i + 1 < len(steps) else end
        if hi > lo:
            total += workers * (hi - lo)
    return total


def instance_spans(
    tables: dict[str, dict[Any, dict[str, Any]]],
) -> dict[tuple[int, str], dict[str, Any]]:
    """Cluster instances of the truth tables' runs: (job run, instance key) -> its work items'
    compute spec, first start, last end and busy time (as the extractor's views group them)."""
    out: dict[tuple[int, str], dict[str, Any]] = {}
    # Iterations carry no spec of their own here: they share a cluster with a task of the run.
    items: list[tuple[dict[str, Any], dict[str, Any] | None]] = [
        (t, t) for t in tables["tasks"].values() if t["compute_kind"] is not None
    ]
    items += [(it, None) for it in tables["task_iterations"].values()]
    for item, spec in items:
        cluster_id = item["cluster_id"]
        serverless = spec is not None and spec["compute_kind"] == "serverless"
        key = cluster_id if cluster_id and not serverless else f"item:{item['run_id']}"
        inst = out.setdefault(
            (item["job_run_id"], key),
            {
                "kind": None,
                "cluster_id": cluster_id,
                "spec": {},
                "start": None,
                "end": None,
                "busy": 0,
            },
        )
        if spec is not None and (
            inst["kind"] is None or spec.get("node_type_id") or spec.get("instance_pool_id")
        ):
            inst["kind"], inst["spec"] = spec["compute_kind"], spec
        start, end = item["start_time"], item["end_time"]
        if start is not None:
            inst["start"] = start if inst["start"] is None else min(inst["start"], start)
            if end is not None:
                inst["end"] = end if inst["end"] is None else max(inst["end"], end)
                inst["busy"] += (
                    item["duration_ms"] if item["duration_ms"] is not None else end - start
                )
    return out


def _node(cloud: _catalog.Cloud, node_type: str | None, pool: str | None) -> str | None:
    if node_type:
        return node_type
    return cloud.pools[pool][1] if pool and pool in cloud.pools else None


def true_costs(
    seed: int, tables: dict[str, dict[Any, dict[str, Any]]], now_ms: int, cloud: str = "aws"
) -> dict[int, dict[str, Any]]:
    """Per terminal job run: job_id, the true list-price cost of its classic compute, whether
    it used classic compute, and whether serverless too (which has no list-price truth here)."""
    facts = _catalog.CLOUD[cloud]
    out: dict[int, dict[str, Any]] = {}
    for run in tables["runs"].values():
        if not run["is_active"]:
            out[run["run_id"]] = {
                "job_id": run["job_id"],
                "cost": 0.0,
                "classic": False,
                "serverless": False,
            }
    for (job_run_id, _), inst in instance_spans(tables).items():
        row = out.get(job_run_id)
        if row is None or inst["start"] is None or inst["end"] is None:
            continue
        if inst["kind"] in (None, "serverless"):
            row["serverless"] = True
            continue
        row["classic"] = True
        spec: dict[str, Any] = inst["spec"]
        family = "jobs"
        if inst["kind"] == "existing_cluster":
            family = "all_purpose"
            spec = _catalog.all_purpose_cluster(seed, spec["existing_cluster_id"], now_ms, cloud)
            auto = spec.get("autoscale") or {}
            lo, hi, fixed = (
                auto.get("min_workers"),
                auto.get("max_workers"),
                spec.get("num_workers"),
            )
            worker, driver = (
                spec["node_type_id"],
                spec.get("driver_node_type_id") or spec["node_type_id"],
            )
            uptime = inst["busy"]
        else:
            lo, hi, fixed = (
                spec["autoscale_min_workers"],
                spec["autoscale_max_workers"],
                spec["num_workers"],
            )
            worker = _node(facts, spec["node_type_id"], spec.get("instance_pool_id"))
            driver = _node(
                facts,
                spec["driver_node_type_id"],
                spec.get("driver_instance_pool_id") or spec.get("instance_pool_id"),
            )
            uptime = inst["end"] - inst["start"]
        if uptime <= 0:
            continue
        if fixed is not None:
            worker_ms = float(fixed) * uptime
        elif lo is None or hi is None:
            continue
        elif inst["kind"] == "existing_cluster":
            # No hidden trajectory for a long-lived all-purpose cluster: its mean size is the truth.
            worker_ms = (lo + hi) / 2 * uptime
        else:
            steps = trajectory(seed, inst["cluster_id"], inst["start"], inst["end"], lo, hi)
            worker_ms = _workers_integral(steps, inst["start"], inst["end"])
        rate_w = facts.node_facts[worker][3] if worker else 0.0
        rate_d = facts.node_facts[driver][3] if driver else 0.0
        photon = PHOTON[cloud][family] if spec.get("runtime_engine") == "PHOTON" else 1.0
        dbu_ms = (rate_d * uptime + rate_w * worker_ms) * photon
        row["cost"] += dbu_ms / 3_600_000 * PRICE[cloud][family]
    return out
