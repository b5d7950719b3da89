-- Jobs whose latest terminal runs all failed, at least $n of them: the streak's first run, the run that made it $n long (its end is when it fired) and the streak's length. Canceled and skipped runs are passed over.
WITH terminal AS (
    SELECT workspace_id, job_id, job_name, run_id, start_time, end_time, outcome = 'failed' AS failed
    FROM int_run_facts
    WHERE NOT is_active AND job_id IS NOT NULL AND outcome NOT IN ('canceled', 'skipped')
),
last_good AS (
    SELECT workspace_id, job_id, max(start_time) FILTER (WHERE NOT failed) AS good_at
    FROM terminal
    GROUP BY workspace_id, job_id
),
streak AS (
    SELECT
        t.*,
        row_number() OVER (PARTITION BY t.workspace_id, t.job_id ORDER BY t.start_time, t.run_id) AS pos,
        count(*) OVER (PARTITION BY t.workspace_id, t.job_id) AS streak_length
    FROM terminal AS t
    JOIN last_good AS g ON t.workspace_id = g.workspace_id AND t.job_id = g.job_id
    WHERE t.failed AND (g.good_at IS NULL OR t.start_time > g.good_at)
)
SELECT
    s.workspace_id,
    s.job_id,
    s.job_name,
    f.run_id AS first_run_id,
    s.run_id,
    r.run_page_url,
    s.end_time AS fired_at,
    s.streak_length
FROM streak AS s
JOIN streak AS f ON f.workspace_id = s.workspace_id AND f.job_id = s.job_id AND f.pos = 1
LEFT JOIN runs AS r ON r.workspace_id = s.workspace_id AND r.run_id = s.run_id
WHERE s.pos = $n AND s.end_time > $start AND s.end_time <= $now
ORDER BY s.end_time, s.workspace_id, s.job_id
