-- p50/p90/p95 duration per job, over its succeeded runs.
SELECT
    d.workspace_id,
    d.job_id,
    max(j.job_name) AS job_name,
    count(*) AS runs,
    quantile_cont(d.duration_ms, 0.5) AS p50_duration_ms,
    quantile_cont(d.duration_ms, 0.9) AS p90_duration_ms,
    quantile_cont(d.duration_ms, 0.95) AS p95_duration_ms,
    max(d.duration_ms) AS max_duration_ms
FROM int_durations AS d
LEFT JOIN stg_jobs AS j ON d.workspace_id = j.workspace_id AND d.job_id = j.job_id
WHERE d.task_key IS NULL
GROUP BY d.workspace_id, d.job_id
