"""Ground truth: the store rows a correct extraction of the simulated workspace must hold.

Computed from the internal records and their views at the clock, never by parsing the JSON the
server sends, and following the flatten rules of the design contract. Never mutates records.
"""

from __future__ import annotations

from typing import Any

from ._model import FAILED_RESULTS, SKIPPED_RESULTS, SUCCEEDED, JobDef, RunRec, TaskDef, TaskRun
from ._render import (
    Renderer,
    View,
    queue_duration,
    run_duration,
    run_view,
    segment_task_ids,
    segment_view,
    task_view,
    visible_segments,
    visible_tasks,
)

Tables = dict[str, dict[Any, dict[str, Any]]]


def _ms(value: int) -> int | None:
    return value or None


def _states(v: View) -> dict[str, Any]:
    return {
        "life_cycle_state": v.life_cycle,
        "result_state": v.result,
        "status_state": v.status,
        "termination_code": None if v.active else v.code,
        "termination_type": None if v.active else v.type,
        "state_message": v.message or v.state_message or None,
        "is_active": v.active,
    }


def _phases(v: View) -> dict[str, Any]:
    return {
        "setup_duration_ms": v.setup,
        "execution_duration_ms": v.execution,
        "cleanup_duration_ms": v.cleanup,
        "duration_ms": None if v.active else v.setup + v.execution + v.cleanup,
    }


def _compute(run: RunRec, d: TaskDef) -> dict[str, Any]:
    kind: str | None = {
        "job_cluster": "job_cluster",
        "new_cluster": "new_cluster",
        "existing_cluster": "existing_cluster",
        "serverless": "serverless",
        "none": None,
    }[d.compute]
    cluster: dict[str, Any] = {}
    if d.compute == "job_cluster":
        for c in run.job_clusters or []:
            if c["job_cluster_key"] == d.job_cluster_key:
                cluster = c["new_cluster"]
    elif d.new_cluster is not None:
        cluster = d.new_cluster
    auto = cluster.get("autoscale") or {}
    workers = cluster.get("num_workers", auto.get("max_workers"))
    return {
        "compute_kind": kind,
        "job_cluster_key": d.job_cluster_key,
        "existing_cluster_id": d.existing_cluster_id,
        "environment_key": d.environment_key,
        "node_type_id": cluster.get("node_type_id"),
        "driver_node_type_id": cluster.get("driver_node_type_id"),
        "num_workers": cluster.get("num_workers"),
        "autoscale_min_workers": auto.get("min_workers"),
        "autoscale_max_workers": auto.get("max_workers"),
        "workers": workers,
        "spark_version": cluster.get("spark_version"),
        "runtime_engine": cluster.get("runtime_engine"),
        "instance_pool_id": cluster.get("instance_pool_id"),
        "driver_instance_pool_id": cluster.get("driver_instance_pool_id"),
        "task_type": "for_each_task" if d.for_each is not None else d.type_key,
    }


def _task_row(
    wid: str, run: RunRec, t: TaskRun, now: int, queued: bool, repair_id: int | None
) -> dict[str, Any]:
    d = t.tdef
    v = task_view(t, now, queued)
    its = None if t.iterations is None else [i for i in t.iterations if i.appear <= now]
    return {
        "workspace_id": wid,
        "run_id": t.run_id,
        "job_run_id": run.run_id,
        "job_id": run.job.job_id,
        "task_key": d.task_key,
        "attempt_number": t.attempt,
        "repair_id": repair_id,
        "start_time": _ms(v.start),
        "end_time": _ms(v.end),
        "queue_duration_ms": None if v.queued else 0,
        **_phases(v),
        "run_duration_ms": None,
        **_states(v),
        "cluster_id": t.cluster_id if v.shows_cluster else None,
        **_compute(run, d),
        "depends_on": sorted(k for k, _ in d.depends_on),
        "run_if": d.run_if,
        "max_retries": d.max_retries or None,
        "timeout_seconds": d.timeout_seconds or None,
        "iteration_count": len(its or []) if d.for_each is not None else None,
    }


def _iteration_row(wid: str, run: RunRec, parent: TaskRun, it: TaskRun, now: int) -> dict[str, Any]:
    v = task_view(it, now, False)
    phases = _phases(v)
    return {
        "workspace_id": wid,
        "run_id": it.run_id,
        "parent_task_run_id": parent.run_id,
        "job_run_id": run.run_id,
        "job_id": run.job.job_id,
        "task_key": it.tdef.task_key,
        "attempt_number": it.attempt,
        "start_time": _ms(v.start),
        "end_time": _ms(v.end),
        "queue_duration_ms": 0,
        **phases,
        **_states(v),
        "cluster_id": it.cluster_id if v.shows_cluster else None,
    }


