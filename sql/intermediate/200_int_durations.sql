-- Durations of succeeded runs (task_key NULL) and succeeded task runs, the sample for percentiles and regressions.
-- materialized: job_run_id
SELECT
    workspace_id, job_id, CAST(NULL AS VARCHAR) AS task_key, run_id, run_id AS job_run_id,
    start_time, duration_ms
FROM stg_runs
WHERE outcome = 'succeeded' AND duration_ms IS NOT NULL
UNION ALL
SELECT workspace_id, job_id, task_key, run_id, job_run_id, start_time, duration_ms
FROM stg_tasks
WHERE outcome = 'succeeded' AND duration_ms IS NOT NULL
