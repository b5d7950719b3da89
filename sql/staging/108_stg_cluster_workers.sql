-- Worker counts of autoscaling job clusters from their events: each row holds from `since` until the next row of the cluster (valid_from reaches back to the epoch for the first, so work before the cluster's first event counts the first count); valid_to is NULL for the last row.
SELECT
    w.workspace_id,
    w.cluster_id,
    w.since,
    CASE
        WHEN lag(w.since) OVER (PARTITION BY w.workspace_id, w.cluster_id ORDER BY w.since) IS NULL
            THEN CAST('1970-01-01 00:00:00+00' AS TIMESTAMPTZ)
        ELSE w.since
    END AS valid_from,
    lead(w.since) OVER (PARTITION BY w.workspace_id, w.cluster_id ORDER BY w.since) AS valid_to,
    w.workers
FROM cluster_workers AS w
