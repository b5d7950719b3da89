"""Progress of a long extract on stderr: a rich bar per workspace on a terminal, else nothing,
and the summary lines printed after it.

stdout is for data, so progress and summaries never go there.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichProgress:
    """One workspace's line: phase, pages, runs, requests per second, share read and ETA."""

    def __init__(self, progress: Progress, label: str) -> None:
        self._progress = progress
        self._label = label
        self._task: TaskID = progress.add_task(label, total=1000)
        self._start = time.monotonic()

    def update(
        self, *, phase: str, pages: int, runs: int, requests: int, fraction: float | None
    ) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-6)
        self._progress.update(
            self._task,
            completed=None if fraction is None else round(1000 * min(fraction, 1.0)),
            description=(
                f"{self._label}{phase}: {pages} pages, {runs} runs, {requests} requests "
                f"({requests / elapsed:.1f}/s)"
            ),
        )


class ProgressBoard:
    """The bars of one command; each workspace asks for its own line."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def sink(self, label: str = "") -> RichProgress:
        return RichProgress(self._progress, f"{label}: " if label else "")


@contextlib.contextmanager
def progress_board(*, enabled: bool = True) -> Iterator[ProgressBoard | None]:
    """A board of progress bars when stderr is a terminal and progress is wanted, else None."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        yield ProgressBoard(progress)


stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def print_outcomes(outcomes: Sequence[Any]) -> None:
    """One summary line per extracted workspace; with several, a line per failed one too."""
    for outcome in outcomes:
        if outcome.result is not None:
            _print_summary(outcome.result)
        elif len(outcomes) > 1:  # a single workspace's error is the command's error
            stderr.print(
                f"[red]workspace {escape(outcome.name)} ({escape(outcome.host)}) failed:[/] "
                f"{escape(str(outcome.error))}"
            )


def _print_summary(result: Any) -> None:
    seconds = (result.finished_at - result.started_at).total_seconds()
    parts = [
        f"{result.runs_new} new",
        f"{result.runs_changed} changed",
        f"{result.runs_refreshed} refreshed",
        f"{result.runs_deleted} deleted",
    ]
    extra = []
    if result.rescan:
        extra.append("full rescan")
    elif result.repair_sweep:
        extra.append("repair sweep")
    stderr.print(
        f"extracted workspace {result.workspace_id}: {', '.join(parts)} runs; "
        f"{result.jobs_seen} jobs; {result.pages} pages, {result.requests} requests in {seconds:.1f} s"
        + (f" ({', '.join(extra)})" if extra else "")
    )
    if result.skipped_runs:
        stderr.print(
            f"[yellow]skipped {len(result.skipped_runs)} runs without permission:[/] "
            + ", ".join(str(r) for r in result.skipped_runs[:20])
            + (" ..." if len(result.skipped_runs) > 20 else "")
        )
