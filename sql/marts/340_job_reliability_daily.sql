-- job_reliability per UTC day of the runs' start.
SELECT
    workspace_id, job_id, run_date, job_name, runs, active_runs, terminal_runs, succeeded, failed,
    canceled, skipped, success_rate, repairs, retried_tasks, job_retry_runs, p50_duration_ms,
    p95_duration_ms, cost
FROM int_job_reliability
WHERE run_date IS NOT NULL
