-- Job runs that are not deleted, with their reliability class (outcome) and UTC day and week.
SELECT
    r.workspace_id,
    r.run_id,
    r.job_id,
    r.run_name,
    r.run_type,
    r.trigger,
    r.creator_user_name,
    r.start_time,
    r.end_time,
    CAST(r.start_time AT TIME ZONE 'UTC' AS DATE) AS run_date,
    CAST(date_trunc('week', r.start_time AT TIME ZONE 'UTC') AS DATE) AS run_week,
    r.life_cycle_state,
    r.result_state,
    r.termination_code,
    r.termination_type,
    r.state_message,
    r.queue_duration_ms,
    r.setup_duration_ms,
    r.duration_ms,
    coalesce(r.attempt_number, 0) AS attempt_number,
    coalesce(r.original_attempt_run_id, r.run_id) AS logical_run_id,
    r.is_active AS is_active,
    coalesce(r.repair_count, 0) AS repair_count,
    r.task_count,
    r.run_page_url,
    CASE WHEN r.is_active THEN 'active' ELSE coalesce(c.outcome, 'other') END AS outcome
FROM runs AS r
LEFT JOIN stg_result_classes AS c
    ON c.state = CASE
        WHEN r.life_cycle_state IN ('INTERNAL_ERROR', 'SKIPPED') THEN r.life_cycle_state
        ELSE r.result_state
    END
WHERE r.deleted_at IS NULL
