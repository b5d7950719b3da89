-- One row per run with everything the marts group by: job name and owners, outcome, retries and repairs, cost.
WITH task_facts AS (
    SELECT
        workspace_id,
        job_run_id,
        count(*) FILTER (WHERE is_retry) AS retried_tasks,
        count(*) FILTER (WHERE is_repair_rerun) AS repaired_tasks,
        count(*) FILTER (WHERE was_rerun) AS rerun_attempts,
        min(start_time) AS first_task_start,
        sum(coalesce(setup_duration_ms, 0)) AS task_setup_ms,
        sum(coalesce(duration_ms, 0)) AS task_duration_ms
    FROM int_task_attempts
    GROUP BY workspace_id, job_run_id
)
SELECT
    r.workspace_id,
    r.run_id,
    r.job_id,
    coalesce(j.job_name, r.run_name) AS job_name,
    r.run_name,
    r.run_type,
    r.trigger,
    coalesce(j.creator_user_name, r.creator_user_name) AS creator,
    j.run_as_user_name AS run_as,
    j.tags,
    j.timeout_seconds AS job_timeout_seconds,
    r.start_time,
    r.end_time,
    r.run_date,
    r.run_week,
    r.is_active,
    r.outcome,
    r.life_cycle_state,
    r.result_state,
    r.termination_code,
    r.termination_type,
    r.queue_duration_ms,
    r.duration_ms,
    r.attempt_number,
    r.logical_run_id,
    r.repair_count,
    coalesce(tf.retried_tasks, 0) AS retried_tasks,
    coalesce(tf.repaired_tasks, 0) AS repaired_tasks,
    coalesce(tf.rerun_attempts, 0) AS rerun_attempts,
    tf.first_task_start,
    tf.task_setup_ms,
    tf.task_duration_ms,
    c.dbus_est,
    c.cost_est,
    c.billed_dbus,
    c.billed_cost,
    c.cost,
    c.cost_source,
    c.cost_null_reason
FROM stg_runs AS r
LEFT JOIN stg_jobs AS j ON r.workspace_id = j.workspace_id AND r.job_id = j.job_id
LEFT JOIN task_facts AS tf ON r.workspace_id = tf.workspace_id AND r.run_id = tf.job_run_id
LEFT JOIN int_run_cost AS c ON r.workspace_id = c.workspace_id AND r.run_id = c.run_id
