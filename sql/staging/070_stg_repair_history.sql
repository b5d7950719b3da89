-- Repair history items (ORIGINAL has repair_id 0) of runs that are not deleted, with outcome.
SELECT
    h.workspace_id,
    h.job_run_id,
    h.repair_id,
    h.type,
    h.start_time,
    h.end_time,
    h.task_run_ids,
    CASE WHEN h.end_time IS NULL THEN 'active' ELSE coalesce(c.outcome, 'other') END AS outcome
FROM repair_history AS h
INNER JOIN stg_runs AS r ON h.workspace_id = r.workspace_id AND h.job_run_id = r.run_id
LEFT JOIN stg_result_classes AS c
    ON c.state = CASE
        WHEN h.life_cycle_state IN ('INTERNAL_ERROR', 'SKIPPED') THEN h.life_cycle_state
        ELSE h.result_state
    END
