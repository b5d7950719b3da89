-- Active runs running longer than $factor times the p95 duration of their job's succeeded runs of the 28 days before $now (at least 5 of them), or past the job's timeout.
WITH baseline AS (
    SELECT workspace_id, job_id, quantile_cont(duration_ms, 0.95) AS p95_duration_ms, count(*) AS baseline_runs
    FROM int_run_facts
    WHERE outcome = 'succeeded' AND NOT is_active AND duration_ms IS NOT NULL
        AND start_time >= $now - INTERVAL 28 DAY AND start_time <= $now
    GROUP BY workspace_id, job_id
    HAVING count(*) >= 5
),
active AS (
    SELECT
        f.workspace_id, f.job_id, f.job_name, f.run_id, f.start_time, f.life_cycle_state,
        f.job_timeout_seconds * 1000 AS timeout_ms,
        date_diff('millisecond', f.start_time, $now) AS running_for_ms,
        b.p95_duration_ms
    FROM int_run_facts AS f
    LEFT JOIN baseline AS b ON b.workspace_id = f.workspace_id AND b.job_id = f.job_id
    WHERE f.is_active AND f.start_time IS NOT NULL AND f.start_time <= $now
)
SELECT
    a.workspace_id, a.job_id, a.job_name, a.run_id, r.run_page_url, a.life_cycle_state,
    a.running_for_ms, a.p95_duration_ms, a.timeout_ms,
    CASE WHEN a.timeout_ms > 0 AND a.running_for_ms > a.timeout_ms THEN 'past_timeout' ELSE 'over_p95' END AS reason,
    a.start_time + to_milliseconds(CAST(least(
        coalesce($factor * a.p95_duration_ms, 9e18),
        CASE WHEN a.timeout_ms > 0 THEN a.timeout_ms ELSE 9e18 END
    ) AS BIGINT)) AS fired_at
FROM active AS a
LEFT JOIN runs AS r ON r.workspace_id = a.workspace_id AND r.run_id = a.run_id
WHERE a.running_for_ms > $factor * a.p95_duration_ms OR (a.timeout_ms > 0 AND a.running_for_ms > a.timeout_ms)
ORDER BY a.start_time, a.workspace_id, a.run_id
