-- The job runs whose materialized rows a refresh recomputes: the changed ones (registered as
-- jobruns_changed_runs), the active ones and those with active work (their elapsed time runs to
-- stg_now), and every run sharing a logical run with one of them.
-- is_active is stored by the extract (extractor.flatten.is_active, the one definition of an
-- active run); the views read the column.
WITH touched AS (
    SELECT workspace_id, run_id FROM jobruns_changed_runs
    UNION SELECT workspace_id, run_id FROM runs WHERE is_active
    UNION SELECT workspace_id, job_run_id FROM tasks WHERE is_active
    UNION SELECT workspace_id, job_run_id FROM task_iterations
        WHERE is_active
),
logical AS (
    SELECT DISTINCT r.workspace_id, coalesce(r.original_attempt_run_id, r.run_id) AS logical_id
    FROM runs AS r SEMI JOIN touched AS t ON r.workspace_id = t.workspace_id AND r.run_id = t.run_id
)
SELECT r.workspace_id, r.run_id
FROM runs AS r
SEMI JOIN logical AS l
    ON r.workspace_id = l.workspace_id
    AND coalesce(r.original_attempt_run_id, r.run_id) = l.logical_id
UNION
SELECT workspace_id, run_id FROM touched
