-- Queue time and late starts of scheduled (PERIODIC) runs per job: start_delay = first task start - trigger time; a late start is a delay over 5 minutes.
WITH delays AS (
    SELECT
        workspace_id,
        job_id,
        job_name,
        coalesce(queue_duration_ms, 0) AS queue_ms,
        date_diff('millisecond', start_time, first_task_start) AS start_delay_ms
    FROM int_run_facts
    WHERE trigger = 'PERIODIC' AND outcome <> 'skipped'
)
SELECT
    workspace_id,
    job_id,
    max(job_name) AS job_name,
    count(*) AS scheduled_runs,
    count(*) FILTER (WHERE queue_ms > 0) AS queued_runs,
    quantile_cont(queue_ms, 0.5) AS p50_queue_ms,
    quantile_cont(queue_ms, 0.95) AS p95_queue_ms,
    max(queue_ms) AS max_queue_ms,
    count(*) FILTER (WHERE start_delay_ms > 300000) AS late_starts,
    quantile_cont(start_delay_ms, 0.5) AS p50_start_delay_ms,
    quantile_cont(start_delay_ms, 0.95) AS p95_start_delay_ms,
    max(start_delay_ms) AS max_start_delay_ms
FROM delays
GROUP BY workspace_id, job_id
ORDER BY late_starts DESC, p95_start_delay_ms DESC NULLS LAST, workspace_id, job_id
