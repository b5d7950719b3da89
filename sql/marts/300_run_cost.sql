-- Cost per run, most expensive first: billed when billing data covers it (cost_source), else estimated (*_est); cost NULL with cost_null_reason when unknown; rate_basis 'inferred' when a DBU rate was inferred for a node type the rate card lacks.
SELECT
    workspace_id, run_id, job_id, job_name, run_name, run_type, trigger, start_time, run_date,
    outcome, duration_ms, dbus_est, cost_est, billed_dbus, billed_cost, cost, cost_source,
    cost_null_reason, rate_basis
FROM int_run_facts
ORDER BY cost DESC NULLS LAST, workspace_id, run_id
