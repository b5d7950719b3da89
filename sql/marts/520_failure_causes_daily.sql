-- Failures per cause and UTC day: how often each cause hit, how many jobs, at what cost.
SELECT
    CAST(failed_at AT TIME ZONE 'UTC' AS DATE) AS failure_date,
    signature,
    arg_max(title, failed_at) AS title,
    count(*) AS failures,
    count(DISTINCT workspace_id || '/' || CAST(job_id AS VARCHAR)) AS jobs,
    sum(cost) AS wasted_cost
FROM int_task_failures
GROUP BY failure_date, signature
ORDER BY failure_date, failures DESC, signature
