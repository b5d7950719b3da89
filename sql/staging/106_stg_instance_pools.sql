-- Instance pools as instance-pools/get last described them (read at most daily): the node type a cluster drawn from the pool runs on; pools the API refused keep only their error.
SELECT
    p.workspace_id,
    p.instance_pool_id,
    p.instance_pool_name,
    p.node_type_id,
    p.fetched_at,
    p.error
FROM instance_pools AS p
