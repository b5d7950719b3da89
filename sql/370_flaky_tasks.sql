-- Flaky tasks: per job and task_key, executions where an attempt failed and a later retry or repair succeeded; flake_rate = those / executions of the task.
WITH executions AS (
    SELECT
        workspace_id,
        job_id,
        logical_run_id,
        task_key,
        bool_or(outcome = 'failed' AND later_attempt_succeeded) AS flaked,
        bool_or(is_last_attempt AND outcome = 'failed') AS finally_failed,
        count(*) AS attempts,
        sum(cost) FILTER (WHERE outcome = 'failed' AND later_attempt_succeeded) AS flake_cost
    FROM task_cost
    WHERE outcome <> 'active'
    GROUP BY workspace_id, job_id, logical_run_id, task_key
)
SELECT
    e.workspace_id,
    e.job_id,
    max(f.job_name) AS job_name,
    e.task_key,
    count(*) AS executions,
    count(*) FILTER (WHERE e.flaked) AS flaky_executions,
    count(*) FILTER (WHERE e.finally_failed) AS failed_executions,
    count(*) FILTER (WHERE e.flaked) / CAST(count(*) AS DOUBLE) AS flake_rate,
    sum(e.attempts) AS attempts,
    coalesce(sum(e.flake_cost), 0.0) AS flake_cost
FROM executions AS e
LEFT JOIN int_run_facts AS f ON e.workspace_id = f.workspace_id AND e.logical_run_id = f.run_id
GROUP BY e.workspace_id, e.job_id, e.task_key
HAVING count(*) FILTER (WHERE e.flaked) > 0
ORDER BY flake_rate DESC, flaky_executions DESC, e.workspace_id, e.job_id, e.task_key
