-- Spend and failures by owner and label: dimension is creator, run_as, tag (value "key=value", a run counts under each tag of its job), trigger or run_type.
WITH tagged AS (
    SELECT workspace_id, outcome, cost, unnest(map_entries(tags)) AS tag
    FROM int_run_facts
    WHERE tags IS NOT NULL
),
labelled AS (
    -- Each run once per dimension, in one pass over the runs.
    SELECT
        workspace_id,
        outcome,
        cost,
        unnest([
            {'dimension': 'creator', 'value': creator},
            {'dimension': 'run_as', 'value': run_as},
            {'dimension': 'trigger', 'value': trigger},
            {'dimension': 'run_type', 'value': run_type}
        ]) AS label
    FROM int_run_facts
    UNION ALL
    SELECT workspace_id, outcome, cost, {'dimension': 'tag', 'value': tag.key || '=' || tag.value}
    FROM tagged
)
SELECT
    workspace_id,
    label.dimension AS dimension,
    coalesce(label.value, '(unknown)') AS value,
    count(*) AS runs,
    count(*) FILTER (WHERE outcome = 'failed') AS failed_runs,
    count(*) FILTER (WHERE outcome = 'failed')
        / CAST(nullif(count(*) FILTER (WHERE outcome <> 'active'), 0) AS DOUBLE) AS failure_rate,
    sum(cost) AS cost
FROM labelled
GROUP BY workspace_id, label.dimension, coalesce(label.value, '(unknown)')
ORDER BY workspace_id, dimension, cost DESC NULLS LAST, value
