-- Week-over-week movers: per job, cost of runs started in the last 7 days (to stg_now) against the 7 days before, biggest absolute change first.
WITH windows AS (
    SELECT
        f.workspace_id,
        f.job_id,
        f.job_name,
        f.cost,
        f.start_time >= n.now_ts - INTERVAL '7' DAY AS is_this_week
    FROM int_run_facts AS f
    CROSS JOIN stg_now AS n
    WHERE f.start_time >= n.now_ts - INTERVAL '14' DAY AND f.start_time <= n.now_ts
),
per_job AS (
    SELECT
        workspace_id,
        job_id,
        max(job_name) AS job_name,
        coalesce(sum(cost) FILTER (WHERE is_this_week), 0.0) AS cost_this_week,
        coalesce(sum(cost) FILTER (WHERE NOT is_this_week), 0.0) AS cost_previous_week,
        count(*) FILTER (WHERE is_this_week) AS runs_this_week,
        count(*) FILTER (WHERE NOT is_this_week) AS runs_previous_week
    FROM windows
    GROUP BY workspace_id, job_id
)
SELECT
    *,
    cost_this_week - cost_previous_week AS change,
    (cost_this_week - cost_previous_week) / nullif(cost_previous_week, 0) AS change_ratio
FROM per_job
ORDER BY abs(cost_this_week - cost_previous_week) DESC, workspace_id, job_id
