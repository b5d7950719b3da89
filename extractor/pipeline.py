"""Extraction into a store, whole: the writer lock, one or several workspaces, the views.

`extract_into` is what `jobruns extract` and `jobruns demo` run, and what a Python caller runs
to get the same store: every workspace extracted (each with its own client, rate limit and
state, concurrently in threads; the store serialises their writes; one failing never stops the
others), then the views and their materialized tables brought up to date.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from extractor.analytics.failures import resign_errors, signature_columns
from extractor.analytics.materialize import owe_refresh, refresh_materialized, refresh_paid
from extractor.analytics.views import ensure_views
from extractor.client import JobsClient
from extractor.config import WorkspaceConfig
from extractor.errors import JobrunsError
from extractor.extract import Extraction, ExtractResult
from extractor.lock import ExtractLock
from extractor.plan import ExtractOptions
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
    # The runs a failed extract handed to the store before it stopped (some committed).
    written: set[int] | None = None
    workspace_id: str | None = None


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
            extraction = Extraction(
                client, store, options, progress=sink, now=now, signer=signature_columns
            )
            try:
                outcome.result = extraction.run()
            finally:
                if outcome.result is None and extraction.partial is not None:
                    outcome.workspace_id = extraction.partial.workspace_id
                    outcome.written = extraction.partial.changed_run_ids
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


def extract_into(
    db: Path,
    workspaces: list[tuple[str, WorkspaceConfig]],
    options: ExtractOptions,
    *,
    max_rps: float,
    board: ProgressBoard | None = None,
    now: Callable[[], datetime] | None = None,
) -> list[WorkspaceOutcome]:
    """Extract `workspaces` into `db` under the writer lock, then bring the views up to date.

    New view definitions rebuild every derived table; otherwise only the rows of the runs the
    extract changed are recomputed, those of a workspace that failed half-way included. An
    extract killed before its refresh finished leaves a mark in the store, and the next one
    rebuilds every derived table. Outcomes come in the order given; a workspace's error is in
    its outcome, not raised.
    """
    store = Store(db)
    # Held from the first write to the last refresh: one open of the file, one closing checkpoint.
    with ExtractLock(db), store.holding():
        store.initialize()
        with store.transaction() as con:
            owed = owe_refresh(con)
        outcomes = extract_fleet(workspaces, db, options, max_rps=max_rps, board=board, now=now)
        done = [o.result for o in outcomes if o.result is not None]
        # Pairs made as the refresh reads them: it stops once a full rebuild is cheaper.
        changed = itertools.chain(
            ((r.workspace_id, run) for r in done for run in r.changed_run_ids),
            ((o.workspace_id, run) for o in outcomes if o.workspace_id for run in o.written or ()),
        )
        wrote = any(o.written for o in outcomes)
        if done:
            # Errors signed by an older signer (SIGNATURE_VERSION changed) are signed again.
            with store.transaction() as con:
                resign_errors(con)
        if done or wrote or owed:
            with store.connect() as con:
                if not ensure_views(con):
                    refresh_materialized(con, None if owed else changed)
        else:
            with store.transaction() as con:
                refresh_paid(con)
    return outcomes


# mallopt's parameter for the number of arenas (glibc malloc.h).
M_ARENA_MAX = -8


def release_memory_promptly() -> None:
    """Make Arrow allocate with the system allocator, which hands freed memory back to the OS,
    and cap the C allocator's arenas. For processes that extract (the CLI), before threads start.

    Arrow's default pool keeps what it freed for reuse; an extract builds one batch after
    another, so keeping it only grows the process. glibc gives each thread that allocates an
    arena of its own (up to 8 per core), each keeping what it freed: the extract's request
    threads parse pages in turn, so their arenas only add up.
    """
    pa.set_memory_pool(pa.system_memory_pool())
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(M_ARENA_MAX, 2)
