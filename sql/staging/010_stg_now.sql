-- The one "now" of every view: the latest extracted_at in the store, so answers do not drift between queries and tests are deterministic (the wall clock only for an empty store).
SELECT coalesce(max(e.extracted_at), current_timestamp) AS now_ts
FROM (
    SELECT extracted_at FROM runs
    UNION ALL
    SELECT extracted_at FROM jobs
) AS e
