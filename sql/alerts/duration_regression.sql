-- Succeeded runs that ended in the window and took over $factor times the median duration of their job's succeeded runs started in the $lookback_ms before them (at least $min_runs of those).
WITH ok AS (
    SELECT workspace_id, job_id, job_name, run_id, start_time, end_time, duration_ms
    FROM int_run_facts
    WHERE outcome = 'succeeded' AND NOT is_active AND duration_ms IS NOT NULL AND job_id IS NOT NULL
)
SELECT
    c.workspace_id, c.job_id, c.job_name, c.run_id, r.run_page_url, c.end_time AS fired_at,
    c.duration_ms, median(b.duration_ms) AS median_duration_ms, count(*) AS baseline_runs
FROM ok AS c
JOIN ok AS b
    ON b.workspace_id = c.workspace_id AND b.job_id = c.job_id
    AND b.start_time < c.start_time
    AND b.start_time >= c.start_time - to_milliseconds($lookback_ms)
LEFT JOIN runs AS r ON r.workspace_id = c.workspace_id AND r.run_id = c.run_id
WHERE c.end_time > $start AND c.end_time <= $now
GROUP BY c.workspace_id, c.job_id, c.job_name, c.run_id, r.run_page_url, c.end_time, c.duration_ms
HAVING count(*) >= $min_runs AND c.duration_ms > $factor * median(b.duration_ms)
ORDER BY c.end_time, c.workspace_id, c.run_id
