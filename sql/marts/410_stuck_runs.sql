-- Active runs running longer than k = 2 times their job's p95 duration of succeeded runs, or past the job's timeout; running_for_ms is measured to stg_now.
SELECT
    f.workspace_id,
    f.run_id,
    f.job_id,
    f.job_name,
    f.life_cycle_state,
    f.start_time,
    date_diff('millisecond', f.start_time, n.now_ts) AS running_for_ms,
    s.p95_duration_ms,
    2 * s.p95_duration_ms AS threshold_ms,
    f.job_timeout_seconds * 1000 AS timeout_ms,
    CASE
        WHEN f.job_timeout_seconds > 0
            AND date_diff('millisecond', f.start_time, n.now_ts) > f.job_timeout_seconds * 1000
            THEN 'past_timeout'
        ELSE 'over_2x_p95'
    END AS reason
FROM int_run_facts AS f
CROSS JOIN stg_now AS n
LEFT JOIN job_duration_stats AS s ON f.workspace_id = s.workspace_id AND f.job_id = s.job_id
WHERE
    f.is_active
    AND f.start_time IS NOT NULL
    AND (
        date_diff('millisecond', f.start_time, n.now_ts) > 2 * s.p95_duration_ms
        OR (
            f.job_timeout_seconds > 0
            AND date_diff('millisecond', f.start_time, n.now_ts) > f.job_timeout_seconds * 1000
        )
    )
ORDER BY running_for_ms DESC, f.workspace_id, f.run_id
