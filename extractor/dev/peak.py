"""The bench's memory figures, measured in processes that import nothing of the bench or the
simulator: `python -m extractor.dev.peak ARGS...` runs `jobruns ARGS`, the command a user runs;
`extraction()` runs the extraction alone, as `jobruns extract` calls it. On exit, stderr gets two
lines: `BASE_KB n`, the peak resident memory once the code is imported, before it runs, and
`PEAK_KB n`, the peak of the whole process.
"""

from __future__ import annotations

import atexit
import contextlib
import resource
import sys
from pathlib import Path


def peak_rss_kb() -> int:
    """This process's peak resident memory in KiB.

    VmHWM, as ru_maxrss survives exec on Linux: a child would report its parent's peak.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _report_on_exit() -> None:
    base = peak_rss_kb()
    atexit.register(lambda: print(f"BASE_KB {base}\nPEAK_KB {peak_rss_kb()}", file=sys.stderr))


def main() -> None:
    from extractor.cli import main as jobruns

    _report_on_exit()
    jobruns(sys.argv[1:])


def extraction() -> None:
    """`python -c 'from extractor.dev.peak import extraction; extraction()' < args.json`: one
    extract() into args["db"] from the workspace at args["url"] (the token in
    DATABRICKS_TOKEN), without the derived tables `jobruns extract` refreshes after it."""
    import json
    import os

    from extractor.client import JobsClient
    from extractor.config import resolve_workspace
    from extractor.extract import extract
    from extractor.pipeline import release_memory_promptly
    from extractor.plan import ExtractOptions
    from extractor.store import Store

    args = json.loads(sys.stdin.read())
    _report_on_exit()
    release_memory_promptly()  # as the CLI does
    config = resolve_workspace(host=args["url"], token=os.environ["DATABRICKS_TOKEN"], env={})
    options = ExtractOptions(concurrency=args["concurrency"])
    with JobsClient(config, max_rps=10_000, max_concurrency=options.concurrency) as client:
        extract(client, Store(args["db"]), options)


if __name__ == "__main__":
    main()
