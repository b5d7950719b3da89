-- Calibration factors from the runs billing covers in full (terminal, billed to their last work): per level, billed cost over the estimate of the same cluster instances. Levels: 'job' (job compute of one job), 'node_type' (cloud, SKU family, node type, Photon), 'sku' (cloud, SKU family), 'job_cluster' (one job on one all-purpose cluster, whose usage is shared by time), 'cluster' (an all-purpose cluster); 'serverless' (one job: billed DBUs per ms of serverless task time, price = billed cost per DBU); 'all_purpose_run' (a run's share of its all-purpose clusters' billing). Kept whole: rebuilt when billing, prices or the rate card change (a full refresh), read as is by an extract's refresh.
-- materialized: *
WITH covered AS (
    SELECT r.workspace_id, r.run_id, r.job_id, b.billed_serverless_dbus, b.billed_serverless_cost
    FROM stg_runs AS r
    INNER JOIN int_billed_runs AS b ON r.workspace_id = b.workspace_id AND r.run_id = b.job_run_id
    WHERE NOT r.is_active
        AND b.billed_cost IS NOT NULL
        -- Billing lags: a run whose last work ends after its last billed slice is not complete.
        AND b.billed_until >= (
            SELECT max(i.last_end) - INTERVAL 5 MINUTE FROM int_cluster_instances AS i
            WHERE i.workspace_id = r.workspace_id AND i.job_run_id = r.run_id
        )
),
instance_billing AS (
    SELECT workspace_id, job_run_id, cluster_id, sum(cost) AS billed_cost
    FROM int_billing_priced
    WHERE job_run_id IS NOT NULL AND cluster_id IS NOT NULL AND usage_unit = 'DBU'
        AND sku_family <> 'JOBS_SERVERLESS_COMPUTE'
    GROUP BY workspace_id, job_run_id, cluster_id
),
all_purpose_billing AS (
    SELECT workspace_id, job_run_id, existing_cluster_id AS cluster_id,
        sum(billed_dbus) AS billed_dbus, sum(billed_cost) AS billed_cost
    FROM int_all_purpose_usage
    WHERE billed_cost IS NOT NULL
    GROUP BY workspace_id, job_run_id, existing_cluster_id
),
billed_instances AS (
    SELECT i.workspace_id, i.job_id, i.compute_kind, i.cluster_id, i.cloud, i.sku_family,
        i.node_type_id, i.is_photon, i.cost_est, b.billed_cost
    FROM int_cluster_instances AS i
    SEMI JOIN covered AS c ON i.workspace_id = c.workspace_id AND i.job_run_id = c.run_id
    INNER JOIN instance_billing AS b
        ON i.workspace_id = b.workspace_id AND i.job_run_id = b.job_run_id
        AND i.cluster_id = b.cluster_id
    WHERE i.compute_kind IN ('job_cluster', 'new_cluster') AND i.cost_est > 0
    UNION ALL
    SELECT i.workspace_id, i.job_id, i.compute_kind, i.cluster_id, i.cloud, i.sku_family,
        i.node_type_id, i.is_photon, i.cost_est, b.billed_cost
    FROM int_cluster_instances AS i
    INNER JOIN all_purpose_billing AS b
        ON i.workspace_id = b.workspace_id AND i.job_run_id = b.job_run_id
        AND i.instance_key = b.cluster_id
    WHERE i.compute_kind = 'existing_cluster' AND i.cost_est > 0
),
serverless_time AS (
    SELECT workspace_id, job_run_id, sum(uptime_ms) AS busy_ms
    FROM int_cluster_instances
    WHERE compute_kind = 'serverless'
    GROUP BY workspace_id, job_run_id
),
levels AS (
    SELECT workspace_id, 'job' AS level, job_id, NULL::BIGINT AS job_run_id,
        NULL AS cluster_id, NULL AS cloud, NULL AS sku_family, NULL AS node_type_id,
        NULL::BOOLEAN AS is_photon, NULL::DOUBLE AS billed_dbus, sum(billed_cost) AS billed_cost,
        sum(cost_est) AS cost_est, NULL::BIGINT AS busy_ms, count(*) AS instances
    FROM billed_instances
    WHERE compute_kind IN ('job_cluster', 'new_cluster')
    GROUP BY workspace_id, job_id
    UNION ALL
    SELECT workspace_id, 'node_type', NULL, NULL, NULL, cloud, sku_family, node_type_id,
        is_photon, NULL, sum(billed_cost), sum(cost_est), NULL, count(*)
    FROM billed_instances
    GROUP BY workspace_id, cloud, sku_family, node_type_id, is_photon
    UNION ALL
    SELECT workspace_id, 'sku', NULL, NULL, NULL, cloud, sku_family, NULL, NULL, NULL,
        sum(billed_cost), sum(cost_est), NULL, count(*)
    FROM billed_instances
    GROUP BY workspace_id, cloud, sku_family
    UNION ALL
    SELECT workspace_id, 'job_cluster', job_id, NULL, cluster_id, max(cloud), max(sku_family),
        NULL, NULL, NULL, sum(billed_cost), sum(cost_est), NULL, count(*)
    FROM billed_instances
    WHERE compute_kind = 'existing_cluster'
    GROUP BY workspace_id, job_id, cluster_id
    UNION ALL
    SELECT workspace_id, 'cluster', NULL, NULL, cluster_id, max(cloud), max(sku_family), NULL,
        NULL, NULL, sum(billed_cost), sum(cost_est), NULL, count(*)
    FROM billed_instances
    WHERE compute_kind = 'existing_cluster'
    GROUP BY workspace_id, cluster_id
    UNION ALL
    SELECT c.workspace_id, 'serverless', c.job_id, NULL, NULL, NULL, 'JOBS_SERVERLESS_COMPUTE',
        NULL, NULL, sum(c.billed_serverless_dbus), sum(c.billed_serverless_cost), NULL,
        sum(s.busy_ms), count(*)
    FROM covered AS c
    INNER JOIN serverless_time AS s ON c.workspace_id = s.workspace_id AND c.run_id = s.job_run_id
    WHERE c.billed_serverless_dbus > 0 AND s.busy_ms > 0
    GROUP BY c.workspace_id, c.job_id
    UNION ALL
    SELECT workspace_id, 'all_purpose_run', NULL, job_run_id, NULL, NULL, 'ALL_PURPOSE_COMPUTE',
        NULL, NULL, sum(billed_dbus), sum(billed_cost), NULL, NULL, count(*)
    FROM all_purpose_billing
    GROUP BY workspace_id, job_run_id
)
SELECT
    *,
    CASE
        WHEN level = 'serverless' THEN billed_dbus / busy_ms
        WHEN cost_est > 0 THEN billed_cost / cost_est
    END AS factor,
    CASE WHEN level = 'serverless' AND billed_dbus > 0 THEN billed_cost / billed_dbus END
        AS price_per_dbu
FROM levels
