-- Cost of every run: billed cost when billing data covers the run (cost_source 'billing'), else the estimate from its cluster instances ('estimate'); NULL with cost_null_reason when neither is known.
-- materialized: run_id
WITH est AS (
    SELECT
        workspace_id,
        job_run_id,
        CASE WHEN count(*) = count(dbus_est) THEN sum(dbus_est) END AS dbus_est,
        CASE WHEN count(*) = count(cost_est) THEN sum(cost_est) END AS cost_est,
        min(cost_null_reason) AS est_null_reason,
        -- 'inferred' as soon as one instance's DBU rate was inferred for an unknown node type.
        CASE WHEN bool_or(rate_basis = 'inferred') THEN 'inferred' ELSE max(rate_basis) END
            AS rate_basis,
        count(*) AS cluster_instances
    FROM int_cluster_instances
    GROUP BY workspace_id, job_run_id
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
    CASE
        WHEN b.job_run_id IS NOT NULL THEN b.billed_cost
        WHEN e.job_run_id IS NULL THEN 0.0
        ELSE e.cost_est
    END AS cost,
    CASE
        WHEN b.job_run_id IS NOT NULL THEN 'billing'
        WHEN e.job_run_id IS NULL OR e.cost_est IS NOT NULL THEN 'estimate'
    END AS cost_source,
    CASE
        WHEN b.job_run_id IS NOT NULL THEN b.billed_null_reason
        WHEN e.cost_est IS NULL THEN e.est_null_reason
    END AS cost_null_reason
FROM stg_runs AS r
LEFT JOIN est AS e ON r.workspace_id = e.workspace_id AND r.run_id = e.job_run_id
LEFT JOIN int_billed_runs AS b ON r.workspace_id = b.workspace_id AND r.run_id = b.job_run_id
