-- Finished runs that ended in the window costing over $factor times the mean cost of their job's $n previous runs with a cost, and over $min_cost.
WITH costed AS (
    SELECT
        workspace_id, job_id, job_name, run_id, start_time, end_time, cost,
        row_number() OVER (PARTITION BY workspace_id, job_id ORDER BY start_time, run_id) AS pos
    FROM int_run_facts
    WHERE cost IS NOT NULL AND NOT is_active AND job_id IS NOT NULL
)
SELECT
    c.workspace_id, c.job_id, c.job_name, c.run_id, r.run_page_url, c.end_time AS fired_at,
    c.cost, avg(p.cost) AS mean_cost, count(*) AS previous_runs
FROM costed AS c
JOIN costed AS p
    ON p.workspace_id = c.workspace_id AND p.job_id = c.job_id
    AND p.pos < c.pos AND p.pos >= c.pos - $n
LEFT JOIN runs AS r ON r.workspace_id = c.workspace_id AND r.run_id = c.run_id
WHERE c.end_time > $start AND c.end_time <= $now AND c.cost > $min_cost
GROUP BY c.workspace_id, c.job_id, c.job_name, c.run_id, r.run_page_url, c.end_time, c.cost
HAVING count(*) = $n AND c.cost > $factor * avg(p.cost)
ORDER BY c.end_time, c.workspace_id, c.run_id
