"""Progress of a long extract on stderr: a rich bar on a terminal, nothing otherwise.

stdout is for data, so progress never goes there.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class RichProgress:
    """Pages, runs and requests per second, refreshed a few times a second."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task = progress.add_task("starting", total=None)
        self._start = time.monotonic()

    def update(self, *, phase: str, pages: int, runs: int, requests: int) -> None:
        elapsed = max(time.monotonic() - self._start, 1e-6)
        self._progress.update(
            self._task,
            description=(
                f"{phase}: {pages} pages, {runs} runs, {requests} requests "
                f"({requests / elapsed:.1f}/s)"
            ),
        )


@contextlib.contextmanager
def progress_sink(*, enabled: bool = True) -> Iterator[RichProgress | None]:
    """A progress sink when stderr is a terminal and progress is wanted, else None."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        yield RichProgress(progress)
