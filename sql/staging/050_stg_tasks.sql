-- Task runs of runs that are not deleted, with outcome, the run's attempt and the estimated worker count (autoscale: (min + max) / 2, recorded in workers_basis).
SELECT
    t.workspace_id,
    t.run_id,
    t.job_run_id,
    t.job_id,
    t.task_key,
    coalesce(t.attempt_number, 0) AS attempt_number,
    coalesce(t.repair_id, 0) AS repair_id,
    r.attempt_number AS run_attempt_number,
    r.logical_run_id,
    t.start_time,
    t.end_time,
    t.queue_duration_ms,
    t.setup_duration_ms,
    t.execution_duration_ms,
    t.cleanup_duration_ms,
    t.duration_ms,
    t.life_cycle_state,
    t.result_state,
    t.termination_code,
    t.termination_type,
    t.is_active AS is_active,
    t.cluster_id,
    t.compute_kind,
    t.job_cluster_key,
    t.existing_cluster_id,
    t.node_type_id,
    t.driver_node_type_id,
    CASE
        WHEN t.num_workers IS NOT NULL THEN CAST(t.num_workers AS DOUBLE)
        WHEN t.autoscale_min_workers IS NOT NULL AND t.autoscale_max_workers IS NOT NULL
            THEN (t.autoscale_min_workers + t.autoscale_max_workers) / 2.0
    END AS workers_est,
    CASE
        WHEN t.num_workers IS NOT NULL THEN 'fixed'
        WHEN t.autoscale_min_workers IS NOT NULL AND t.autoscale_max_workers IS NOT NULL
            THEN 'autoscale_midpoint'
    END AS workers_basis,
    t.runtime_engine,
    t.instance_pool_id,
    t.driver_instance_pool_id,
    t.task_type,
    t.max_retries,
    t.timeout_seconds,
    t.iteration_count,
    CASE WHEN t.is_active THEN 'active' ELSE coalesce(c.outcome, 'other') END AS outcome
FROM tasks AS t
INNER JOIN stg_runs AS r ON t.workspace_id = r.workspace_id AND t.job_run_id = r.run_id
LEFT JOIN stg_result_classes AS c
    ON c.state = CASE
        WHEN t.life_cycle_state IN ('INTERNAL_ERROR', 'SKIPPED') THEN t.life_cycle_state
        ELSE t.result_state
    END
