"""The one exception hierarchy of jobruns.

Every error a user can meet carries a message they can act on; the CLI maps each class to an
exit code. Messages must never contain a token or a client secret.
"""

from __future__ import annotations


class JobrunsError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""

    exit_code = 1


class UsageError(JobrunsError):
    """Bad options or missing configuration: the user must change the command line or env."""

    exit_code = 2


class InputError(JobrunsError):
    """A file given to jobruns (a billing export, a rate card) is not what it must be."""


class ConfigError(UsageError):
    """Host, credentials or profile missing or inconsistent."""


class AuthError(JobrunsError):
    """The workspace refused the credentials (401, or 403 "Invalid access token")."""


class ApiError(JobrunsError):
    """The API answered with an error that retrying did not cure, or a body we cannot read."""

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class PermissionDeniedError(ApiError):
    """403 PERMISSION_DENIED on one resource (a job the principal may not view)."""


class NotFoundError(ApiError):
    """The run or job does not exist (400 "does not exist", or 404): deleted or expired."""


class UncertainWriteError(ApiError):
    """A write request (a repair) timed out or got a 5xx: it may or may not have been applied.

    Never retried blindly: the caller re-reads what it acted on and decides."""


class NetworkError(JobrunsError):
    """The host could not be reached (DNS, refused, timeouts) within the retry deadline."""


class StoreError(JobrunsError):
    """The DuckDB file is unusable: not a DuckDB file, unwritable, or from a newer jobruns."""


class LockedError(StoreError):
    """Another extract holds the store's writer lock."""


class Interrupted(JobrunsError):
    """Ctrl-C or SIGTERM: committed work is kept."""

    exit_code = 130
