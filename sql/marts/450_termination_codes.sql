-- Termination codes of finished runs per workspace, by count and by cost (ranks for both).
SELECT
    workspace_id,
    coalesce(termination_code, '(none)') AS termination_code,
    max(termination_type) AS termination_type,
    count(*) AS runs,
    count(*) FILTER (WHERE outcome = 'failed') AS failed_runs,
    sum(cost) AS cost,
    rank() OVER (PARTITION BY workspace_id ORDER BY count(*) DESC) AS rank_by_count,
    rank() OVER (PARTITION BY workspace_id ORDER BY sum(cost) DESC NULLS LAST) AS rank_by_cost
FROM int_run_facts
WHERE NOT is_active
GROUP BY workspace_id, coalesce(termination_code, '(none)')
ORDER BY runs DESC, workspace_id, termination_code
