"""Acting on what the answers show: repair failed runs, cancel stuck ones, read a task's output.

Selection reads the store, the plan re-reads each run from the API, and only `execute` sends
write requests (repair, cancel), each recorded in the `actions` table. Submitting and deleting
runs are deliberately not offered: history is what jobruns protects.
"""

from extractor.actions.act import Step, cancel_all, execute, latest_repair_id, plan, refresh_runs
from extractor.actions.output import TaskOutput, export_views, task_output
from extractor.actions.select import Candidate, Failure, active_runs, failed_runs
from extractor.actions.transient import (
    TRANSIENT_REASONS,
    TRANSIENT_SIGNATURES,
    TRANSIENT_TERMINATION_CODES,
    is_transient,
)

__all__ = [
    "TRANSIENT_REASONS",
    "TRANSIENT_SIGNATURES",
    "TRANSIENT_TERMINATION_CODES",
    "Candidate",
    "Failure",
    "Step",
    "TaskOutput",
    "active_runs",
    "cancel_all",
    "execute",
    "export_views",
    "failed_runs",
    "is_transient",
    "latest_repair_id",
    "plan",
    "refresh_runs",
    "task_output",
]
