-- p50/p90/p95 duration per job and task_key, over succeeded task runs.
SELECT
    workspace_id,
    job_id,
    task_key,
    count(*) AS task_runs,
    quantile_cont(duration_ms, 0.5) AS p50_duration_ms,
    quantile_cont(duration_ms, 0.9) AS p90_duration_ms,
    quantile_cont(duration_ms, 0.95) AS p95_duration_ms,
    max(duration_ms) AS max_duration_ms
FROM int_durations
WHERE task_key IS NOT NULL
GROUP BY workspace_id, job_id, task_key
