-- Flaky tasks: per job and task_key, executions where an attempt failed and a later retry or repair succeeded; flake_rate = those / executions of the task.
WITH flaky AS (
    -- The tasks that flaked at least once: only their executions are counted below.
    SELECT DISTINCT workspace_id, job_id, task_key
    FROM task_cost
    WHERE outcome = 'failed' AND later_attempt_succeeded
),
attempts AS (
    SELECT c.*
    FROM task_cost AS c
    INNER JOIN flaky AS k
        ON c.workspace_id = k.workspace_id
        AND c.job_id IS NOT DISTINCT FROM k.job_id
        AND c.task_key IS NOT DISTINCT FROM k.task_key
    WHERE c.outcome <> 'active'
),
executions AS (
    SELECT
        workspace_id,
        job_id,
        logical_run_id,
        task_key,
        bool_or(outcome = 'failed' AND later_attempt_succeeded) AS flaked,
        bool_or(is_last_attempt AND outcome = 'failed') AS finally_failed,
        count(*) AS attempts,
        sum(cost) FILTER (WHERE outcome = 'failed' AND later_attempt_succeeded) AS flake_cost
    FROM attempts
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
ORDER BY flake_rate DESC, flaky_executions DESC, e.workspace_id, e.job_id, e.task_key
