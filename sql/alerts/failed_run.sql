-- Every failed run (result FAILED or TIMEDOUT, or life cycle INTERNAL_ERROR) that ended in the window.
SELECT
    f.workspace_id, f.job_id, f.job_name, f.run_id, r.run_page_url, f.end_time AS fired_at,
    coalesce(f.result_state, f.life_cycle_state) AS state, f.termination_code, r.state_message
FROM int_run_facts AS f
LEFT JOIN runs AS r ON r.workspace_id = f.workspace_id AND r.run_id = f.run_id
WHERE f.outcome = 'failed' AND NOT f.is_active AND f.end_time > $start AND f.end_time <= $now
ORDER BY f.end_time, f.workspace_id, f.run_id
