-- Reliability counts per job overall (run_date NULL) and per UTC day; durations are of succeeded runs.
SELECT
    workspace_id,
    job_id,
    run_date,
    max(job_name) AS job_name,
    count(*) AS runs,
    count(*) FILTER (WHERE is_active) AS active_runs,
    count(*) FILTER (WHERE NOT is_active) AS terminal_runs,
    count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,
    count(*) FILTER (WHERE outcome = 'failed') AS failed,
    count(*) FILTER (WHERE outcome = 'canceled') AS canceled,
    count(*) FILTER (WHERE outcome = 'skipped') AS skipped,
    count(*) FILTER (WHERE outcome = 'succeeded')
        / CAST(nullif(count(*) FILTER (WHERE NOT is_active), 0) AS DOUBLE) AS success_rate,
    sum(repair_count) AS repairs,
    sum(retried_tasks) AS retried_tasks,
    count(*) FILTER (WHERE attempt_number > 0) AS job_retry_runs,
    quantile_cont(duration_ms, 0.5) FILTER (WHERE outcome = 'succeeded') AS p50_duration_ms,
    quantile_cont(duration_ms, 0.95) FILTER (WHERE outcome = 'succeeded') AS p95_duration_ms,
    sum(cost) AS cost,
    min(start_time) AS first_run_at,
    max(start_time) AS last_run_at
FROM int_run_facts
GROUP BY GROUPING SETS ((workspace_id, job_id), (workspace_id, job_id, run_date))
