-- Cost of each task run: its share of each cluster instance it used (split by elapsed time; a for-each task carries its iterations), scaled to the run's cost so billed runs are split the same way.
-- materialized: job_run_id
WITH item_share AS (
    SELECT
        w.workspace_id,
        w.job_run_id,
        w.task_run_id,
        w.elapsed_ms,
        c.dbus_est * CASE
            WHEN sum(w.elapsed_ms) OVER instance > 0 THEN w.elapsed_ms / sum(w.elapsed_ms) OVER instance
            ELSE 1.0 / count(*) OVER instance
        END AS dbus_est,
        c.cost_est * CASE
            WHEN sum(w.elapsed_ms) OVER instance > 0 THEN w.elapsed_ms / sum(w.elapsed_ms) OVER instance
            ELSE 1.0 / count(*) OVER instance
        END AS cost_est,
        c.cost_est IS NULL AS cost_unknown
    FROM int_work_items AS w
    INNER JOIN int_cluster_instances AS c
        ON w.workspace_id = c.workspace_id
        AND w.job_run_id = c.job_run_id
        AND w.instance_key = c.instance_key
    WINDOW instance AS (PARTITION BY w.workspace_id, w.job_run_id, w.instance_key)
),
per_task AS (
    SELECT
        workspace_id,
        job_run_id,
        task_run_id,
        sum(elapsed_ms) AS elapsed_ms,
        CASE WHEN bool_or(cost_unknown) THEN NULL ELSE sum(dbus_est) END AS dbus_est,
        CASE WHEN bool_or(cost_unknown) THEN NULL ELSE sum(cost_est) END AS cost_est
    FROM item_share
    GROUP BY workspace_id, job_run_id, task_run_id
),
shared AS (
    SELECT
        t.workspace_id,
        t.job_run_id,
        t.run_id AS task_run_id,
        coalesce(p.elapsed_ms, 0) AS elapsed_ms,
        CASE WHEN p.task_run_id IS NULL THEN 0.0 ELSE p.dbus_est END AS dbus_est,
        CASE WHEN p.task_run_id IS NULL THEN 0.0 ELSE p.cost_est END AS cost_est
    FROM stg_tasks AS t
    LEFT JOIN per_task AS p
        ON t.workspace_id = p.workspace_id AND t.run_id = p.task_run_id
)
SELECT
    s.workspace_id,
    s.job_run_id,
    s.task_run_id,
    s.elapsed_ms,
    s.dbus_est,
    s.cost_est,
    -- The task's share of its run: by estimated cost when the run's estimate is known, else by time.
    rc.cost * CASE
        WHEN rc.cost_est > 0 THEN s.cost_est / rc.cost_est
        WHEN sum(s.elapsed_ms) OVER run > 0 THEN s.elapsed_ms / sum(s.elapsed_ms) OVER run
        ELSE 1.0 / count(*) OVER run
    END AS cost,
    rc.cost_source
FROM shared AS s
INNER JOIN int_run_cost AS rc ON s.workspace_id = rc.workspace_id AND s.job_run_id = rc.run_id
WINDOW run AS (PARTITION BY s.workspace_id, s.job_run_id)
