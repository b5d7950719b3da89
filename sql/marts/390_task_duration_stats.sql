-- p50/p90/p95 duration per job and task_key, over succeeded task runs.
WITH stats AS (
    SELECT
        workspace_id,
        job_id,
        task_key,
        count(*) AS task_runs,
        -- One aggregate for the three percentiles: each group's values are sorted once.
        quantile_cont(duration_ms, [0.5, 0.9, 0.95]) AS percentiles,
        max(duration_ms) AS max_duration_ms
    FROM int_durations
    WHERE task_key IS NOT NULL
    GROUP BY workspace_id, job_id, task_key
)
SELECT
    workspace_id,
    job_id,
    task_key,
    task_runs,
    percentiles[1] AS p50_duration_ms,
    percentiles[2] AS p90_duration_ms,
    percentiles[3] AS p95_duration_ms,
    max_duration_ms
FROM stats
