-- Runs with task retries or repairs: how many, time to recover (first failed attempt's end to the end of the first successful repair, or of the run when retries alone recovered it) and what the extra attempts cost.
WITH repairs AS (
    SELECT workspace_id, job_run_id, min(end_time) AS first_successful_repair_end
    FROM stg_repair_history
    WHERE type = 'REPAIR' AND outcome = 'succeeded'
    GROUP BY workspace_id, job_run_id
),
recovered AS (
    SELECT
        f.*,
        rc.retry_cost,
        rc.repair_cost,
        rc.rerun_attempt_cost,
        CASE
            WHEN rp.first_successful_repair_end IS NOT NULL THEN rp.first_successful_repair_end
            WHEN f.outcome = 'succeeded' AND f.first_failure_at IS NOT NULL THEN f.end_time
        END AS recovered_at
    FROM int_run_facts AS f
    LEFT JOIN int_rerun_cost AS rc ON f.workspace_id = rc.workspace_id AND f.run_id = rc.job_run_id
    LEFT JOIN repairs AS rp ON f.workspace_id = rp.workspace_id AND f.run_id = rp.job_run_id
    WHERE f.retried_tasks > 0 OR f.repair_count > 0
)
SELECT
    workspace_id,
    run_id,
    job_id,
    job_name,
    start_time,
    outcome,
    retried_tasks,
    repair_count AS repairs,
    repaired_tasks,
    rerun_attempts,
    first_failure_at,
    recovered_at,
    date_diff('millisecond', first_failure_at, recovered_at) AS time_to_recover_ms,
    retry_cost,
    repair_cost,
    rerun_attempt_cost,
    cost
FROM recovered
ORDER BY start_time DESC, workspace_id, run_id
