-- Every task attempt ordered within its logical execution (a job-level retry run counts with its original run): retries, repair re-runs, attempts later re-run, and whether a later attempt succeeded.
-- materialized: job_run_id
WITH ordered AS (
    SELECT
        t.*,
        row_number() OVER (
            PARTITION BY t.workspace_id, t.logical_run_id, t.task_key
            ORDER BY t.run_attempt_number, t.attempt_number, t.start_time, t.run_id
        ) AS attempt_seq,
        count(*) OVER (PARTITION BY t.workspace_id, t.logical_run_id, t.task_key) AS attempts,
        max(CASE WHEN t.outcome = 'succeeded' THEN 1 ELSE 0 END) OVER (
            PARTITION BY t.workspace_id, t.logical_run_id, t.task_key
            ORDER BY t.run_attempt_number, t.attempt_number, t.start_time, t.run_id
            ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
        ) AS later_success,
        row_number() OVER (
            PARTITION BY t.workspace_id, t.job_run_id, t.repair_id, t.task_key
            ORDER BY t.attempt_number, t.start_time, t.run_id
        ) AS seq_in_repair
    FROM stg_tasks AS t
)
SELECT
    workspace_id,
    run_id,
    job_run_id,
    job_id,
    task_key,
    task_type,
    attempt_number,
    repair_id,
    run_attempt_number,
    logical_run_id,
    start_time,
    end_time,
    setup_duration_ms,
    duration_ms,
    outcome,
    compute_kind,
    cluster_id,
    attempt_seq,
    attempts,
    attempt_seq = attempts AS is_last_attempt,
    attempt_seq < attempts AS was_rerun,
    seq_in_repair > 1 AS is_retry,
    repair_id <> 0 AND seq_in_repair = 1 AS is_repair_rerun,
    coalesce(later_success, 0) = 1 AS later_attempt_succeeded
FROM ordered
