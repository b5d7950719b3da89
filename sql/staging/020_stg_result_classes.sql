-- Reliability class of a final state: result_state, or the life cycle INTERNAL_ERROR / SKIPPED, which win over it (API reference section 5).
SELECT state, outcome
FROM (
    VALUES
        ('SUCCESS', 'succeeded'),
        ('SUCCESS_WITH_FAILURES', 'succeeded'),
        ('FAILED', 'failed'),
        ('TIMEDOUT', 'failed'),
        ('CANCELED', 'canceled'),
        ('MAXIMUM_CONCURRENT_RUNS_REACHED', 'skipped'),
        ('EXCLUDED', 'skipped'),
        ('UPSTREAM_FAILED', 'skipped'),
        ('UPSTREAM_CANCELED', 'skipped'),
        ('DISABLED', 'skipped'),
        ('INTERNAL_ERROR', 'failed'),
        ('SKIPPED', 'skipped')
) AS c (state, outcome)
