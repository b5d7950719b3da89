"""Several workspaces extracted into one store at once, each at its own pace.

Each workspace has its own client (its own rate limit: limits are per workspace) and its own
extraction state; they run concurrently in threads of one process, and the store serialises
their write transactions. One workspace failing never stops the others.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from extractor.client import JobsClient
from extractor.config import WorkspaceConfig
from extractor.errors import JobrunsError
from extractor.extract import ExtractOptions, ExtractResult, extract
from extractor.store import Store

if TYPE_CHECKING:
    from collections.abc import Callable

    from extractor.progress import ProgressBoard

log = logging.getLogger("jobruns.fleet")


@dataclass
class WorkspaceOutcome:
    """What happened to one workspace: its result, or the error that stopped it."""

    name: str
    host: str
    result: ExtractResult | None = None
    error: JobrunsError | None = None


def extract_workspace(
    name: str,
    config: WorkspaceConfig,
    store: Store,
    options: ExtractOptions,
    *,
    max_rps: float,
    board: ProgressBoard | None = None,
    now: Callable[[], datetime] | None = None,
) -> WorkspaceOutcome:
    """Extract one workspace; a JobrunsError is caught and returned, anything else raises."""
    outcome = WorkspaceOutcome(name=name, host=config.host)
    try:
        with JobsClient(config, max_rps=max_rps, max_concurrency=options.concurrency) as client:
            sink = board.sink(name) if board is not None else None
            outcome.result = extract(client, store, options, progress=sink, now=now)
    except JobrunsError as exc:
        log.debug("workspace %s (%s) failed: %s", name, config.host, exc)
        outcome.error = exc
    return outcome


def extract_fleet(
    workspaces: list[tuple[str, WorkspaceConfig]],
    db: Path,
    options: ExtractOptions,
    *,
    max_rps: float,
    board: ProgressBoard | None = None,
    now: Callable[[], datetime] | None = None,
) -> list[WorkspaceOutcome]:
    """Extract every workspace concurrently into `db`; outcomes in the order given."""
    # Each extraction initialises (migrates) the store itself, under the store's write lock.
    store = Store(db)
    if len(workspaces) == 1:
        name, config = workspaces[0]
        return [
            extract_workspace(name, config, store, options, max_rps=max_rps, board=board, now=now)
        ]
    with ThreadPoolExecutor(max_workers=len(workspaces), thread_name_prefix="workspace") as pool:
        futures = [
            pool.submit(
                extract_workspace,
                name,
                config,
                store,
                options,
                max_rps=max_rps,
                board=board,
                now=now,
            )
            for name, config in workspaces
        ]
        return [f.result() for f in futures]
