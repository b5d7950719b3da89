"""What an export writes: its tables in order and the partition columns of each.

Shared by the export and the Spark SQL that registers the exported tables; no I/O here.
"""

# The tables an export writes, in the order they are written (parents before children).
EXPORT_TABLES = (
    "runs",
    "tasks",
    "repair_history",
    "task_iterations",
    "jobs",
    "clusters",
    "task_errors",
    "instance_pools",
    "node_types",
    "cluster_workers",
    "rate_card",
    "billing_usage",
    "list_prices",
)

# Partition columns an export adds to each table (first the key ones it already has).
PARTITION_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": ("workspace_id", "start_month"),
    "tasks": ("workspace_id", "start_month"),
    "repair_history": ("workspace_id", "start_month"),
    "task_iterations": ("workspace_id", "start_month"),
    "jobs": ("workspace_id",),
    "clusters": (),
    "task_errors": (),
    "instance_pools": (),
    "node_types": (),
    "cluster_workers": (),
    "rate_card": (),
    "billing_usage": ("workspace_id", "usage_month"),
    "list_prices": (),
}
