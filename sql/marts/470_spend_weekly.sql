-- Spend per ISO week (Monday, UTC) of the runs' start, with the change against the week before.
WITH weekly AS (
    SELECT
        workspace_id,
        run_week,
        count(*) AS runs,
        count(*) FILTER (WHERE outcome = 'failed') AS failed_runs,
        sum(cost) AS cost,
        count(*) FILTER (WHERE cost IS NULL) AS runs_without_cost
    FROM int_run_facts
    GROUP BY workspace_id, run_week
)
SELECT
    *,
    cost - lag(cost) OVER (PARTITION BY workspace_id ORDER BY run_week) AS change_vs_previous_week
FROM weekly
ORDER BY workspace_id, run_week
