-- Reliability per job: runs by outcome, success_rate = succeeded / terminal runs (NULL when none), repairs, retried tasks, p50/p95 duration of succeeded runs.
SELECT
    workspace_id, job_id, job_name, runs, active_runs, terminal_runs, succeeded, failed, canceled,
    skipped, success_rate, repairs, retried_tasks, job_retry_runs, p50_duration_ms,
    p95_duration_ms, cost, first_run_at, last_run_at
FROM int_job_reliability
WHERE run_date IS NULL
