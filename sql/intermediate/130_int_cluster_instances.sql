-- Estimated cost of each cluster instance of a run: uptime (first start to last end of its work; busy time for an all-purpose cluster) x DBU/h of driver + workers x Photon multiplier x price per DBU of its SKU. An autoscaling job cluster whose events were read counts its worker-seconds from them (workers_basis 'events'), else the (min + max) / 2 guess; rate_basis says whether the DBU rates came from the rate card or were inferred for a node type the card lacks.
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
-- Worker-milliseconds over the instance's uptime, from the cluster's worker intervals.
event_workers AS (
    SELECT
        i.workspace_id,
        i.job_run_id,
        i.instance_key,
        sum(
            w.workers * date_diff(
                'millisecond',
                greatest(w.valid_from, i.first_start),
                least(coalesce(w.valid_to, i.last_end), i.last_end)
            )
        ) AS worker_ms
    FROM instances AS i
    INNER JOIN stg_cluster_workers AS w
        ON i.workspace_id = w.workspace_id
        AND i.cluster_id = w.cluster_id
        AND w.valid_from < i.last_end
        AND coalesce(w.valid_to, i.last_end) > i.first_start
    WHERE i.workers_basis = 'autoscale_midpoint'
        AND i.compute_kind IN ('job_cluster', 'new_cluster')
        AND i.last_end > i.first_start
    GROUP BY i.workspace_id, i.job_run_id, i.instance_key
),
timed AS (
    SELECT
        i.workspace_id, i.job_run_id, i.instance_key, i.job_id, i.compute_kind, i.cluster_id,
        i.node_type_id, i.driver_node_type_id, i.is_photon, i.work_items, i.first_start,
        i.last_end, i.busy_ms,
        CASE
            WHEN e.worker_ms IS NOT NULL
                THEN e.worker_ms / CAST(date_diff('millisecond', i.first_start, i.last_end) AS DOUBLE)
            ELSE i.workers_est
        END AS workers_est,
        CASE WHEN e.worker_ms IS NOT NULL THEN 'events' ELSE i.workers_basis END AS workers_basis
    FROM instances AS i
    LEFT JOIN event_workers AS e
        ON i.workspace_id = e.workspace_id
        AND i.job_run_id = e.job_run_id
        AND i.instance_key = e.instance_key
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
        w.dbu_per_hour AS worker_dbu_per_hour,
        d.dbu_per_hour AS driver_dbu_per_hour,
        CASE
            WHEN w.rate_basis IS NULL OR d.rate_basis IS NULL THEN NULL
            WHEN w.rate_basis = 'inferred' OR d.rate_basis = 'inferred' THEN 'inferred'
            ELSE 'rate_card'
        END AS rate_basis,
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
    FROM timed AS i
    LEFT JOIN stg_node_rates AS w
        ON w.node_type_id = i.node_type_id
        AND (w.workspace_id IS NULL OR w.workspace_id = i.workspace_id)
    LEFT JOIN stg_node_rates AS d
        ON d.node_type_id = i.driver_node_type_id
        AND (d.workspace_id IS NULL OR d.workspace_id = i.workspace_id)
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
    rate_basis,
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
