-- Billed DBUs and cost per job run (usage_metadata.job_run_id), summing every record type; repairs bill to the same run.
SELECT
    workspace_id,
    job_run_id,
    sum(usage_quantity) AS billed_dbus,
    CASE WHEN count(*) = count(price_per_dbu) THEN sum(cost) END AS billed_cost,
    CASE WHEN count(*) > count(price_per_dbu) THEN 'billing row without a price: ' || min(CASE WHEN price_per_dbu IS NULL THEN sku_name END) END
        AS billed_null_reason,
    count(*) AS billing_rows
FROM int_billing_priced
WHERE job_run_id IS NOT NULL AND usage_unit = 'DBU'
GROUP BY workspace_id, job_run_id
