-- Spend per UTC day of the runs' start: cost, billed and estimated parts, runs and failed runs.
SELECT
    workspace_id,
    run_date,
    count(*) AS runs,
    count(*) FILTER (WHERE outcome = 'failed') AS failed_runs,
    sum(cost) AS cost,
    sum(billed_cost) AS billed_cost,
    sum(cost) FILTER (WHERE cost_source = 'estimate') AS estimated_cost_est,
    count(*) FILTER (WHERE cost IS NULL) AS runs_without_cost
FROM int_run_facts
GROUP BY workspace_id, run_date
ORDER BY workspace_id, run_date
