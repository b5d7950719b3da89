-- Duration regressions of jobs (task_key NULL) and tasks: p50 of the last 7 days against the 28 days before; is_regression when at least 3 succeeded runs on each side and the ratio is 1.5 or more.
WITH windows AS (
    SELECT
        d.workspace_id,
        d.job_id,
        d.task_key,
        CASE WHEN d.start_time >= n.now_ts - INTERVAL '7' DAY THEN 'recent' ELSE 'baseline' END
            AS period,
        d.duration_ms
    FROM int_durations AS d
    CROSS JOIN stg_now AS n
    WHERE d.start_time >= n.now_ts - INTERVAL '35' DAY AND d.start_time <= n.now_ts
),
stats AS (
    SELECT
        workspace_id,
        job_id,
        task_key,
        count(*) FILTER (WHERE period = 'recent') AS recent_runs,
        count(*) FILTER (WHERE period = 'baseline') AS baseline_runs,
        quantile_cont(duration_ms, 0.5) FILTER (WHERE period = 'recent') AS recent_p50_ms,
        quantile_cont(duration_ms, 0.5) FILTER (WHERE period = 'baseline') AS baseline_p50_ms
    FROM windows
    GROUP BY workspace_id, job_id, task_key
)
SELECT
    s.workspace_id,
    s.job_id,
    j.job_name,
    s.task_key,
    s.recent_runs,
    s.baseline_runs,
    s.recent_p50_ms,
    s.baseline_p50_ms,
    s.recent_p50_ms / nullif(s.baseline_p50_ms, 0) AS ratio,
    coalesce(
        s.recent_runs >= 3 AND s.baseline_runs >= 3
        AND s.recent_p50_ms >= 1.5 * s.baseline_p50_ms,
        false
    ) AS is_regression
FROM stats AS s
LEFT JOIN stg_jobs AS j ON s.workspace_id = j.workspace_id AND s.job_id = j.job_id
WHERE s.recent_runs > 0 AND s.baseline_runs > 0
ORDER BY ratio DESC NULLS LAST, s.workspace_id, s.job_id, s.task_key
