-- Failure causes first seen in the last 7 days (new_in_24h: in the last 24 hours), before "now" (stg_now), with how often and where they hit since.
SELECT
    c.signature,
    c.title,
    c.first_seen,
    c.last_seen,
    c.failures,
    c.jobs,
    c.wasted_cost,
    c.first_seen >= n.now_ts - INTERVAL '24' HOUR AS new_in_24h,
    c.example_error
FROM failure_causes AS c
CROSS JOIN stg_now AS n
WHERE c.first_seen >= n.now_ts - INTERVAL '7' DAY
ORDER BY c.first_seen DESC, c.signature
