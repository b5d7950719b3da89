"""The one-writer lock of a store: a second extract on the same file is refused at once.

An advisory lock (flock) on a file beside the store, holding the owner's pid and start time.
The kernel drops it when its process dies, so a lock left by a killed extract is taken over.
"""

from __future__ import annotations

import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO

from extractor.errors import LockedError, StoreError

LOCK_SUFFIX = ".extract-lock"


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + LOCK_SUFFIX)


class ExtractLock:
    """Held for the whole of one extract; readers never take it."""

    def __init__(self, db: Path) -> None:
        self.path = lock_path(db)
        self._file: IO[str] | None = None

    def __enter__(self) -> ExtractLock:
        store = self.path.with_name(self.path.name.removesuffix(LOCK_SUFFIX))
        if not self.path.parent.is_dir():
            raise StoreError(
                f"cannot create the store {store}: folder {self.path.parent} does not exist"
            )
        try:
            handle = open(self.path, "a+")
        except OSError as exc:
            raise StoreError(
                f"cannot create the lock file {self.path} beside the store: {exc.strerror}"
                " (the folder must be writable)"
            ) from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown pid"
            handle.close()
            raise LockedError(
                f"another extract is running ({owner}) on {store}; "
                "this one stops without touching it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}")
        handle.flush()
        self._file = handle
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
