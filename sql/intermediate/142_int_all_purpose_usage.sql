-- Task runs on all-purpose (existing) clusters with the billed DBUs of that cluster attributed by time: each hourly billing slice is split among the overlapping task runs by overlap, idle time left unattributed.
WITH tasks AS (
    SELECT workspace_id, job_run_id, job_id, run_id AS task_run_id, existing_cluster_id,
        start_time, coalesce(end_time, start_time) AS end_time, duration_ms
    FROM stg_tasks
    WHERE compute_kind = 'existing_cluster' AND start_time IS NOT NULL
),
slice_overlaps AS (
    SELECT
        t.workspace_id,
        t.task_run_id,
        b.record_id,
        b.usage_quantity,
        b.cost,
        b.sku_family,
        b.cloud,
        date_diff('millisecond', b.usage_start_time, b.usage_end_time) AS slice_ms,
        date_diff(
            'millisecond',
            greatest(t.start_time, b.usage_start_time),
            least(t.end_time, b.usage_end_time)
        ) AS overlap_ms
    FROM tasks AS t
    INNER JOIN int_billing_priced AS b
        ON t.workspace_id = b.workspace_id
        AND t.existing_cluster_id = b.cluster_id
        AND b.job_run_id IS NULL
        AND t.start_time < b.usage_end_time
        AND b.usage_start_time < t.end_time
),
shares AS (
    SELECT
        *,
        overlap_ms / CAST(greatest(sum(overlap_ms) OVER (PARTITION BY workspace_id, record_id), slice_ms) AS DOUBLE)
            AS share
    FROM slice_overlaps
    WHERE overlap_ms > 0
),
attributed AS (
    SELECT
        workspace_id,
        task_run_id,
        sum(usage_quantity * share) AS billed_dbus,
        sum(cost * share) AS billed_cost,
        max(cloud) AS cloud
    FROM shares
    GROUP BY workspace_id, task_run_id
)
SELECT
    t.workspace_id,
    t.job_run_id,
    t.job_id,
    t.task_run_id,
    t.existing_cluster_id,
    coalesce(t.duration_ms, date_diff('millisecond', t.start_time, t.end_time)) AS duration_ms,
    a.billed_dbus,
    a.billed_cost,
    a.cloud
FROM tasks AS t
LEFT JOIN attributed AS a ON t.workspace_id = a.workspace_id AND t.task_run_id = a.task_run_id
