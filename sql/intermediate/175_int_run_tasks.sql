-- One row per job run with task runs: retries, repairs and re-runs, task time, and when a task attempt first failed.
-- materialized: job_run_id
SELECT
    workspace_id,
    job_run_id,
    count(*) AS task_runs,
    count(*) FILTER (WHERE is_retry) AS retried_tasks,
    count(*) FILTER (WHERE is_repair_rerun) AS repaired_tasks,
    count(*) FILTER (WHERE was_rerun) AS rerun_attempts,
    min(start_time) AS first_task_start,
    sum(coalesce(setup_duration_ms, 0)) AS task_setup_ms,
    sum(coalesce(duration_ms, 0)) AS task_duration_ms,
    min(end_time) FILTER (WHERE outcome = 'failed') AS first_failure_at
FROM int_task_attempts
GROUP BY workspace_id, job_run_id
