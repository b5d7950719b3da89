-- Cost per job, top spenders first: total, billed and estimated cost, runs whose cost is unknown, and average cost per run.
SELECT
    workspace_id,
    job_id,
    max(job_name) AS job_name,
    count(*) AS runs,
    sum(cost) AS cost,
    sum(billed_cost) AS billed_cost,
    sum(cost_est) AS cost_est,
    count(*) FILTER (WHERE cost_source = 'billing') AS billed_runs,
    count(*) FILTER (WHERE cost IS NULL) AS runs_without_cost,
    sum(cost) / nullif(count(cost), 0) AS avg_cost_per_run,
    rank() OVER (PARTITION BY workspace_id ORDER BY sum(cost) DESC NULLS LAST) AS spend_rank
FROM int_run_facts
GROUP BY workspace_id, job_id
ORDER BY cost DESC NULLS LAST, workspace_id, job_id
