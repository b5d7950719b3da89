-- All-purpose clusters as clusters/get last described them (read at most daily), with the estimated worker count (autoscale: (min + max) / 2, recorded in workers_basis); clusters the API refused keep only their error.
SELECT
    c.workspace_id,
    c.cluster_id,
    c.cluster_name,
    c.node_type_id,
    coalesce(c.driver_node_type_id, c.node_type_id) AS driver_node_type_id,
    CASE
        WHEN c.num_workers IS NOT NULL THEN CAST(c.num_workers AS DOUBLE)
        WHEN c.autoscale_min_workers IS NOT NULL AND c.autoscale_max_workers IS NOT NULL
            THEN (c.autoscale_min_workers + c.autoscale_max_workers) / 2.0
    END AS workers_est,
    CASE
        WHEN c.num_workers IS NOT NULL THEN 'fixed'
        WHEN c.autoscale_min_workers IS NOT NULL AND c.autoscale_max_workers IS NOT NULL
            THEN 'autoscale_midpoint'
    END AS workers_basis,
    c.runtime_engine,
    c.instance_pool_id,
    c.driver_instance_pool_id,
    c.cluster_source,
    c.state,
    c.spark_version,
    c.fetched_at,
    c.error
FROM clusters AS c
