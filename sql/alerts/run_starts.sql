-- The start times of a job's stored runs between $lo and $hi, for the missed-schedule rule.
SELECT start_time FROM runs
WHERE workspace_id = $workspace_id AND job_id = $job_id AND deleted_at IS NULL
    AND start_time >= $lo AND start_time <= $hi
ORDER BY start_time
