-- Per job run with task runs, what its extra task attempts cost: retries, repair re-runs, and every attempt that was re-run later.
-- materialized: job_run_id
SELECT
    a.workspace_id,
    a.job_run_id,
    coalesce(sum(c.cost) FILTER (WHERE a.is_retry), 0.0) AS retry_cost,
    coalesce(sum(c.cost) FILTER (WHERE a.repair_id <> 0), 0.0) AS repair_cost,
    coalesce(sum(c.cost) FILTER (WHERE a.was_rerun), 0.0) AS rerun_attempt_cost
FROM int_task_attempts AS a
INNER JOIN int_task_cost AS c ON a.workspace_id = c.workspace_id AND a.run_id = c.task_run_id
GROUP BY a.workspace_id, a.job_run_id
