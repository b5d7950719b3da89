-- Imported system.billing.usage rows (all record types, so corrections net out), with the SKU family used to find a rate card price.
SELECT
    workspace_id,
    record_id,
    account_id,
    sku_name,
    upper(cloud) AS cloud,
    CASE
        WHEN sku_name LIKE '%JOBS_SERVERLESS%' THEN 'JOBS_SERVERLESS_COMPUTE'
        WHEN sku_name LIKE '%ALL_PURPOSE_SERVERLESS%' THEN 'ALL_PURPOSE_SERVERLESS_COMPUTE'
        WHEN sku_name LIKE '%ALL_PURPOSE%' THEN 'ALL_PURPOSE_COMPUTE'
        WHEN sku_name LIKE '%JOBS_COMPUTE%' THEN 'JOBS_COMPUTE'
        ELSE sku_name
    END AS sku_family,
    usage_start_time,
    usage_end_time,
    usage_date,
    usage_unit,
    usage_quantity,
    record_type,
    billing_origin_product,
    job_id,
    job_run_id,
    cluster_id,
    node_type,
    run_as,
    is_serverless,
    is_photon
FROM billing_usage
