-- Jobs whose tasks run on all-purpose (existing) clusters, with the billed cluster DBUs attributed to them by time and the estimated saving had they used job clusters (same DBUs at the JOBS_COMPUTE price).
SELECT
    u.workspace_id,
    u.job_id,
    max(f.job_name) AS job_name,
    count(*) AS task_runs,
    count(DISTINCT u.existing_cluster_id) AS clusters,
    sum(u.duration_ms) / 3600000.0 AS task_hours,
    sum(u.billed_dbus) AS billed_dbus,
    sum(u.billed_cost) AS all_purpose_cost,
    sum(u.billed_dbus * p.value) AS job_cluster_cost_est,
    sum(u.billed_cost) - sum(u.billed_dbus * p.value) AS saving_est,
    CASE
        WHEN sum(u.billed_dbus) IS NULL THEN 'no billing data for these clusters; import billing'
        WHEN sum(u.billed_dbus * p.value) IS NULL THEN 'no JOBS_COMPUTE price in the rate card'
    END AS cost_null_reason
FROM int_all_purpose_usage AS u
LEFT JOIN int_run_facts AS f ON u.workspace_id = f.workspace_id AND u.job_run_id = f.run_id
LEFT JOIN stg_rate_card AS p ON p.kind = 'sku' AND p.name = 'JOBS_COMPUTE' AND p.cloud = u.cloud
GROUP BY u.workspace_id, u.job_id
ORDER BY saving_est DESC NULLS LAST, task_hours DESC, u.workspace_id, u.job_id
