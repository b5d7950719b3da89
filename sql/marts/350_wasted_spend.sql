-- Wasted spend per job: the whole cost of failed, timed-out and canceled runs, plus, in other runs, the cost of task attempts that were re-run (retry or repair).
WITH per_run AS (
    SELECT
        f.workspace_id,
        f.job_id,
        f.job_name,
        f.outcome,
        f.cost,
        CASE WHEN f.outcome IN ('failed', 'canceled') THEN 0 ELSE f.rerun_attempts END
            AS rerun_attempts,
        CASE
            WHEN f.outcome IN ('failed', 'canceled') THEN 0.0
            ELSE coalesce(rc.rerun_attempt_cost, 0.0)
        END AS rerun_cost
    FROM int_run_facts AS f
    LEFT JOIN int_rerun_cost AS rc ON f.workspace_id = rc.workspace_id AND f.run_id = rc.job_run_id
    WHERE NOT f.is_active
)
SELECT
    workspace_id,
    job_id,
    max(job_name) AS job_name,
    count(*) FILTER (WHERE outcome = 'failed') AS failed_runs,
    coalesce(sum(cost) FILTER (WHERE outcome = 'failed'), 0.0) AS failed_run_cost,
    count(*) FILTER (WHERE outcome = 'canceled') AS canceled_runs,
    coalesce(sum(cost) FILTER (WHERE outcome = 'canceled'), 0.0) AS canceled_run_cost,
    sum(rerun_attempts) AS rerun_task_attempts,
    sum(rerun_cost) AS rerun_task_cost,
    coalesce(sum(cost) FILTER (WHERE outcome IN ('failed', 'canceled')), 0.0) + sum(rerun_cost)
        AS wasted_cost,
    sum(cost) AS total_cost,
    (coalesce(sum(cost) FILTER (WHERE outcome IN ('failed', 'canceled')), 0.0) + sum(rerun_cost))
        / nullif(sum(cost), 0) AS wasted_share
FROM per_run
GROUP BY workspace_id, job_id
ORDER BY wasted_cost DESC, workspace_id, job_id
