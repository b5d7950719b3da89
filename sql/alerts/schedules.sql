-- Unpaused scheduled jobs that are not deleted, with their Quartz expression and time zone, when they were created, and the span the store has seen of the workspace: from its first stored run to its last successful extract.
SELECT
    j.workspace_id, j.job_id, j.name AS job_name, j.schedule_cron, j.schedule_timezone,
    j.created_time, s.last_success_at,
    (SELECT min(r.start_time) FROM runs AS r WHERE r.workspace_id = j.workspace_id) AS first_run_at
FROM jobs AS j
LEFT JOIN extract_state AS s ON s.workspace_id = j.workspace_id
WHERE j.deleted_at IS NULL AND j.schedule_cron IS NOT NULL
    AND coalesce(j.schedule_pause_status, 'UNPAUSED') = 'UNPAUSED'
ORDER BY j.workspace_id, j.job_id
