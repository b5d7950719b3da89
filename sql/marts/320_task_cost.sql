-- Cost per task run: its time share of each cluster it used (estimate) and of its run's cost; a for-each task includes its iterations.
-- materialized: job_run_id
SELECT
    a.workspace_id,
    a.job_run_id,
    a.job_id,
    a.run_id AS task_run_id,
    a.task_key,
    a.task_type,
    a.attempt_number,
    a.repair_id,
    a.outcome,
    a.compute_kind,
    a.cluster_id,
    a.start_time,
    a.duration_ms,
    a.end_time,
    a.logical_run_id,
    a.attempt_seq,
    a.is_retry,
    a.is_repair_rerun,
    a.was_rerun,
    a.is_last_attempt,
    a.later_attempt_succeeded,
    c.elapsed_ms,
    c.dbus_est,
    c.cost_est,
    c.cost,
    c.cost_source
FROM int_task_attempts AS a
INNER JOIN int_task_cost AS c ON a.workspace_id = c.workspace_id AND a.run_id = c.task_run_id
