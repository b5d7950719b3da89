-- Cluster setup overhead per job: setup time of finished task runs and iterations as a share of their run time (setup + execution + cleanup).
WITH per_run AS (
    SELECT
        workspace_id,
        job_id,
        job_run_id,
        count(*) AS work_items,
        sum(coalesce(setup_duration_ms, 0)) AS setup_ms,
        sum(elapsed_ms) AS run_time_ms
    FROM int_work_items
    WHERE NOT is_active AND compute_kind <> 'serverless'
    GROUP BY workspace_id, job_id, job_run_id
)
SELECT
    w.workspace_id,
    w.job_id,
    max(f.job_name) AS job_name,
    count(DISTINCT w.job_run_id) AS runs,
    sum(w.work_items) AS work_items,
    sum(w.setup_ms) AS setup_ms,
    sum(w.run_time_ms) AS run_time_ms,
    sum(w.setup_ms) / CAST(nullif(sum(w.run_time_ms), 0) AS DOUBLE) AS setup_share
FROM per_run AS w
LEFT JOIN int_run_facts AS f ON w.workspace_id = f.workspace_id AND w.job_run_id = f.run_id
GROUP BY w.workspace_id, w.job_id
ORDER BY setup_share DESC NULLS LAST, w.workspace_id, w.job_id
