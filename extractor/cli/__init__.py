"""The `jobruns` command: parses options, calls the library, prints results.

No business logic lives here: each command module parses, calls the library and prints.
Exit codes: 0 ok, 1 runtime failure, 2 usage error, 130 interrupted. Tracebacks only with
--debug; tokens are never printed. This package is imported by the entry point alone.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from types import FrameType

import click
from rich.markup import escape

# Importing the command modules registers their commands on the group.
from extractor.cli import actions, alerts, analytics, auth, dev, extract, lake, prices
from extractor.cli._common import cli, stderr
from extractor.errors import Interrupted, JobrunsError
from extractor.store import is_interrupt

__all__ = [
    "actions",
    "alerts",
    "analytics",
    "auth",
    "cli",
    "dev",
    "extract",
    "lake",
    "main",
    "prices",
    "run",
]


def run() -> None:
    """The `jobruns` program (its console script and `python -m extractor.cli`): `main`, then
    an exit that skips tearing the interpreter down.

    When `main` returns, what a command wrote is committed and closed; what is left is freeing
    every module and the static state of DuckDB's and Arrow's libraries, a tenth of a second or
    more on each start from cron. Exit handlers still run and the streams are flushed. With a
    worker thread still alive, the exit is the normal one, which waits for it.
    """
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if not isinstance(code, int | None) or _busy_threads():
        raise SystemExit(code)
    atexit._run_exitfuncs()
    _leave(code or 0)


def main(argv: list[str] | None = None) -> None:
    """Console entry: run the group and turn errors into messages and exit codes."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    _stop_on_sigterm()
    try:
        cli.main(args=args, prog_name="jobruns", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, Interrupted, click.exceptions.Abort):
        if debug:
            traceback.print_exc()
        stderr.print("interrupted: what was committed is kept; run again to continue")
        _exit_now(Interrupted.exit_code)
    except JobrunsError as exc:
        if debug:
            traceback.print_exc()
        stderr.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if is_interrupt(exc):
            # Ctrl-C or SIGTERM landed inside a DuckDB query, which raises its own error.
            stderr.print("interrupted: what was committed is kept; run again to continue")
            _exit_now(Interrupted.exit_code)
        if debug:
            traceback.print_exc()
        stderr.print(
            f"[red]internal error:[/] {escape(type(exc).__name__)}: {escape(str(exc))}\n"
            "run again with --debug for the traceback, and please report it",
            soft_wrap=True,
        )
        sys.exit(1)
    sys.exit(0)


def _stop_on_sigterm() -> None:
    """SIGTERM (systemd, docker stop, timeout) stops like Ctrl-C: committed work is kept."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def _exit_now(code: int) -> None:
    """Exit without waiting for worker threads still inside an HTTP call or a backoff sleep.

    Python joins pool threads at exit; after an interrupt that could take a request timeout.
    Everything worth keeping is committed already, so flush the streams and leave at once.
    """
    if not _busy_threads():
        sys.exit(code)
    logging.shutdown()
    _leave(code)


def _busy_threads() -> list[threading.Thread]:
    """Threads other than the main one that Python's exit would wait for."""
    return [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and t.is_alive() and not t.daemon
    ]


def _leave(code: int) -> None:
    """Flush the standard streams and end the process at once."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
