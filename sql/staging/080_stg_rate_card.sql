-- The rate card: DBU/h per node type, price per DBU per SKU, and the Photon multiplier (node types and SKUs are per cloud; the multiplier's cloud may be NULL = any).
SELECT kind, upper(cloud) AS cloud, name, value, currency, source, as_of
FROM rate_card
