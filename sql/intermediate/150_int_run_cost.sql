-- Cost of every run: billed cost when billing covers the run (cost_source 'billing': its job-run usage plus its time share of all-purpose clusters' usage); else the estimate calibrated against billing (cost_source 'calibrated': each cluster instance's estimate x the billed/estimated factor of the same job (on an all-purpose cluster: of the same job there, then of the cluster), then of its node type and SKU, then of its SKU; serverless task time x the job's billed DBUs per ms x its billed price); else the estimate from its cluster instances ('estimate'); NULL with cost_null_reason when none is known.
-- materialized: run_id
WITH cal AS (
    SELECT * FROM int_cost_calibration
),
instances AS (
    SELECT
        i.workspace_id,
        i.job_run_id,
        i.compute_kind,
        i.dbus_est,
        i.cost_est,
        i.cost_null_reason,
        i.rate_basis,
        CASE
            WHEN i.compute_kind = 'serverless' THEN s.factor * i.uptime_ms * s.price_per_dbu
            ELSE i.cost_est * coalesce(j.factor, jc.factor, c.factor, n.factor, k.factor, 1.0)
        END AS cost_calibrated,
        CASE
            WHEN i.compute_kind = 'serverless' THEN s.factor IS NOT NULL
            ELSE coalesce(j.factor, jc.factor, c.factor, n.factor, k.factor) IS NOT NULL
        END AS is_calibrated
    FROM int_cluster_instances AS i
    LEFT JOIN cal AS j
        ON j.level = 'job' AND i.compute_kind IN ('job_cluster', 'new_cluster')
        AND i.workspace_id = j.workspace_id AND i.job_id = j.job_id
    LEFT JOIN cal AS jc
        ON jc.level = 'job_cluster' AND i.compute_kind = 'existing_cluster'
        AND i.workspace_id = jc.workspace_id AND i.job_id = jc.job_id
        AND i.instance_key = jc.cluster_id
    LEFT JOIN cal AS c
        ON c.level = 'cluster' AND i.compute_kind = 'existing_cluster'
        AND i.workspace_id = c.workspace_id AND i.instance_key = c.cluster_id
    LEFT JOIN cal AS n
        ON n.level = 'node_type' AND i.workspace_id = n.workspace_id AND i.cloud = n.cloud
        AND i.sku_family = n.sku_family AND i.node_type_id = n.node_type_id
        AND i.is_photon IS NOT DISTINCT FROM n.is_photon
    LEFT JOIN cal AS k
        ON k.level = 'sku' AND i.workspace_id = k.workspace_id AND i.cloud = k.cloud
        AND i.sku_family = k.sku_family
    LEFT JOIN cal AS s
        ON s.level = 'serverless' AND i.compute_kind = 'serverless'
        AND i.workspace_id = s.workspace_id AND i.job_id = s.job_id
),
est AS (
    SELECT
        workspace_id,
        job_run_id,
        CASE WHEN count(*) = count(dbus_est) THEN sum(dbus_est) END AS dbus_est,
        CASE WHEN count(*) = count(cost_est) THEN sum(cost_est) END AS cost_est,
        CASE WHEN count(*) = count(cost_calibrated) THEN sum(cost_calibrated) END
            AS cost_calibrated,
        bool_or(is_calibrated) AS is_calibrated,
        min(cost_null_reason) FILTER (WHERE cost_calibrated IS NULL) AS calibrated_null_reason,
        min(cost_null_reason) AS est_null_reason,
        -- 'inferred' as soon as one instance's DBU rate was inferred for an unknown node type.
        CASE WHEN bool_or(rate_basis = 'inferred') THEN 'inferred' ELSE max(rate_basis) END
            AS rate_basis,
        count(*) AS cluster_instances
    FROM instances
    GROUP BY workspace_id, job_run_id
),
billed AS (
    SELECT
        coalesce(b.workspace_id, a.workspace_id) AS workspace_id,
        coalesce(b.job_run_id, a.job_run_id) AS job_run_id,
        coalesce(b.billed_dbus, 0) + coalesce(a.billed_dbus, 0) AS billed_dbus,
        CASE WHEN b.job_run_id IS NULL OR b.billed_cost IS NOT NULL
            THEN coalesce(b.billed_cost, 0) + coalesce(a.billed_cost, 0) END AS billed_cost,
        b.billed_null_reason
    FROM int_billed_runs AS b
    FULL JOIN (SELECT * FROM cal WHERE level = 'all_purpose_run') AS a
        ON b.workspace_id = a.workspace_id AND b.job_run_id = a.job_run_id
)
SELECT
    r.workspace_id,
    r.run_id,
    r.job_id,
    coalesce(e.cluster_instances, 0) AS cluster_instances,
    CASE WHEN e.job_run_id IS NULL THEN 0.0 ELSE e.dbus_est END AS dbus_est,
    CASE WHEN e.job_run_id IS NULL THEN 0.0 ELSE e.cost_est END AS cost_est,
    e.rate_basis,
    b.billed_dbus,
    b.billed_cost,
    CASE WHEN e.is_calibrated THEN e.cost_calibrated END AS cost_calibrated,
    CASE
        WHEN b.job_run_id IS NOT NULL THEN b.billed_cost
        WHEN e.job_run_id IS NULL THEN 0.0
        WHEN e.is_calibrated THEN e.cost_calibrated
        ELSE e.cost_est
    END AS cost,
    CASE
        WHEN b.job_run_id IS NOT NULL THEN 'billing'
        WHEN e.job_run_id IS NULL THEN 'estimate'
        WHEN e.is_calibrated AND e.cost_calibrated IS NOT NULL THEN 'calibrated'
        WHEN e.cost_est IS NOT NULL THEN 'estimate'
    END AS cost_source,
    CASE
        WHEN b.job_run_id IS NOT NULL THEN b.billed_null_reason
        WHEN e.is_calibrated AND e.cost_calibrated IS NULL THEN e.calibrated_null_reason
        WHEN NOT e.is_calibrated AND e.cost_est IS NULL THEN e.est_null_reason
    END AS cost_null_reason
FROM stg_runs AS r
LEFT JOIN est AS e ON r.workspace_id = e.workspace_id AND r.run_id = e.job_run_id
LEFT JOIN billed AS b ON r.workspace_id = b.workspace_id AND r.run_id = b.job_run_id
