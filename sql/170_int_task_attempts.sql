-- Every task attempt ordered within its logical execution (a job-level retry run counts with its original run): retries, repair re-runs, attempts later re-run, and whether a later attempt succeeded.
WITH ordered AS (
    SELECT
        t.*,
        row_number() OVER (
            PARTITION BY t.workspace_id, t.logical_run_id, t.task_key
            ORDER BY t.run_attempt_number, t.attempt_number, t.start_time, t.run_id
        ) AS attempt_seq,
        count(*) OVER (PARTITION BY t.workspace_id, t.logical_run_id, t.task_key) AS attempts,
        row_number() OVER (
            PARTITION BY t.workspace_id, t.job_run_id, t.repair_id, t.task_key
            ORDER BY t.attempt_number, t.start_time, t.run_id
        ) AS seq_in_repair
    FROM stg_tasks AS t
)
SELECT
    o.*,
    o.attempt_seq = o.attempts AS is_last_attempt,
    o.attempt_seq < o.attempts AS was_rerun,
    o.seq_in_repair > 1 AS is_retry,
    o.repair_id <> 0 AND o.seq_in_repair = 1 AS is_repair_rerun,
    coalesce(
        max(CASE WHEN o.outcome = 'succeeded' THEN 1 ELSE 0 END) OVER (
            PARTITION BY o.workspace_id, o.logical_run_id, o.task_key
            ORDER BY o.attempt_seq
            ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
        ),
        0
    ) = 1 AS later_attempt_succeeded
FROM ordered AS o
