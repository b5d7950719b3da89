-- The load benchmark's yardstick: DuckDB's own JSON reader loading the same runs into the same
-- four tables. Each object is parsed once (json_transform); columns come by direct paths, with
-- no derived compute columns and no enum checks. {runs} holds one run per line, {iterations}
-- one for-each iteration per line (with the ids of its task run and job run).
CREATE TEMP TABLE src AS SELECT json AS j, json_transform(json, '{
    "run_id": "BIGINT", "job_id": "BIGINT", "run_name": "VARCHAR", "run_type": "VARCHAR",
    "trigger": "VARCHAR", "creator_user_name": "VARCHAR", "start_time": "BIGINT",
    "end_time": "BIGINT", "queue_duration": "BIGINT", "setup_duration": "BIGINT",
    "execution_duration": "BIGINT", "cleanup_duration": "BIGINT", "run_duration": "BIGINT",
    "attempt_number": "INTEGER", "original_attempt_run_id": "BIGINT", "run_page_url": "VARCHAR",
    "state": {"life_cycle_state": "VARCHAR", "result_state": "VARCHAR", "state_message": "VARCHAR"},
    "status": {"state": "VARCHAR", "termination_details": {"code": "VARCHAR", "type": "VARCHAR", "message": "VARCHAR"}},
    "tasks": ["JSON"], "repair_history": ["JSON"]}') AS r
FROM read_ndjson_objects('{runs}');
INSERT INTO runs SELECT
    '{ws}', r.run_id, r.job_id, r.run_name, r.run_type, r.trigger, r.creator_user_name,
    make_timestamptz(nullif(r.start_time, 0) * 1000), make_timestamptz(nullif(r.end_time, 0) * 1000),
    r.state.life_cycle_state, r.state.result_state, r.status.state,
    r.status.termination_details.code, r.status.termination_details.type,
    coalesce(nullif(r.status.termination_details.message, ''), nullif(r.state.state_message, '')),
    r.queue_duration, r.setup_duration, r.execution_duration, r.cleanup_duration,
    r.run_duration, r.run_duration, r.attempt_number, r.original_attempt_run_id,
    r.status.state <> 'TERMINATED', len(r.tasks), len(r.repair_history), r.run_page_url, NULL,
    j, make_timestamptz({extracted_us})
FROM src;
INSERT INTO repair_history SELECT
    '{ws}', job_run_id, coalesce(h.id, 0), h.type,
    make_timestamptz(nullif(h.start_time, 0) * 1000), make_timestamptz(nullif(h.end_time, 0) * 1000),
    h.state.life_cycle_state, h.state.result_state, h.status.state,
    h.status.termination_details.code, h.status.termination_details.type, h.task_run_ids
FROM (SELECT job_run_id, json_transform(h, '{
    "id": "BIGINT", "type": "VARCHAR", "start_time": "BIGINT", "end_time": "BIGINT",
    "state": {"life_cycle_state": "VARCHAR", "result_state": "VARCHAR"},
    "status": {"state": "VARCHAR", "termination_details": {"code": "VARCHAR", "type": "VARCHAR"}},
    "task_run_ids": ["BIGINT"]}') AS h
    FROM (SELECT r.run_id AS job_run_id, unnest(r.repair_history) AS h FROM src));
INSERT INTO tasks SELECT
    '{ws}', s.run_id, job_run_id, job_id, s.task_key, s.attempt_number, NULL,
    make_timestamptz(nullif(s.start_time, 0) * 1000), make_timestamptz(nullif(s.end_time, 0) * 1000),
    s.queue_duration, s.setup_duration, s.execution_duration, s.cleanup_duration,
    s.run_duration, s.run_duration, s.state.life_cycle_state, s.state.result_state, s.status.state,
    s.status.termination_details.code, s.status.termination_details.type,
    coalesce(nullif(s.status.termination_details.message, ''), nullif(s.state.state_message, '')),
    s.status.state <> 'TERMINATED', s.cluster_instance.cluster_id, NULL, s.job_cluster_key,
    s.existing_cluster_id, s.environment_key, s.new_cluster.node_type_id,
    s.new_cluster.driver_node_type_id, s.new_cluster.num_workers,
    s.new_cluster.autoscale.min_workers, s.new_cluster.autoscale.max_workers,
    s.new_cluster.num_workers, s.new_cluster.spark_version, s.new_cluster.runtime_engine,
    s.new_cluster.instance_pool_id, s.new_cluster.driver_instance_pool_id,
    list_transform(s.depends_on, lambda d: d.task_key), s.run_if, NULL, s.max_retries,
    s.timeout_seconds, NULL
