-- Jobs as last extracted, deleted ones included (their past runs still need a name and an owner).
SELECT
    workspace_id,
    job_id,
    name AS job_name,
    creator_user_name,
    run_as_user_name,
    tags,
    schedule_cron,
    schedule_pause_status,
    trigger_kind,
    continuous,
    timeout_seconds,
    deleted_at IS NOT NULL AS is_deleted
FROM jobs
