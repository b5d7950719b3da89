"""The store's tables: one place that names every column and its DuckDB type.

`flatten` builds Arrow tables with exactly these columns, `store` creates and migrates the tables
from them, and the views in sql/ read them. The store's bookkeeping tables and the DDL that
creates every table live here too; nothing here opens a connection.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 3

# Keys are part of every table; workspace_id is the numeric workspace id as text (or the host).
TABLES: dict[str, dict[str, str]] = {
    "runs": {
        "workspace_id": "VARCHAR",
        "run_id": "BIGINT",
        "job_id": "BIGINT",
        "run_name": "VARCHAR",
        "run_type": "VARCHAR",
        "trigger": "VARCHAR",
        "creator_user_name": "VARCHAR",
        "start_time": "TIMESTAMPTZ",
        "end_time": "TIMESTAMPTZ",
        "life_cycle_state": "VARCHAR",
        "result_state": "VARCHAR",
        "status_state": "VARCHAR",
        "termination_code": "VARCHAR",
        "termination_type": "VARCHAR",
        "state_message": "VARCHAR",
        "queue_duration_ms": "BIGINT",
        "setup_duration_ms": "BIGINT",
        "execution_duration_ms": "BIGINT",
        "cleanup_duration_ms": "BIGINT",
        "run_duration_ms": "BIGINT",
        "duration_ms": "BIGINT",
        "attempt_number": "INTEGER",
        "original_attempt_run_id": "BIGINT",
        "is_active": "BOOLEAN",
        "task_count": "INTEGER",
        "repair_count": "INTEGER",
        "run_page_url": "VARCHAR",
        "deleted_at": "TIMESTAMPTZ",
        "raw": "JSON",
        "extracted_at": "TIMESTAMPTZ",
    },
    "tasks": {
        "workspace_id": "VARCHAR",
        "run_id": "BIGINT",
        "job_run_id": "BIGINT",
        "job_id": "BIGINT",
        "task_key": "VARCHAR",
        "attempt_number": "INTEGER",
        "repair_id": "BIGINT",
        "start_time": "TIMESTAMPTZ",
        "end_time": "TIMESTAMPTZ",
        "queue_duration_ms": "BIGINT",
        "setup_duration_ms": "BIGINT",
        "execution_duration_ms": "BIGINT",
        "cleanup_duration_ms": "BIGINT",
        "run_duration_ms": "BIGINT",
        "duration_ms": "BIGINT",
        "life_cycle_state": "VARCHAR",
        "result_state": "VARCHAR",
        "status_state": "VARCHAR",
        "termination_code": "VARCHAR",
        "termination_type": "VARCHAR",
        "state_message": "VARCHAR",
        "is_active": "BOOLEAN",
        "cluster_id": "VARCHAR",
        "compute_kind": "VARCHAR",
        "job_cluster_key": "VARCHAR",
        "existing_cluster_id": "VARCHAR",
        "environment_key": "VARCHAR",
        "node_type_id": "VARCHAR",
        "driver_node_type_id": "VARCHAR",
        "num_workers": "INTEGER",
        "autoscale_min_workers": "INTEGER",
        "autoscale_max_workers": "INTEGER",
        "workers": "INTEGER",
        "spark_version": "VARCHAR",
        "runtime_engine": "VARCHAR",
        "instance_pool_id": "VARCHAR",
        "driver_instance_pool_id": "VARCHAR",
        "depends_on": "VARCHAR[]",
        "run_if": "VARCHAR",
        "task_type": "VARCHAR",
        "max_retries": "INTEGER",
        "timeout_seconds": "BIGINT",
        "iteration_count": "INTEGER",
    },
    "repair_history": {
        "workspace_id": "VARCHAR",
        "job_run_id": "BIGINT",
        "repair_id": "BIGINT",
        "type": "VARCHAR",
        "start_time": "TIMESTAMPTZ",
        "end_time": "TIMESTAMPTZ",
        "life_cycle_state": "VARCHAR",
        "result_state": "VARCHAR",
        "status_state": "VARCHAR",
        "termination_code": "VARCHAR",
        "termination_type": "VARCHAR",
        "task_run_ids": "BIGINT[]",
    },
    "task_iterations": {
        "workspace_id": "VARCHAR",
        "run_id": "BIGINT",
        "parent_task_run_id": "BIGINT",
        "job_run_id": "BIGINT",
        "job_id": "BIGINT",
        "task_key": "VARCHAR",
        "attempt_number": "INTEGER",
        "start_time": "TIMESTAMPTZ",
        "end_time": "TIMESTAMPTZ",
        "queue_duration_ms": "BIGINT",
        "setup_duration_ms": "BIGINT",
        "execution_duration_ms": "BIGINT",
        "cleanup_duration_ms": "BIGINT",
        "duration_ms": "BIGINT",
        "life_cycle_state": "VARCHAR",
        "result_state": "VARCHAR",
        "status_state": "VARCHAR",
        "termination_code": "VARCHAR",
        "termination_type": "VARCHAR",
        "state_message": "VARCHAR",
        "is_active": "BOOLEAN",
        "cluster_id": "VARCHAR",
        "raw": "JSON",
    },
    "jobs": {
        "workspace_id": "VARCHAR",
        "job_id": "BIGINT",
        "name": "VARCHAR",
        "creator_user_name": "VARCHAR",
        "run_as_user_name": "VARCHAR",
        "created_time": "TIMESTAMPTZ",
        "tags": "MAP(VARCHAR, VARCHAR)",
        "schedule_cron": "VARCHAR",
        "schedule_timezone": "VARCHAR",
        "schedule_pause_status": "VARCHAR",
        "trigger_kind": "VARCHAR",
        "continuous": "BOOLEAN",
        "max_concurrent_runs": "INTEGER",
        "timeout_seconds": "BIGINT",
        "format": "VARCHAR",
        "job_clusters": "JSON",
        "deleted_at": "TIMESTAMPTZ",
        "listing_hash": "VARCHAR",
        "raw": "JSON",
        "extracted_at": "TIMESTAMPTZ",
    },
    # All-purpose clusters that job tasks ran on (existing_cluster_id), as clusters/get told at
    # fetched_at; `error` says why the API refused ('not found', 'permission denied').
    "clusters": {
        "workspace_id": "VARCHAR",
        "cluster_id": "VARCHAR",
        "cluster_name": "VARCHAR",
        "node_type_id": "VARCHAR",
        "driver_node_type_id": "VARCHAR",
        "num_workers": "INTEGER",
        "autoscale_min_workers": "INTEGER",
        "autoscale_max_workers": "INTEGER",
        "runtime_engine": "VARCHAR",
        "cluster_source": "VARCHAR",
        "state": "VARCHAR",
        "spark_version": "VARCHAR",
        "fetched_at": "TIMESTAMPTZ",
        "error": "VARCHAR",
        "raw": "JSON",
        "instance_pool_id": "VARCHAR",
        "driver_instance_pool_id": "VARCHAR",
    },
    # Instance pools that clusters of job tasks drew their nodes from, as instance-pools/get
    # told at fetched_at (re-read at most daily); `error` says why the API refused.
    "instance_pools": {
        "workspace_id": "VARCHAR",
        "instance_pool_id": "VARCHAR",
        "instance_pool_name": "VARCHAR",
        "node_type_id": "VARCHAR",
        "fetched_at": "TIMESTAMPTZ",
        "error": "VARCHAR",
        "raw": "JSON",
    },
    # Node types of the workspace as clusters/list-node-types told (read only when a stored
    # cluster uses a type the rate card lacks). dbu_per_hour is inferred by
    # extractor.analytics.rates.infer_dbu_rate for types missing from the card, rate_basis
    # names the known type it came from; both NULL when nothing close is known.
    "node_types": {
        "workspace_id": "VARCHAR",
        "node_type_id": "VARCHAR",
        "cloud": "VARCHAR",
        "num_cores": "DOUBLE",
        "memory_mb": "BIGINT",
        "category": "VARCHAR",
        "photon_worker_capable": "BOOLEAN",
        "photon_driver_capable": "BOOLEAN",
        "dbu_per_hour": "DOUBLE",
        "inferred_from": "VARCHAR",
        "fetched_at": "TIMESTAMPTZ",
    },
    # Worker count of an autoscaling job cluster from `since` until its next row, read from
    # clusters/events once the cluster's run ended.
    "cluster_workers": {
        "workspace_id": "VARCHAR",
        "cluster_id": "VARCHAR",
        "since": "TIMESTAMPTZ",
        "workers": "INTEGER",
    },
    # Which autoscaling cluster instances had their events read (once each, never again).
    "cluster_event_reads": {
        "workspace_id": "VARCHAR",
        "cluster_id": "VARCHAR",
        "job_run_id": "BIGINT",
        "events": "INTEGER",
        "fetched_at": "TIMESTAMPTZ",
        "error": "VARCHAR",
    },
    # The error of each failed, timed-out or internal-error task run and failed for-each
    # iteration, as runs/get-output gave it at fetched_at (`status` 'ok', 'not found' or
    # 'permission denied'); error falls back to the state message (cluster launch failures have
    # no other text). error_trace keeps the first and last 16 KB of error_trace_bytes.
    "task_errors": {
        "workspace_id": "VARCHAR",
        "run_id": "BIGINT",
        "job_run_id": "BIGINT",
        "job_id": "BIGINT",
        "task_key": "VARCHAR",
        "is_iteration": "BOOLEAN",
        "failed_at": "TIMESTAMPTZ",
        "status": "VARCHAR",
        "error": "VARCHAR",
        "error_trace": "VARCHAR",
        "error_trace_bytes": "BIGINT",
        "state_message": "VARCHAR",
        "termination_code": "VARCHAR",
        "result_state": "VARCHAR",
        "signature": "VARCHAR",
        "title": "VARCHAR",
        "error_class": "VARCHAR",
        "signature_version": "INTEGER",
        "fetched_at": "TIMESTAMPTZ",
    },
    # Prices and DBU rates used to estimate cost (seeded from extractor/data/rate_card.csv).
    # kind: 'node_type' (value = DBU/h of one node), 'sku' (value = price per DBU in `currency`),
    # 'multiplier' (name 'photon': factor on DBU/h of Photon clusters). cloud NULL = any cloud.
    "rate_card": {
        "kind": "VARCHAR",
        "cloud": "VARCHAR",
        "name": "VARCHAR",
        "value": "DOUBLE",
        "currency": "VARCHAR",
        "source": "VARCHAR",
        "as_of": "DATE",
    },
    # An import of system.billing.usage; the struct columns kept as JSON, job ids pulled out.
    "billing_usage": {
        "workspace_id": "VARCHAR",
        "record_id": "VARCHAR",
        "account_id": "VARCHAR",
        "sku_name": "VARCHAR",
        "cloud": "VARCHAR",
        "usage_start_time": "TIMESTAMPTZ",
        "usage_end_time": "TIMESTAMPTZ",
        "usage_date": "DATE",
        "usage_unit": "VARCHAR",
        "usage_quantity": "DOUBLE",
        "record_type": "VARCHAR",
        "billing_origin_product": "VARCHAR",
        "usage_type": "VARCHAR",
        "job_id": "BIGINT",
        "job_run_id": "BIGINT",
        "cluster_id": "VARCHAR",
        "node_type": "VARCHAR",
        "run_as": "VARCHAR",
        "is_serverless": "BOOLEAN",
        "is_photon": "BOOLEAN",
        "custom_tags": "JSON",
        "usage_metadata": "JSON",
        "identity_metadata": "JSON",
        "product_features": "JSON",
        "ingestion_date": "DATE",
    },
    # An import of system.billing.list_prices; effective_list_price = pricing.effective_list.default.
    "list_prices": {
        "account_id": "VARCHAR",
        "sku_name": "VARCHAR",
        "cloud": "VARCHAR",
        "currency_code": "VARCHAR",
        "usage_unit": "VARCHAR",
        "price_start_time": "TIMESTAMPTZ",
        "price_end_time": "TIMESTAMPTZ",
        "default_price": "DOUBLE",
        "effective_list_price": "DOUBLE",
        "pricing": "JSON",
    },
}

# The key of each table, workspace_id first. A re-fetched run replaces its child rows whole.
KEYS: dict[str, tuple[str, ...]] = {
    "runs": ("workspace_id", "run_id"),
    "tasks": ("workspace_id", "run_id"),
    "repair_history": ("workspace_id", "job_run_id", "repair_id"),
    "task_iterations": ("workspace_id", "run_id"),
    "jobs": ("workspace_id", "job_id"),
    "clusters": ("workspace_id", "cluster_id"),
    "task_errors": ("workspace_id", "run_id"),
    "instance_pools": ("workspace_id", "instance_pool_id"),
    "node_types": ("workspace_id", "node_type_id"),
    "cluster_workers": ("workspace_id", "cluster_id", "since"),
    "cluster_event_reads": ("workspace_id", "cluster_id"),
    "rate_card": ("kind", "cloud", "name"),
    "billing_usage": ("workspace_id", "record_id"),
    "list_prices": (
        "account_id",
        "sku_name",
        "cloud",
        "currency_code",
        "usage_unit",
        "price_start_time",
    ),
}

# Child tables and the column that points at their job run.
CHILDREN: dict[str, str] = {
    "tasks": "job_run_id",
    "repair_history": "job_run_id",
    "task_iterations": "job_run_id",
}

# What `jobruns export` last wrote to each destination (a local folder or an object-store URL),
# per table and workspace: the runs' (or jobs') extracted_at/deleted_at watermark for tables
# that have one, else the fingerprints of the partitions written. Not exported itself.
TABLES["export_state"] = {
    "destination": "VARCHAR",
    "format": "VARCHAR",
    "table_name": "VARCHAR",
    "workspace_id": "VARCHAR",
    "since": "TIMESTAMPTZ",
    "watermark": "TIMESTAMPTZ",
    "fingerprints": "JSON",
    "rows_written": "BIGINT",
    "exported_at": "TIMESTAMPTZ",
}
KEYS["export_state"] = ("destination", "format", "table_name", "workspace_id")
KEYS["alert_log"] = ("destination_id", "key")


# Every write request jobruns sent to a workspace (`jobruns repair` / `cancel` with --yes), kept
# as an audit trail: what was asked, what the API answered (or the error), by whom on which host.
# outcome: 'done', 'refused' (the API said no: changed meanwhile, forbidden) or 'failed'.
TABLES["actions"] = {
    "action_id": "VARCHAR",
    "at": "TIMESTAMPTZ",
    "action": "VARCHAR",
    "workspace_id": "VARCHAR",
    "host": "VARCHAR",
    "job_id": "BIGINT",
    "run_id": "BIGINT",
    "request": "JSON",
    "response": "JSON",
    "error": "VARCHAR",
    "outcome": "VARCHAR",
    "repair_id": "BIGINT",
    "actor": "VARCHAR",
}
KEYS["actions"] = ("workspace_id", "action_id")

# The store's own bookkeeping tables, beside the API tables of extractor.schema.
STATE_TABLES: dict[str, dict[str, str]] = {
    "jobruns_meta": {"key": "VARCHAR", "value": "VARCHAR"},
    "extract_state": {
        "workspace_id": "VARCHAR",
        "host": "VARCHAR",
        "watermark": "TIMESTAMPTZ",
        "last_extract_at": "TIMESTAMPTZ",
        "last_success_at": "TIMESTAMPTZ",
        "last_rescan_at": "TIMESTAMPTZ",
        "last_repair_sweep_at": "TIMESTAMPTZ",
    },
    "extract_log": {
        "extract_id": "VARCHAR",
        "workspace_id": "VARCHAR",
        "host": "VARCHAR",
        "started_at": "TIMESTAMPTZ",
        "finished_at": "TIMESTAMPTZ",
        "status": "VARCHAR",
        "window_start": "TIMESTAMPTZ",
        "window_end": "TIMESTAMPTZ",
        "rescan": "BOOLEAN",
        "repair_sweep": "BOOLEAN",
        "pages": "BIGINT",
        "requests": "BIGINT",
        "runs_seen": "BIGINT",
        "runs_new": "BIGINT",
        "runs_changed": "BIGINT",
        "runs_refreshed": "BIGINT",
        "runs_deleted": "BIGINT",
        "jobs_seen": "BIGINT",
        "skipped_runs": "BIGINT[]",
        "errors": "VARCHAR[]",
        "duration_ms": "BIGINT",
        "message": "VARCHAR",
    },
    # Every alert `jobruns alerts` found, once per destination (a webhook, or 'stdout' when none
    # was given): pending until a 2xx came back, then sent, never sent again. A webhook URL is a
    # secret: destination_id is a hash of it and destination its masked form, never the URL.
    # `alert` holds the whole alert as delivered, so a pending one can be sent later as it was.
    "alert_log": {
        "destination_id": "VARCHAR",
        "destination": "VARCHAR",
        "key": "VARCHAR",
        "rule": "VARCHAR",
        "severity": "VARCHAR",
        "workspace_id": "VARCHAR",
        "job_id": "BIGINT",
        "run_id": "BIGINT",
        "fired_at": "TIMESTAMPTZ",
        "recorded_at": "TIMESTAMPTZ",
        "status": "VARCHAR",
        "attempts": "INTEGER",
        "last_attempt_at": "TIMESTAMPTZ",
        "sent_at": "TIMESTAMPTZ",
        "error": "VARCHAR",
        "alert": "JSON",
    },
}

# Every table the store creates: the API tables, then the bookkeeping ones.
ALL_TABLES: dict[str, dict[str, str]] = {**TABLES, **STATE_TABLES}

STATE_COLUMNS = (
    "watermark",
    "last_extract_at",
    "last_success_at",
    "last_rescan_at",
    "last_repair_sweep_at",
)


def table_ddl(name: str, *, as_name: str | None = None, temporary: bool = False) -> str:
    """CREATE TABLE for one of ALL_TABLES; `as_name` creates it under another (qualified) name."""
    cols = ",\n    ".join(f'"{c}" {t}' for c, t in ALL_TABLES[name].items())
    kind = "TEMP TABLE" if temporary else "TABLE"
    return f"CREATE {kind} IF NOT EXISTS {as_name or name} (\n    {cols}\n)"


def create_tables(con: Any) -> None:
    """Create every table of the current schema version (idempotent)."""
    for name in ALL_TABLES:
        con.execute(table_ddl(name))
    row = con.execute("SELECT value FROM jobruns_meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        con.execute("INSERT INTO jobruns_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])


def table_names(con: Any) -> set[str]:
    """Tables of the connection's database and of its TEMP schema."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name IN (current_database(), 'temp')"
    ).fetchall()
    return {str(row[0]) for row in rows}


def row_count(con: Any, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
