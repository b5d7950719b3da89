-- Failure causes per job: how often each cause failed the job's tasks, which tasks, when, at what cost, and its share of the job's failures.
SELECT
    workspace_id,
    job_id,
    max(job_name) AS job_name,
    signature,
    arg_max(title, failed_at) AS title,
    count(*) AS failures,
    count(DISTINCT task_key) AS tasks,
    min(failed_at) AS first_seen,
    max(failed_at) AS last_seen,
    sum(cost) AS wasted_cost,
    count(*) FILTER (WHERE recovered) AS recovered,
    count(*) / sum(count(*)) OVER (PARTITION BY workspace_id, job_id) AS share_of_job_failures
FROM int_task_failures
GROUP BY workspace_id, job_id, signature
ORDER BY workspace_id, job_id, failures DESC, signature
