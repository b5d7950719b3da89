-- Iterations of for-each tasks (runs not deleted), with outcome and the compute read from their raw JSON (parsed once per row, before the join, so the join never carries the JSON).
WITH parsed AS (
    SELECT
        workspace_id, run_id, parent_task_run_id, job_run_id, job_id, task_key, attempt_number,
        start_time, end_time, setup_duration_ms, duration_ms, is_active, cluster_id,
        life_cycle_state, result_state,
        json_extract_string(raw, [
            '$.job_cluster_key', '$.existing_cluster_id', '$.new_cluster.spark_version',
            '$.new_cluster.node_type_id', '$.new_cluster.driver_node_type_id',
            '$.new_cluster.num_workers', '$.new_cluster.autoscale.min_workers',
            '$.new_cluster.autoscale.max_workers', '$.new_cluster.runtime_engine'
        ]) AS f
    FROM task_iterations
)
SELECT
    i.workspace_id, i.run_id, i.parent_task_run_id, i.job_run_id, i.job_id, i.task_key,
    coalesce(i.attempt_number, 0) AS attempt_number,
    i.start_time, i.end_time, i.setup_duration_ms, i.duration_ms, i.is_active AS is_active, i.cluster_id,
    CASE
        WHEN i.f[1] IS NOT NULL THEN 'job_cluster'
        WHEN i.f[3] IS NOT NULL OR i.f[4] IS NOT NULL THEN 'new_cluster'
        WHEN i.f[2] IS NOT NULL THEN 'existing_cluster'
        ELSE 'serverless'
    END AS compute_kind,
    i.f[1] AS job_cluster_key,
    i.f[2] AS existing_cluster_id,
    i.f[4] AS node_type_id,
    coalesce(i.f[5], i.f[4]) AS driver_node_type_id,
    coalesce(CAST(i.f[6] AS DOUBLE), (CAST(i.f[7] AS DOUBLE) + CAST(i.f[8] AS DOUBLE)) / 2.0) AS workers_est,
    CASE WHEN i.f[6] IS NOT NULL THEN 'fixed' WHEN i.f[8] IS NOT NULL THEN 'autoscale_midpoint' END AS workers_basis,
    i.f[9] AS runtime_engine,
    CASE WHEN i.is_active THEN 'active' ELSE coalesce(c.outcome, 'other') END AS outcome
FROM parsed AS i
INNER JOIN stg_runs AS r ON i.workspace_id = r.workspace_id AND i.job_run_id = r.run_id
LEFT JOIN stg_result_classes AS c
    ON c.state = CASE
        WHEN i.life_cycle_state IN ('INTERNAL_ERROR', 'SKIPPED') THEN i.life_cycle_state
        ELSE i.result_state
    END
