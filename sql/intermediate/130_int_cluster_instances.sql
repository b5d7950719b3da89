-- Estimated cost of each cluster instance of a run: uptime (first start to last end of its work; busy time for an all-purpose cluster) x DBU/h of driver + workers x Photon multiplier x price per DBU of its SKU.
-- materialized: job_run_id
WITH instances AS (
    SELECT
        workspace_id,
        job_run_id,
        instance_key,
        max(job_id) AS job_id,
        max(compute_kind) AS compute_kind,
        max(cluster_id) AS cluster_id,
        max(node_type_id) AS node_type_id,
        max(driver_node_type_id) AS driver_node_type_id,
        max(workers_est) AS workers_est,
        max(workers_basis) AS workers_basis,
        bool_or(runtime_engine = 'PHOTON') AS is_photon,
        count(*) AS work_items,
        min(start_time) AS first_start,
        max(end_time) AS last_end,
        sum(elapsed_ms) AS busy_ms
    FROM int_work_items
    GROUP BY workspace_id, job_run_id, instance_key
),
priced AS (
    SELECT
        i.*,
        CASE
            WHEN i.first_start IS NULL OR i.last_end IS NULL THEN 0
            WHEN i.compute_kind = 'existing_cluster' THEN i.busy_ms
            ELSE date_diff('millisecond', i.first_start, i.last_end)
        END AS uptime_ms,
        CASE i.compute_kind
            WHEN 'existing_cluster' THEN 'ALL_PURPOSE_COMPUTE'
            WHEN 'serverless' THEN 'JOBS_SERVERLESS_COMPUTE'
            ELSE 'JOBS_COMPUTE'
        END AS sku_family,
        w.cloud,
        w.value AS worker_dbu_per_hour,
        d.value AS driver_dbu_per_hour,
        CASE
            -- Photon burns more DBU/h per cloud and compute type; then the cloud's plain
            -- 'photon' factor, then one for any cloud (cloud NULL, e.g. a user's import).
            WHEN i.is_photon THEN coalesce(
                (SELECT max(m.value) FROM stg_rate_card AS m
                 WHERE m.kind = 'multiplier' AND m.cloud = w.cloud
                   AND m.name = CASE WHEN i.compute_kind = 'existing_cluster'
                                     THEN 'photon_all_purpose' ELSE 'photon_jobs' END),
                (SELECT max(m.value) FROM stg_rate_card AS m
                 WHERE m.kind = 'multiplier' AND m.cloud = w.cloud AND m.name = 'photon'),
                (SELECT max(m.value) FROM stg_rate_card AS m
                 WHERE m.kind = 'multiplier' AND m.cloud IS NULL AND m.name = 'photon'),
                1.0
            )
            ELSE 1.0
        END AS photon_multiplier
    FROM instances AS i
    LEFT JOIN stg_rate_card AS w ON w.kind = 'node_type' AND w.name = i.node_type_id
    LEFT JOIN stg_rate_card AS d ON d.kind = 'node_type' AND d.name = i.driver_node_type_id
),
rated AS (
    SELECT
        p.*,
        s.value AS price_per_dbu_est,
        (p.driver_dbu_per_hour + p.workers_est * p.worker_dbu_per_hour) * p.photon_multiplier
            AS dbu_per_hour_est
    FROM priced AS p
    LEFT JOIN stg_rate_card AS s
        ON s.kind = 'sku' AND s.name = p.sku_family AND s.cloud = p.cloud
)
SELECT
    workspace_id,
    job_run_id,
    job_id,
    instance_key,
    cluster_id,
    compute_kind,
    sku_family,
    cloud,
    node_type_id,
    driver_node_type_id,
    workers_est,
    workers_basis,
    is_photon,
    photon_multiplier,
    work_items,
    first_start,
    last_end,
    busy_ms,
    uptime_ms,
    dbu_per_hour_est,
    price_per_dbu_est,
    uptime_ms / 3600000.0 * dbu_per_hour_est AS dbus_est,
    uptime_ms / 3600000.0 * dbu_per_hour_est * price_per_dbu_est AS cost_est,
    CASE
        WHEN compute_kind = 'serverless' THEN 'serverless: cost needs billing data'
        WHEN node_type_id IS NULL AND compute_kind = 'existing_cluster'
            THEN 'all-purpose cluster: node types unknown'
        WHEN node_type_id IS NULL THEN 'cluster spec unknown'
        WHEN worker_dbu_per_hour IS NULL THEN 'node type not in rate card: ' || node_type_id
        WHEN driver_dbu_per_hour IS NULL THEN 'node type not in rate card: ' || driver_node_type_id
        WHEN workers_est IS NULL THEN 'worker count unknown'
        WHEN price_per_dbu_est IS NULL THEN 'no rate card price for ' || sku_family || ' on ' || cloud
    END AS cost_null_reason
FROM rated
