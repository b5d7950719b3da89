-- DBU/h of one node per node type: the rate card's (rate_basis 'rate_card', any workspace), else the rate the extract inferred for a workspace's node type the card lacks (rate_basis 'inferred', basis names the known type it came from).
SELECT
    CAST(NULL AS VARCHAR) AS workspace_id,
    r.cloud,
    r.name AS node_type_id,
    r.value AS dbu_per_hour,
    'rate_card' AS rate_basis,
    r.source AS basis
FROM stg_rate_card AS r
WHERE r.kind = 'node_type'
UNION ALL
SELECT
    n.workspace_id,
    n.cloud,
    n.node_type_id,
    n.dbu_per_hour,
    'inferred' AS rate_basis,
    n.inferred_from AS basis
FROM node_types AS n
WHERE n.dbu_per_hour IS NOT NULL
    AND n.node_type_id NOT IN (SELECT c.name FROM stg_rate_card AS c WHERE c.kind = 'node_type')
