"""What the API shows of a planned run at a given clock, as views and as JSON dicts.

Views (state, times, durations at `now`) feed both the JSON responses and the ground truth, so
the two cannot disagree. Never mutates the records it reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._model import (
    STATUS_OF_LIFE_CYCLE,
    TERMINAL_LIFE_CYCLES,
    JobDef,
    Outcome,
    RunRec,
    TaskDef,
    TaskRun,
)
from ._planner import is_failure, latest_iterations


@dataclass(slots=True)
class View:
    """A run, task or repair item as seen at a clock."""

    start: int
    end: int
    setup: int
    execution: int
    cleanup: int
    life_cycle: str
    result: str | None
    code: str | None
    type: str | None
    message: str
    state_message: str
    queued: bool = False
    shows_cluster: bool = False

    @property
    def status(self) -> str:
        return STATUS_OF_LIFE_CYCLE[self.life_cycle]

    @property
    def active(self) -> bool:
        return self.life_cycle not in TERMINAL_LIFE_CYCLES


QUEUE_MESSAGE = "Queued due to reaching maximum concurrent runs of 1."


def terminal_view(start: int, end: int, o: Outcome, phases: tuple[int, int, int]) -> View:
    state_message = o.message
    if (
        o.result == "FAILED"
        and o.code == "RUN_EXECUTION_ERROR"
        and not o.message.startswith("Task ")
    ):
        state_message = "Workload failed, see run output for details"
    return View(
        start, end, *phases, o.life_cycle, o.result, o.code, o.type, o.message, state_message
    )


def task_view(t: TaskRun, now: int, run_queued: bool) -> View:
    if now >= t.end:
        v = terminal_view(t.start, t.end, t.outcome, (t.setup, t.execution, t.cleanup))
        v.shows_cluster = t.cluster_id is not None
        return v
    if now < t.start:
        if run_queued:
            life = "QUEUED"
        elif t.tdef.depends_on:
            life = "BLOCKED"
        else:
            life = "PENDING"
        return View(0, 0, 0, 0, 0, life, None, None, None, "", "", queued=run_queued)
    setup = t.setup if now - t.start >= t.setup else 0
    v = View(t.start, 0, setup, 0, 0, "RUNNING", None, None, None, "", "In run")
    v.shows_cluster = t.cluster_id is not None
    return v


def visible_tasks(run: RunRec, now: int) -> list[TaskRun]:
    return [t for t in run.tasks if t.appear <= now]


def visible_segments(run: RunRec, now: int) -> int:
    return sum(1 for s in run.segments if s.start <= now)


def run_view(run: RunRec, now: int) -> View:
    seg = run.segments[visible_segments(run, now) - 1]
    if run.legacy:
        phases = (0, 0, 0)
        if run.tasks:
            tv = task_view(run.tasks[0], now, False)
            phases = (tv.setup, tv.execution, tv.cleanup)
        if now >= seg.end:
            return terminal_view(run.start, seg.end, seg.outcome, phases)
        return View(run.start, 0, *phases, "RUNNING", None, None, None, "", "")
    if now >= seg.end:
        return terminal_view(run.start, seg.end, seg.outcome, (0, 0, 0))
    if seg.repair_id == 0 and now < run.start + run.queue_ms:
        return View(
            run.start, 0, 0, 0, 0, "QUEUED", None, None, None, "", QUEUE_MESSAGE, queued=True
        )
    return View(run.start, 0, 0, 0, 0, "RUNNING", None, None, None, "", "")


def run_duration(run: RunRec, now: int, view: View) -> int | None:
    """run_duration as the API reports it: absent while active and on legacy runs."""
    if view.active or run.legacy:
        return None
    if run.skipped:
        return 0
    n = visible_segments(run, now)
    return sum(s.end - s.start for s in run.segments[:n])


def queue_duration(run: RunRec, view: View) -> int | None:
    if view.queued or (run.legacy and run.job.run_type != "SUBMIT_RUN"):
        return None
    return run.queue_ms


def segment_view(run: RunRec, index: int, now: int) -> View:
    """A repair-history item (0 = ORIGINAL) as seen at now."""
    seg = run.segments[index]
    if now >= seg.end:
        return terminal_view(seg.start, seg.end, seg.outcome, (0, 0, 0))
    if index == 0 and now < run.start + run.queue_ms:
        return View(
            seg.start, 0, 0, 0, 0, "QUEUED", None, None, None, "", QUEUE_MESSAGE, queued=True
        )
    return View(seg.start, 0, 0, 0, 0, "RUNNING", None, None, None, "", "")


def segment_task_ids(run: RunRec, index: int, now: int) -> list[int]:
    """Task run ids executed in a history item, among the tasks visible at now."""
    return [t.run_id for t in run.tasks if t.segment == index and t.appear <= now]


# ---------------------------------------------------------------------------------------- JSON
def state_json(v: View) -> tuple[dict[str, Any], dict[str, Any]]:
    state: dict[str, Any] = {"life_cycle_state": v.life_cycle}
    if v.result is not None:
        state["result_state"] = v.result
    if v.queued and v.state_message:
        state["queue_reason"] = v.state_message
    state["state_message"] = v.state_message
    state["user_cancelled_or_timedout"] = v.result in ("CANCELED", "TIMEDOUT")
    status: dict[str, Any] = {"state": v.status}
    if not v.active and v.code is not None:
        status["termination_details"] = {"code": v.code, "type": v.type, "message": v.message}
    if v.life_cycle == "QUEUED" and v.state_message:
        status["queue_details"] = {
            "code": "MAX_CONCURRENT_RUNS_REACHED",
            "message": v.state_message,
        }
    return state, status


def task_def_json(d: TaskDef, *, in_run: bool = False) -> dict[str, Any]:
    """A task as in job settings (and the definition part of a task run)."""
    out: dict[str, Any] = {"task_key": d.task_key}
    if d.depends_on:
        out["depends_on"] = [
            {"task_key": k} if want is None else {"task_key": k, "outcome": want}
            for k, want in d.depends_on
        ]
    if d.for_each is not None:
        fe = d.for_each
        out["for_each_task"] = {
            "inputs": fe.inputs,
            "concurrency": fe.concurrency,
            "task": task_def_json(fe.task),
        }
    else:
        out[d.type_key] = dict(d.payload)
    if d.job_cluster_key is not None:
        out["job_cluster_key"] = d.job_cluster_key
    if d.new_cluster is not None:
        out["new_cluster"] = d.new_cluster
    if d.existing_cluster_id is not None:
        out["existing_cluster_id"] = d.existing_cluster_id
    if d.environment_key is not None:
        out["environment_key"] = d.environment_key
    if d.disabled:
        out["disabled"] = True
    if not in_run:
        out["run_if"] = d.run_if
        if d.max_retries:
            out["max_retries"] = d.max_retries
            out["min_retry_interval_millis"] = d.min_retry_interval_millis
            out["retry_on_timeout"] = d.retry_on_timeout
        out["timeout_seconds"] = d.timeout_seconds
    return out


class Renderer:
    """Renders runs and jobs of one workspace (host and id fixed) at a clock."""

    def __init__(self, host: str, workspace_id: int) -> None:
        self.host = host
        self.workspace_id = workspace_id

    def url(self, job_id: int, run_id: int) -> str:
        return f"{self.host}/?o={self.workspace_id}#job/{job_id}/run/{run_id}"

    def task(self, run: RunRec, t: TaskRun, now: int, queued: bool) -> dict[str, Any]:
        d = t.tdef
        v = task_view(t, now, queued)
        out = task_def_json(d, in_run=True)
        out = {
            "task_key": d.task_key,
            "run_id": t.run_id,
            **{k: x for k, x in out.items() if k != "task_key"},
        }
        if d.for_each is not None:
            out["for_each_task"]["stats"] = self.for_each_stats(t, now)
        if t.condition_outcome is not None and not v.active:
            out["condition_task"] = {**out["condition_task"], "outcome": t.condition_outcome}
        if v.shows_cluster:
            out["cluster_instance"] = {
                "cluster_id": t.cluster_id,
                "spark_context_id": t.spark_context_id,
            }
        out["run_if"] = d.run_if
        if not v.queued:
            out["queue_duration"] = 0
        if d.max_retries:
            out["max_retries"] = d.max_retries
            out["min_retry_interval_millis"] = d.min_retry_interval_millis
            out["retry_on_timeout"] = d.retry_on_timeout
        if d.timeout_seconds:
            out["timeout_seconds"] = d.timeout_seconds
        if d.compute == "serverless" and run.job.performance_target:
            out["effective_performance_target"] = run.job.performance_target
        out["attempt_number"] = t.attempt
        out["start_time"] = v.start
        out["setup_duration"] = v.setup
        out["execution_duration"] = v.execution
        out["cleanup_duration"] = v.cleanup
        out["end_time"] = v.end
        out["state"], out["status"] = state_json(v)
        out["run_page_url"] = self.url(run.job.job_id, t.run_id)
        return out

    def for_each_stats(self, t: TaskRun, now: int) -> dict[str, Any]:
        its = [i for i in latest_iterations([i for i in t.iterations or [] if i.appear <= now])]
        done = [i for i in its if now >= i.end]
        failed = [i for i in done if is_failure(i.outcome)]
        stats: dict[str, Any] = {
            "task_run_stats": {
                "total_iterations": t.iteration_total,
                "scheduled_iterations": len(its),
                "active_iterations": len(its) - len(done),
                "completed_iterations": len(done),
                "succeeded_iterations": sum(1 for i in done if i.outcome.result == "SUCCESS"),
                "failed_iterations": len(failed),
            }
        }
        if failed:
            counts: dict[tuple[str, str], int] = {}
            for i in failed:
                key = (i.outcome.message, i.outcome.code)
                counts[key] = counts.get(key, 0) + 1
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
            stats["error_message_stats"] = [
                {"count": n, "error_message": msg, "termination_category": code}
                for (msg, code), n in top
            ]
        return stats

    def run_scalars(self, run: RunRec, now: int) -> tuple[dict[str, Any], View]:
        job = run.job
        v = run_view(run, now)
        out: dict[str, Any] = {
            "job_id": job.job_id,
            "run_id": run.run_id,
            "number_in_job": run.run_id,
            "creator_user_name": job.creator,
            "original_attempt_run_id": run.original_attempt_run_id,
            "attempt_number": run.attempt,
            "run_name": job.name,
            "run_type": job.run_type,
            "trigger": run.trigger,
        }
        if run.trigger_run_id is not None:
            out["trigger_info"] = {"run_id": run.trigger_run_id}
        if run.trigger == "PERIODIC" and job.cron:
            out["schedule"] = {
                "quartz_cron_expression": job.cron,
                "timezone_id": "UTC",
                "pause_status": "UNPAUSED",
            }
        out["start_time"] = run.start
        out["end_time"] = v.end
        out["setup_duration"] = v.setup
        out["execution_duration"] = v.execution
        out["cleanup_duration"] = v.cleanup
        qd = queue_duration(run, v)
        if qd is not None:
            out["queue_duration"] = qd
        rd = run_duration(run, now, v)
        if rd is not None:
            out["run_duration"] = rd
        out["state"], out["status"] = state_json(v)
        if job.performance_target:
            out["effective_performance_target"] = job.performance_target
        if run.legacy:
            d = job.tasks[0]
            if d.new_cluster is not None:
                out["cluster_spec"] = {"new_cluster": d.new_cluster}
            elif d.existing_cluster_id is not None:
                out["cluster_spec"] = {"existing_cluster_id": d.existing_cluster_id}
            if run.tasks and task_view(run.tasks[0], now, False).shows_cluster:
                out["cluster_instance"] = {
                    "cluster_id": run.cluster_id,
                    "spark_context_id": run.spark_context_id,
                }
        if run.params:
            out["overriding_parameters"] = {"notebook_params": dict(run.params)}
        out["run_page_url"] = self.url(job.job_id, run.run_id)
        return out, v

    def job_parameters(self, run: RunRec) -> list[dict[str, Any]]:
        return [{**p, "value": p["default"]} for p in run.job.parameters]

    def history_item(self, run: RunRec, index: int, now: int) -> dict[str, Any]:
        seg = run.segments[index]
        item: dict[str, Any] = {"type": "ORIGINAL" if index == 0 else "REPAIR"}
        if index:
            item["id"] = seg.repair_id
        v = segment_view(run, index, now)
        item["start_time"] = seg.start
        item["end_time"] = v.end
        item["state"], item["status"] = state_json(v)
        item["task_run_ids"] = segment_task_ids(run, index, now)
        return item

    def job(
        self, job: JobDef, *, expand: bool, full: bool, page: int = 0
    ) -> tuple[dict[str, Any], bool]:
        """A job as jobs/list (expand) or jobs/get (full) shows it; returns (json, more pages)."""
        s: dict[str, Any] = {"name": job.name}
        if job.tags:
            s["tags"] = dict(job.tags)
        if job.timeout_seconds:
            s["timeout_seconds"] = job.timeout_seconds
        s["max_concurrent_runs"] = job.max_concurrent_runs
        if job.trigger == "PERIODIC" and job.cron and not job.via_run_job_task:
            s["schedule"] = {
                "quartz_cron_expression": job.cron,
                "timezone_id": "UTC",
                "pause_status": "UNPAUSED",
            }
        elif job.trigger == "FILE_ARRIVAL":
            s["trigger"] = {
                "file_arrival": {
                    "url": "s3://acme-landing/events/",
                    "min_time_between_triggers_seconds": 300,
                },
                "pause_status": "UNPAUSED",
            }
        elif job.trigger == "CONTINUOUS":
            s["continuous"] = {"pause_status": "UNPAUSED", "task_retry_mode": "ON_FAILURE"}
        s["queue"] = {"enabled": job.queue}
        s["format"] = "SINGLE_TASK" if job.shape == "legacy" else "MULTI_TASK"
        if job.performance_target:
            s["performance_target"] = job.performance_target
        if full:
            s["run_as"] = (
                {"user_name": job.run_as}
                if "@" in job.run_as
                else {"service_principal_name": job.run_as}
            )
        more = False
        if expand or full:
            lo, hi = page * 100, page * 100 + 100
            for name, arr in (
                ("parameters", job.parameters),
                ("environments", job.environments),
                ("job_clusters", job.job_clusters),
                ("tasks", [task_def_json(d) for d in job.tasks[lo:hi]]),
            ):
                part = arr if name == "tasks" else arr[lo:hi]
                if part:
                    s[name] = part
            more = len(job.tasks) > hi or len(job.job_clusters) > hi
        else:
            if job.parameters:
                s["parameters"] = job.parameters
        out: dict[str, Any] = {
            "job_id": job.job_id,
            "creator_user_name": job.creator,
        }
        if full:
            out["run_as_user_name"] = job.run_as
        out["created_time"] = job.created_time
        out["settings"] = s
        return out, more
