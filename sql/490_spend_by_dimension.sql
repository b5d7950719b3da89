-- Spend and failures by owner and label: dimension is creator, run_as, tag (value "key=value", a run counts under each tag of its job), trigger or run_type.
WITH tagged AS (
    SELECT f.*, unnest(map_entries(f.tags)) AS tag
    FROM int_run_facts AS f
    WHERE f.tags IS NOT NULL
),
labelled AS (
    SELECT workspace_id, 'creator' AS dimension, creator AS value, outcome, cost FROM int_run_facts
    UNION ALL
    SELECT workspace_id, 'run_as', run_as, outcome, cost FROM int_run_facts
    UNION ALL
    SELECT workspace_id, 'trigger', trigger, outcome, cost FROM int_run_facts
    UNION ALL
    SELECT workspace_id, 'run_type', run_type, outcome, cost FROM int_run_facts
    UNION ALL
    SELECT workspace_id, 'tag', tag.key || '=' || tag.value, outcome, cost FROM tagged
)
SELECT
    workspace_id,
    dimension,
    coalesce(value, '(unknown)') AS value,
    count(*) AS runs,
    count(*) FILTER (WHERE outcome = 'failed') AS failed_runs,
    count(*) FILTER (WHERE outcome = 'failed')
        / CAST(nullif(count(*) FILTER (WHERE outcome <> 'active'), 0) AS DOUBLE) AS failure_rate,
    sum(cost) AS cost
FROM labelled
GROUP BY workspace_id, dimension, coalesce(value, '(unknown)')
ORDER BY workspace_id, dimension, cost DESC NULLS LAST, value
