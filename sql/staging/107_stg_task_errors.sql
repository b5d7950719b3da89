-- The error of each failed task run and for-each iteration of runs that are not deleted, as runs/get-output gave it (or the state message), with its failure signature and title.
SELECT
    e.workspace_id,
    e.run_id,
    e.job_run_id,
    e.job_id,
    e.task_key,
    e.is_iteration,
    e.failed_at,
    e.status,
    e.error,
    e.error_trace,
    e.error_trace_bytes,
    e.state_message,
    e.termination_code,
    e.result_state,
    coalesce(e.signature, 'unsigned') AS signature,
    coalesce(e.title, left(e.error, 120), '(no error text)') AS title,
    e.error_class,
    e.signature_version,
    e.fetched_at
FROM task_errors AS e
INNER JOIN runs AS r ON e.workspace_id = r.workspace_id AND e.job_run_id = r.run_id
WHERE r.deleted_at IS NULL