FROM (SELECT job_run_id, job_id, json_transform(t, '{
    "run_id": "BIGINT", "task_key": "VARCHAR", "attempt_number": "INTEGER",
    "start_time": "BIGINT", "end_time": "BIGINT", "queue_duration": "BIGINT",
    "setup_duration": "BIGINT", "execution_duration": "BIGINT", "cleanup_duration": "BIGINT",
    "run_duration": "BIGINT", "run_if": "VARCHAR", "max_retries": "INTEGER",
    "timeout_seconds": "BIGINT", "job_cluster_key": "VARCHAR", "existing_cluster_id": "VARCHAR",
    "environment_key": "VARCHAR", "depends_on": [{"task_key": "VARCHAR"}],
    "cluster_instance": {"cluster_id": "VARCHAR"},
    "new_cluster": {"node_type_id": "VARCHAR", "driver_node_type_id": "VARCHAR",
        "num_workers": "INTEGER", "autoscale": {"min_workers": "INTEGER", "max_workers": "INTEGER"},
        "spark_version": "VARCHAR", "runtime_engine": "VARCHAR", "instance_pool_id": "VARCHAR",
        "driver_instance_pool_id": "VARCHAR"},
    "state": {"life_cycle_state": "VARCHAR", "result_state": "VARCHAR", "state_message": "VARCHAR"},
    "status": {"state": "VARCHAR", "termination_details": {"code": "VARCHAR", "type": "VARCHAR", "message": "VARCHAR"}}}') AS s
    FROM (SELECT r.run_id AS job_run_id, r.job_id, unnest(r.tasks) AS t FROM src));
INSERT INTO task_iterations SELECT
    '{ws}', s.run_id, s.parent_task_run_id, s.job_run_id, s.job_id, s.task_key, s.attempt_number,
    make_timestamptz(nullif(s.start_time, 0) * 1000), make_timestamptz(nullif(s.end_time, 0) * 1000),
    s.queue_duration, s.setup_duration, s.execution_duration, s.cleanup_duration, s.run_duration,
    s.state.life_cycle_state, s.state.result_state, s.status.state,
    s.status.termination_details.code, s.status.termination_details.type,
    coalesce(nullif(s.status.termination_details.message, ''), nullif(s.state.state_message, '')),
    s.status.state <> 'TERMINATED', s.cluster_instance.cluster_id, json
FROM (SELECT json, json_transform(json, '{
    "run_id": "BIGINT", "parent_task_run_id": "BIGINT", "job_run_id": "BIGINT", "job_id": "BIGINT",
    "task_key": "VARCHAR", "attempt_number": "INTEGER", "start_time": "BIGINT", "end_time": "BIGINT",
    "queue_duration": "BIGINT", "setup_duration": "BIGINT", "execution_duration": "BIGINT",
    "cleanup_duration": "BIGINT", "run_duration": "BIGINT",
    "cluster_instance": {"cluster_id": "VARCHAR"},
    "state": {"life_cycle_state": "VARCHAR", "result_state": "VARCHAR", "state_message": "VARCHAR"},
    "status": {"state": "VARCHAR", "termination_details": {"code": "VARCHAR", "type": "VARCHAR", "message": "VARCHAR"}}}') AS s
    FROM read_ndjson_objects('{iterations}'));
