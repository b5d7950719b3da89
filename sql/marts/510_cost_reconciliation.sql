-- How far the estimate is from the bill: per job, over the runs billing covers, their billed cost, the estimated cost of the same runs and the error in % ((estimate - billed) / billed); runs whose estimate is unknown (e.g. serverless) count apart. The last row (workspace_id and job_id NULL) is the same over every job.
WITH billed AS (
    SELECT workspace_id, job_id, job_name, billed_cost, cost_est
    FROM int_run_facts
    WHERE cost_source = 'billing' AND billed_cost IS NOT NULL
)
SELECT
    workspace_id,
    job_id,
    max(job_name) AS job_name,
    count(*) AS billed_runs,
    count(*) FILTER (WHERE cost_est IS NULL) AS runs_without_estimate,
    sum(billed_cost) FILTER (WHERE cost_est IS NOT NULL) AS billed_cost,
    sum(cost_est) AS estimated_cost,
    round(
        100.0 * (sum(cost_est) - sum(billed_cost) FILTER (WHERE cost_est IS NOT NULL))
        / nullif(sum(billed_cost) FILTER (WHERE cost_est IS NOT NULL), 0),
        1
    ) AS error_pct,
    sum(billed_cost) AS billed_cost_all_runs
FROM billed
GROUP BY GROUPING SETS ((workspace_id, job_id), ())
ORDER BY job_id IS NULL, abs(error_pct) DESC NULLS LAST, workspace_id, job_id
