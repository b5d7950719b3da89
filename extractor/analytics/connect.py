"""`extractor.connect()`: open a store with its views ready, for notebooks and scripts.

Read-only by default, and then a snapshot copy, so a connection held for hours never blocks the
extract cron runs. It never writes run data.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from extractor.analytics.views import create_views, views_current
from extractor.errors import StoreError
from extractor.migrations import check_version, migrate
from extractor.schema import SCHEMA_VERSION, create_tables, table_names
from extractor.store import open_connection, open_snapshot


def connect(
    db: str | Path | None = None, *, read_only: bool = True, snapshot: bool | None = None
) -> duckdb.DuckDBPyConnection:
    """Open a store with the views ready, e.g. for a notebook.

    `db` None opens an empty in-memory store. A read-only connection (the default) gets the views
    as TEMP views of this connection, so the file is never written; a writable one stores them
    in the file (usable from the duckdb CLI afterwards).

    A read-only connection is by default a snapshot: a private copy of the store as of this call
    (see extractor.store.open_snapshot), so holding it for hours never blocks the extract that
    cron runs. Call connect() again to see newer data. `snapshot=False` reads the file itself,
    which is right for a short query but makes an extract wait while the connection is open.
    """
    if snapshot is None:
        snapshot = read_only
    try:
        if db is None:
            con = duckdb.connect(":memory:")
            create_tables(con)
            read_only = False
        elif read_only and snapshot:
            con = open_snapshot(Path(db))
        else:
            con = open_connection(Path(db), read_only=read_only)
            if read_only:
                version = check_version(con)
                if version is not None and version < SCHEMA_VERSION:
                    # An older store cannot be migrated read-only: its copy can.
                    con.close()
                    con = open_snapshot(Path(db))
            else:
                con.execute("BEGIN TRANSACTION")
                migrate(con)
                con.execute("COMMIT")
    except duckdb.Error as exc:
        raise StoreError(f"cannot open the store {db}: {exc}") from exc
    if "runs" not in table_names(con):
        con.close()
        raise StoreError(f"{db} is not a jobruns store (no runs table); run `jobruns extract`")
    if not views_current(con):
        # The store's own views are missing or from another jobruns version.
        create_views(con, temporary=read_only)
    return con
