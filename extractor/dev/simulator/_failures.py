"""Which cause each failed task run of a simulated workspace has: its family and its texts.

Runs are planned first; this then gives every failed task run and for-each iteration a family
(drawn from its own seeded generator, so the planner's draws never change) and rewrites its
outcome message to match. It never touches a run that did not fail and never reads the clock.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from ._errors import draw_failure, family_names
from ._model import DAY_MS, Outcome, RunRec, TaskRun
from ._planner import is_failure

# Families whose text is only in the state message, never in runs/get-output's error.
STATE_ONLY = frozenset({"cloud_launch_failure", "spot_loss", "driver_unreachable", "timeout"})
OUTPUT_FAMILIES = [n for n in family_names() if n not in STATE_ONLY]
# Causes that start in the last days of a generated workspace ("what is new this week").
RECENT_ONLY = ("schema_mismatch", "module_not_found")
RECENT_MS = 3 * DAY_MS
# A cluster failure's family follows its termination code.
CLUSTER_FAMILIES = {
    "CLOUD_FAILURE": ("cloud_launch_failure", "spot_loss"),
    "CLUSTER_ERROR": ("cloud_launch_failure", "driver_unreachable"),
    "DRIVER_ERROR": ("driver_unreachable",),
}
# How faithful a job is to its habitual family (1.0: it always fails the same way).
LOYALTY = (1.0, 1.0, 0.8, 0.6, 0.3)
FOR_EACH_FAMILY = "for_each_iterations_failed"
_RUN_MESSAGE = re.compile(r"Task (\S+) failed with message: (.*)\. This caused all", re.DOTALL)


@dataclass(frozen=True)
class Failure:
    """The truth of one failed task run: its family and what runs/get-output shows."""

    family: str
    error: str = ""
    error_trace: str = ""


class FailureBook:
    """Families of the failed task runs of one workspace, by task run id."""

    def __init__(self, seed: int, recent_from_ms: int) -> None:
        self.seed = seed
        self.recent_from_ms = recent_from_ms
        self.by_run: dict[int, Failure] = {}

    def assign(self, run: RunRec) -> None:
        """Give each failed task run of `run` not yet assigned a family; fix the run's message."""
        renamed: dict[tuple[str, str], str] = {}
        replaced: dict[int, Outcome] = {}
        for task in run.tasks:
            for t in [task, *(task.iterations or ())]:
                old = t.outcome
                if t.run_id in self.by_run or not is_failure(old):
                    continue
                self.by_run[t.run_id] = self._failure(run, t)
                if t.outcome is not old:
                    renamed[(t.tdef.task_key, old.message or "Workload failed")] = t.outcome.message
                    replaced[id(old)] = t.outcome
        for seg in run.segments:
            o = seg.outcome
            if id(o) in replaced:  # a legacy run shares its task's outcome
                seg.outcome = replaced[id(o)]
                continue
            m = _RUN_MESSAGE.match(o.message)
            new = renamed.get((m.group(1), m.group(2))) if m else None
            if m and new is not None:
                message = o.message.replace(m.group(2), new, 1)
                seg.outcome = Outcome(o.life_cycle, o.result, o.code, o.type, message)

    def families(self) -> dict[int, str]:
        return {run_id: f.family for run_id, f in self.by_run.items()}

    def _failure(self, run: RunRec, t: TaskRun) -> Failure:
        o = t.outcome
        rng = random.Random(self.seed * 1_000_003 + t.run_id)
        if t.iterations is not None:
            return Failure(FOR_EACH_FAMILY)
        if o.result == "TIMEDOUT":
            return Failure("timeout")
        if o.code in CLUSTER_FAMILIES:
            family = rng.choice(CLUSTER_FAMILIES[o.code])
            text = draw_failure(rng, family)
            t.outcome = Outcome(o.life_cycle, o.result, o.code, o.type, text.state_message)
            return Failure(family)
        if o.code != "RUN_EXECUTION_ERROR":
            # Library, storage, checkout and internal errors: one fixed message each.
            return Failure(o.code.lower(), o.message)
        family = self._output_family(run.job.job_id, t.start, rng)
        text = draw_failure(rng, family)
        t.outcome = Outcome(o.life_cycle, o.result, o.code, o.type, _summary(text.error))
        return Failure(family, text.error, text.error_trace)

    def _output_family(self, job_id: int, start: int, rng: random.Random) -> str:
        usual = [n for n in OUTPUT_FAMILIES if n not in RECENT_ONLY]
        habit = random.Random(self.seed * 7907 + job_id)
        habitual, loyalty = habit.choice(usual), habit.choice(LOYALTY)
        recent = start >= self.recent_from_ms
        if recent and rng.random() < 0.5:
            return rng.choice(RECENT_ONLY)
        if rng.random() < loyalty:
            return habitual
        return rng.choice(OUTPUT_FAMILIES if recent else usual)


def _summary(error: str) -> str:
    """The first line of an error, as the task's termination message carries it."""
    line = error.strip().splitlines()[0] if error.strip() else ""
    return line if len(line) <= 300 else line[:297] + "..."
