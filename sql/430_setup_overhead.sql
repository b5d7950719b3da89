-- Cluster setup overhead per job: setup time of finished task runs and iterations as a share of their run time (setup + execution + cleanup).
SELECT
    w.workspace_id,
    w.job_id,
    max(f.job_name) AS job_name,
    count(DISTINCT w.job_run_id) AS runs,
    count(*) AS work_items,
    sum(coalesce(w.setup_duration_ms, 0)) AS setup_ms,
    sum(w.elapsed_ms) AS run_time_ms,
    sum(coalesce(w.setup_duration_ms, 0)) / CAST(nullif(sum(w.elapsed_ms), 0) AS DOUBLE) AS setup_share
FROM int_work_items AS w
LEFT JOIN int_run_facts AS f ON w.workspace_id = f.workspace_id AND w.job_run_id = f.run_id
WHERE NOT w.is_active AND w.compute_kind <> 'serverless'
GROUP BY w.workspace_id, w.job_id
ORDER BY setup_share DESC NULLS LAST, w.workspace_id, w.job_id
