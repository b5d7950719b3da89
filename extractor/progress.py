"""Progress of a long extract on stderr: a rich bar per workspace on a terminal, else nothing.

stdout is for data, so progress never goes there.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from rich.console import Console
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