def truth_tables(
    runs: list[RunRec], jobs: list[JobDef], now: int, wid: str, renderer: Renderer, history: bool
) -> Tables:
    out: Tables = {"runs": {}, "tasks": {}, "repair_history": {}, "task_iterations": {}, "jobs": {}}
    for run in runs:
        v = run_view(run, now)
        tasks = visible_tasks(run, now)
        nseg = visible_segments(run, now)
        rd = run_duration(run, now, v)
        phases = _phases(v)
        if not v.active and rd is not None:
            phases["duration_ms"] = rd
        job = run.job
        out["runs"][run.run_id] = {
            "workspace_id": wid,
            "run_id": run.run_id,
            "job_id": job.job_id,
            "run_name": job.name,
            "run_type": job.run_type,
            "trigger": run.trigger,
            "creator_user_name": job.creator,
            "start_time": _ms(run.start),
            "end_time": _ms(v.end),
            **_states(v),
            "queue_duration_ms": queue_duration(run, v),
            **phases,
            "run_duration_ms": rd,
            "attempt_number": run.attempt,
            "original_attempt_run_id": run.original_attempt_run_id,
            "task_count": len(tasks),
            "repair_count": nseg - 1 if history else 0,
            "run_page_url": renderer.url(job.job_id, run.run_id),
        }
        repair_ids = [s.repair_id for s in run.segments]
        for t in tasks:
            rid = repair_ids[t.segment] if history else None
            out["tasks"][t.run_id] = _task_row(wid, run, t, now, v.queued, rid)
            for it in t.iterations or ():
                if it.appear <= now:
                    out["task_iterations"][it.run_id] = _iteration_row(wid, run, t, it, now)
        if not history:
            continue
        for i in range(nseg):
            sv = segment_view(run, i, now)
            states = _states(sv)
            out["repair_history"][(run.run_id, repair_ids[i])] = {
                "workspace_id": wid,
                "job_run_id": run.run_id,
                "repair_id": repair_ids[i],
                "type": "ORIGINAL" if i == 0 else "REPAIR",
                "start_time": _ms(sv.start),
                "end_time": _ms(sv.end),
                **{
                    k: states[k]
                    for k in (
                        "life_cycle_state",
                        "result_state",
                        "status_state",
                        "termination_code",
                        "termination_type",
                    )
                },
                "task_run_ids": sorted(segment_task_ids(run, i, now)),
            }
    for job in jobs:
        out["jobs"][job.job_id] = job_row(wid, job)
    return out


def job_row(wid: str, job: JobDef) -> dict[str, Any]:
    kind = {"PERIODIC": "schedule", "FILE_ARRIVAL": "file_arrival", "CONTINUOUS": "continuous"}
    periodic = job.trigger == "PERIODIC" and job.cron is not None and not job.via_run_job_task
    return {
        "workspace_id": wid,
        "job_id": job.job_id,
        "name": job.name,
        "creator_user_name": job.creator,
        "run_as_user_name": job.run_as,
        "created_time": job.created_time,
        "tags": dict(job.tags),
        "schedule_cron": job.cron if periodic else None,
        "schedule_timezone": "UTC" if periodic else None,
        "schedule_pause_status": "UNPAUSED" if periodic else None,
        "trigger_kind": kind.get(job.trigger) if job.trigger != "PERIODIC" or periodic else None,
        "continuous": job.trigger == "CONTINUOUS",
        "max_concurrent_runs": job.max_concurrent_runs,
        "timeout_seconds": job.timeout_seconds or None,
        "format": "SINGLE_TASK" if job.shape == "legacy" else "MULTI_TASK",
    }


def job_aggregates(runs: list[RunRec], now: int) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for run in runs:
        v = run_view(run, now)
        agg = out.setdefault(
            run.job.job_id,
            dict.fromkeys(
                ("runs", "terminal_runs", "succeeded", "failed", "canceled", "skipped", "repairs"),
                0,
            ),
        )
        agg["runs"] += 1
        agg["repairs"] += visible_segments(run, now) - 1
        if v.active:
            continue
        agg["terminal_runs"] += 1
        if v.result in SUCCEEDED:
            agg["succeeded"] += 1
        elif v.result in FAILED_RESULTS or v.life_cycle == "INTERNAL_ERROR":
            agg["failed"] += 1
        elif v.result == "CANCELED":
            agg["canceled"] += 1
        elif v.life_cycle == "SKIPPED" or v.result in SKIPPED_RESULTS:
            agg["skipped"] += 1
    return out
