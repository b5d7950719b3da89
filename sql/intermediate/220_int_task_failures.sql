-- Each failed task run and iteration with its cause, what it cost (a task run's cost share; an iteration's cost is in its for-each task's row, so 0 here) and whether a later retry or repair of the task succeeded.
SELECT
    e.workspace_id,
    e.run_id,
    e.job_run_id,
    e.job_id,
    coalesce(j.job_name, r.run_name) AS job_name,
    e.task_key,
    e.is_iteration,
    e.failed_at,
    e.signature,
    e.title,
    e.error_class,
    e.error,
    coalesce(c.cost, 0.0) AS cost,
    coalesce(a.later_attempt_succeeded, false) AS recovered
FROM stg_task_errors AS e
INNER JOIN runs AS r ON e.workspace_id = r.workspace_id AND e.job_run_id = r.run_id
LEFT JOIN stg_jobs AS j ON e.workspace_id = j.workspace_id AND e.job_id = j.job_id
LEFT JOIN int_task_cost AS c
    ON e.workspace_id = c.workspace_id AND e.run_id = c.task_run_id AND NOT e.is_iteration
LEFT JOIN int_task_attempts AS a
    ON e.workspace_id = a.workspace_id AND e.run_id = a.run_id AND NOT e.is_iteration
