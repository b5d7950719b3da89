-- Every stored job's name and tags, for rules limited to jobs by name or tag.
SELECT workspace_id, job_id, name, tags FROM jobs
