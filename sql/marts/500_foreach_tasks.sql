-- For-each tasks per job and task_key: executions, iterations, failed iterations, iteration failure rate and cost (iterations' share of the clusters they ran on).
WITH iterations AS (
    SELECT
        workspace_id,
        parent_task_run_id,
        count(*) AS iterations,
        count(*) FILTER (WHERE outcome = 'failed') AS failed_iterations,
        count(*) FILTER (WHERE outcome <> 'active') AS finished_iterations
    FROM stg_task_iterations
    GROUP BY workspace_id, parent_task_run_id
)
SELECT
    c.workspace_id,
    c.job_id,
    max(f.job_name) AS job_name,
    c.task_key,
    count(*) AS task_runs,
    sum(coalesce(i.iterations, 0)) AS iterations,
    sum(coalesce(i.failed_iterations, 0)) AS failed_iterations,
    sum(coalesce(i.failed_iterations, 0)) / CAST(nullif(sum(i.finished_iterations), 0) AS DOUBLE)
        AS iteration_failure_rate,
    sum(c.cost_est) AS cost_est,
    sum(c.cost) AS cost
FROM task_cost AS c
LEFT JOIN iterations AS i ON c.workspace_id = i.workspace_id AND c.task_run_id = i.parent_task_run_id
LEFT JOIN int_run_facts AS f ON c.workspace_id = f.workspace_id AND c.job_run_id = f.run_id
WHERE c.task_type = 'for_each_task'
GROUP BY c.workspace_id, c.job_id, c.task_key
ORDER BY cost DESC NULLS LAST, c.workspace_id, c.job_id, c.task_key
