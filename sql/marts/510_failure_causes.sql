-- Why runs fail: failed task runs and iterations grouped by cause (signature) across jobs, with the jobs and tasks it hit, when it was first and last seen, what the failed attempts cost, how many a later retry or repair recovered, and an example error.
SELECT
    signature,
    arg_max(title, failed_at) AS title,
    arg_max(error_class, failed_at) AS error_class,
    count(*) AS failures,
    count(DISTINCT workspace_id || '/' || CAST(job_id AS VARCHAR)) AS jobs,
    count(DISTINCT workspace_id || '/' || CAST(job_id AS VARCHAR) || '/' || task_key) AS tasks,
    min(failed_at) AS first_seen,
    max(failed_at) AS last_seen,
    sum(cost) AS wasted_cost,
    count(*) FILTER (WHERE recovered) AS recovered,
    left(arg_max(error, failed_at), 500) AS example_error,
    rank() OVER (ORDER BY count(*) DESC) AS rank_by_failures,
    rank() OVER (ORDER BY sum(cost) DESC) AS rank_by_cost
FROM int_task_failures
GROUP BY signature
ORDER BY failures DESC, wasted_cost DESC, signature
