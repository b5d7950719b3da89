-- Everything that held compute: task runs with compute, and for-each iterations (a job-cluster iteration takes its node spec from a task of the run on the same job cluster; work on an all-purpose cluster takes it from the cluster's clusters/get row; a cluster on an instance pool takes its node types from the pool, the driver's from driver_instance_pool_id else the workers' pool). elapsed_ms runs to "now" while active.
-- materialized: job_run_id
WITH tasks AS (
    SELECT
        t.workspace_id, t.job_run_id, t.job_id, t.run_id, t.task_key, t.start_time, t.end_time,
        t.duration_ms, t.setup_duration_ms, t.is_active, t.compute_kind, t.cluster_id,
        t.job_cluster_key, t.existing_cluster_id,
        coalesce(t.node_type_id, wp.node_type_id) AS node_type_id,
        coalesce(t.driver_node_type_id, dp.node_type_id, wp.node_type_id) AS driver_node_type_id,
        t.workers_est, t.workers_basis, t.runtime_engine
    FROM stg_tasks AS t
    LEFT JOIN stg_instance_pools AS wp
        ON t.workspace_id = wp.workspace_id AND t.instance_pool_id = wp.instance_pool_id
    LEFT JOIN stg_instance_pools AS dp
        ON t.workspace_id = dp.workspace_id AND t.driver_instance_pool_id = dp.instance_pool_id
),
clusters AS (
    SELECT
        c.workspace_id, c.cluster_id,
        coalesce(c.node_type_id, wp.node_type_id) AS node_type_id,
        coalesce(
            c.driver_node_type_id, dp.node_type_id, wp.node_type_id
        ) AS driver_node_type_id,
        c.workers_est, c.workers_basis, c.runtime_engine
    FROM stg_clusters AS c
    LEFT JOIN stg_instance_pools AS wp
        ON c.workspace_id = wp.workspace_id AND c.instance_pool_id = wp.instance_pool_id
    LEFT JOIN stg_instance_pools AS dp
        ON c.workspace_id = dp.workspace_id AND c.driver_instance_pool_id = dp.instance_pool_id
),
items AS (
    SELECT
        workspace_id, job_run_id, job_id, run_id AS item_run_id, run_id AS task_run_id,
        task_key, 'task' AS item_kind, start_time, end_time, duration_ms, setup_duration_ms,
        is_active, compute_kind, cluster_id, job_cluster_key, existing_cluster_id,
        node_type_id, driver_node_type_id, workers_est, workers_basis, runtime_engine
    FROM tasks
    WHERE compute_kind IS NOT NULL
    UNION ALL
    SELECT
        workspace_id, job_run_id, job_id, run_id, parent_task_run_id,
        task_key, 'iteration', start_time, end_time, duration_ms, setup_duration_ms,
        is_active, compute_kind, cluster_id, job_cluster_key, existing_cluster_id,
        node_type_id, driver_node_type_id, workers_est, workers_basis, runtime_engine
    FROM stg_task_iterations
),
job_cluster_specs AS (
    SELECT
        workspace_id, job_run_id, job_cluster_key,
        max(node_type_id) AS node_type_id,
        max(driver_node_type_id) AS driver_node_type_id,
        max(workers_est) AS workers_est,
        max(workers_basis) AS workers_basis,
        max(runtime_engine) AS runtime_engine
    FROM tasks
    WHERE job_cluster_key IS NOT NULL AND node_type_id IS NOT NULL
    GROUP BY workspace_id, job_run_id, job_cluster_key
)
SELECT
    i.workspace_id,
    i.job_run_id,
    i.job_id,
    i.item_run_id,
    i.task_run_id,
    i.task_key,
    i.item_kind,
    i.start_time,
    CASE WHEN i.is_active AND i.start_time IS NOT NULL THEN n.now_ts ELSE i.end_time END AS end_time,
    i.is_active,
    i.setup_duration_ms,
    CASE
        WHEN i.start_time IS NULL THEN 0
        WHEN i.is_active THEN date_diff('millisecond', i.start_time, n.now_ts)
        ELSE coalesce(i.duration_ms, date_diff('millisecond', i.start_time, i.end_time), 0)
    END AS elapsed_ms,
    i.compute_kind,
    i.cluster_id,
    i.job_cluster_key,
    i.existing_cluster_id,
    -- One cluster instance per distinct cluster_id in the run; work without one stands alone.
    CASE
        WHEN i.compute_kind = 'serverless' OR i.cluster_id IS NULL
            THEN 'item:' || CAST(i.item_run_id AS VARCHAR)
        ELSE i.cluster_id
    END AS instance_key,
    coalesce(i.node_type_id, s.node_type_id, c.node_type_id) AS node_type_id,
    coalesce(i.driver_node_type_id, s.driver_node_type_id, c.driver_node_type_id)
        AS driver_node_type_id,
    coalesce(i.workers_est, s.workers_est, c.workers_est) AS workers_est,
    coalesce(i.workers_basis, s.workers_basis, c.workers_basis) AS workers_basis,
    coalesce(i.runtime_engine, s.runtime_engine, c.runtime_engine) AS runtime_engine
FROM items AS i
CROSS JOIN stg_now AS n
LEFT JOIN job_cluster_specs AS s
    ON i.workspace_id = s.workspace_id
    AND i.job_run_id = s.job_run_id
    AND i.job_cluster_key = s.job_cluster_key
    AND i.node_type_id IS NULL
LEFT JOIN clusters AS c
    ON i.workspace_id = c.workspace_id
    AND i.existing_cluster_id = c.cluster_id
    AND i.node_type_id IS NULL
