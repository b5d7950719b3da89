-- Billed DBUs and cost per job run (usage_metadata.job_run_id), summing every record type; repairs bill to the same run. The serverless part apart, and billed_until = the end of its last billed slice.
SELECT
    workspace_id,
    job_run_id,
    sum(usage_quantity) AS billed_dbus,
    CASE WHEN count(*) = count(price_per_dbu) THEN sum(cost) END AS billed_cost,
    CASE WHEN count(*) > count(price_per_dbu) THEN 'billing row without a price: ' || min(CASE WHEN price_per_dbu IS NULL THEN sku_name END) END
        AS billed_null_reason,
    coalesce(sum(usage_quantity) FILTER (WHERE sku_family = 'JOBS_SERVERLESS_COMPUTE'), 0)
        AS billed_serverless_dbus,
    coalesce(sum(cost) FILTER (WHERE sku_family = 'JOBS_SERVERLESS_COMPUTE'), 0)
        AS billed_serverless_cost,
    max(usage_end_time) AS billed_until,
    count(*) AS billing_rows
FROM int_billing_priced
WHERE job_run_id IS NOT NULL AND usage_unit = 'DBU'
GROUP BY workspace_id, job_run_id
